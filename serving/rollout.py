"""Roll a model version out by editing models.config in the order TF Serving accepts.

`python -m serving.rollout canary 3` loads version 3 beside the stable one, waits until the
model server reports it AVAILABLE, then points the `canary` label at it; `promote`,
`rollback` and `retire` finish the job. Before a label moves, the target is checked
AVAILABLE through the REST status API, and the file is replaced atomically, so TF Serving
and `python -m serving`, which both poll it, never read half a file nor refuse one.
"""

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import httpx

from contract import MODEL_NAME, STABLE_LABEL
from serving.models_config_file import (
    Proto,
    describe_labels,
    describe_policy,
    labels_of,
    model_entry,
    read_config,
    rewritten,
    specific_versions,
    write_atomically,
)

STABLE = STABLE_LABEL
CANARY = "canary"
DEFAULT_CONFIG = Path("serving/models.config")
DEFAULT_URL = "http://localhost:8501"
# TF Serving re-reads the file every 60 s; on Kubernetes the kubelet takes up to about a
# minute more to refresh a mounted ConfigMap.
DEFAULT_TIMEOUT_S = 300.0
DEFAULT_INTERVAL_S = 1.0
REQUEST_TIMEOUT_S = 5.0
PROGRESS_EVERY_S = 15.0


class RolloutError(Exception):
    """A step refused or not finished; the message says why and what to do next."""


@dataclass(frozen=True)
class VersionState:
    """One version as a model server reports it; state "" when it knows nothing of it."""

    state: str
    error: str = ""

    def describe(self) -> str:
        text = self.state or "unknown to the server"
        return f"{text} ({self.error})" if self.error else text


NOT_LOADED = VersionState("")


def _versions(versions: Iterable[int]) -> str:
    listed = sorted(versions)
    return ("version " if len(listed) == 1 else "versions ") + " ".join(str(v) for v in listed)


# --- The model servers' REST API -----------------------------------------------------------


class ServerError(Exception):
    """A model server did not answer, or answered something unexpected."""


class ModelServers:
    """TF Serving's REST status and metadata APIs on every process to check (one per URL)."""

    def __init__(self, urls: Sequence[str], model_name: str, client: httpx.Client) -> None:
        self.urls = [url.rstrip("/") for url in urls]
        self.model_name = model_name
        self._client = client

    def _get(self, url: str, path: str) -> tuple[int, dict[str, Any]]:
        try:
            response = self._client.get(f"{url}/v1/models/{self.model_name}{path}")
            body = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise ServerError(f"{url} did not answer: {exc}") from exc
        if not isinstance(body, dict):
            raise ServerError(f"{url} answered {response.status_code} with {body!r}")
        return response.status_code, body

    def states(self, url: str) -> dict[int, VersionState]:
        """Every version the server knows of (GET /v1/models/NAME)."""
        status, body = self._get(url, "")
        if status == 404:
            return {}
        if status != 200:
            raise ServerError(f"{url} answered {status}: {body.get('error', body)}")
        return {
            int(entry["version"]): _version_state(entry)
            for entry in body.get("model_version_status", [])
        }

    def state(self, url: str, version: int) -> VersionState:
        """One version's state (GET /v1/models/NAME/versions/N); NOT_LOADED when unknown."""
        status, body = self._get(url, f"/versions/{version}")
        if status == 404:
            return NOT_LOADED
        if status != 200:
            raise ServerError(f"{url} answered {status}: {body.get('error', body)}")
        entries = body.get("model_version_status", [])
        return _version_state(entries[0]) if entries else NOT_LOADED

    def label_target(self, url: str, label: str) -> int | str:
        """The version a label resolves to on that server, or the server's error sentence.

        The status API ignores labels; the metadata API resolves them.
        """
        status, body = self._get(url, f"/labels/{label}/metadata")
        if status != 200:
            return str(body.get("error", f"HTTP {status}"))
        return int(body["model_spec"]["version"])


def _version_state(entry: dict[str, Any]) -> VersionState:
    status = entry.get("status", {})
    failed = status.get("error_code", "OK") != "OK"
    return VersionState(str(entry["state"]), str(status.get("error_message", "")) if failed else "")


# --- The steps -----------------------------------------------------------------------------


class Rollout:
    """The steps of a canary rollout on one model of one models.config.

    Args:
        config_path: the models.config the model servers poll (or a copy that
            `after_write` delivers to them).
        servers: the REST APIs that must agree before the next step.
        timeout_s: how long each wait for the servers may take.
        interval_s: pause between two looks at the servers.
        dry_run: print the files a step would write, write nothing.
        after_write: a shell command run after each write (e.g. one that copies the file
            into a Kubernetes ConfigMap); it sees the file's path as $MODELS_CONFIG.
        out: where progress is printed (default: standard output).
    """

    def __init__(
        self,
        config_path: Path,
        servers: ModelServers,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        interval_s: float = DEFAULT_INTERVAL_S,
        dry_run: bool = False,
        after_write: str | None = None,
        out: TextIO | None = None,
    ) -> None:
        self.config_path = config_path
        self.servers = servers
        self.name = servers.model_name
        self.timeout_s = timeout_s
        self.interval_s = interval_s
        self.dry_run = dry_run
        self.after_write = after_write
        self.out = out

    def _say(self, text: str) -> None:
        print(text, file=self.out or sys.stdout, flush=True)

    def _load(self) -> tuple[Proto, Proto]:
        config = read_config(self.config_path)
        return config, model_entry(config, self.name)

    # --- checks and waits ------------------------------------------------------------------

    def _require_available(self, version: int, reason: str) -> None:
        for url in self.servers.urls:
            try:
                state = self.servers.state(url, version)
            except ServerError as exc:
                raise RolloutError(f"Refusing to {reason}: {exc}") from None
            if state.state != "AVAILABLE":
                raise RolloutError(
                    f"Refusing to {reason}: version {version} of {self.name} is "
                    f"{state.describe()} at {url}, not AVAILABLE. TF Serving would refuse the "
                    "file, or send the label's requests to a version that cannot serve them."
                )

    def _wait(self, what: str, done: Callable[[str], tuple[bool, str]], then: str = "") -> None:
        """Wait until `done(url)` holds on every server; done returns (ok, what it saw).

        `then` is added to the error on a timeout: what the file now says and what to do.
        """
        if self.dry_run:
            return
        self._say(f"Waiting up to {self.timeout_s:g} s until {what}.")
        started = time.monotonic()
        next_report = started + PROGRESS_EVERY_S
        pending = list(self.servers.urls)
        seen = ""
        while True:
            for url in list(pending):
                try:
                    ok, seen = done(url)
                except ServerError as exc:
                    ok, seen = False, str(exc)
                if ok:
                    pending.remove(url)
                else:
                    seen = f"{url}: {seen}"
                    break
            now = time.monotonic()
            if not pending:
                self._say(f"Done after {now - started:.1f} s: {what}.")
                return
            if now - started >= self.timeout_s:
                raise RolloutError(
                    f"Timed out after {self.timeout_s:g} s waiting until {what} (last seen: "
                    f"{seen}). {then or self._timeout_advice()}"
                )
            if now >= next_report:
                self._say(f"  still waiting ({seen})")
                next_report = now + PROGRESS_EVERY_S
            time.sleep(self.interval_s)

    def _timeout_advice(self) -> str:
        return (
            f"{self.config_path} is written; a server that has not applied it may have refused "
            "it (its log says why) or not re-read it yet: check with `status`."
        )

    def _wait_available(self, version: int) -> None:
        def available(url: str) -> tuple[bool, str]:
            state = self.servers.state(url, version)
            if state.state == "END" and state.error:
                raise RolloutError(
                    f"Version {version} of {self.name} failed to load at {url}: {state.error}"
                )
            return state.state == "AVAILABLE", f"version {version} is {state.describe()}"

        self._wait(
            f"version {version} is AVAILABLE on {self._where()}",
            available,
            then=f"{self.config_path} now loads version {version} without a label. Publish it "
            f"under the model's base path and run `canary {version}` again, or drop it with "
            "`retire`.",
        )

    def _wait_labels(self, labels: dict[str, int], dropped: Sequence[str] = ()) -> None:
        def applied(url: str) -> tuple[bool, str]:
            for label, version in sorted(labels.items()):
                target = self.servers.label_target(url, label)
                if target != version:
                    return False, f"label {label} resolves to {target}"
            for label in dropped:
                target = self.servers.label_target(url, label)
                if isinstance(target, int):
                    return False, f"label {label} still resolves to {target}"
            return True, ""

        what = describe_labels(labels) + "".join(f", no {label}" for label in dropped)
        self._wait(f"{self._where()} serves labels {what}", applied)

    def _wait_unloaded(self, versions: set[int]) -> None:
        def unloaded(url: str) -> tuple[bool, str]:
            for version in sorted(versions):
                state = self.servers.state(url, version)
                if state.state not in ("", "END"):
                    return False, f"version {version} is {state.describe()}"
            return True, ""

        self._wait(f"{_versions(versions)} unloaded on {self._where()}", unloaded)

    def _where(self) -> str:
        return ", ".join(self.servers.urls)

    # --- writing ---------------------------------------------------------------------------

    def _write(
        self,
        versions: set[int],
        labels: dict[str, int],
        *,
        check: bool = True,
        note: str = "",
    ) -> None:
        """Write the model's new policy and labels after the checks TF Serving makes.

        A label that is new or moves must point at a version loaded in every server
        (`check`), and every label at a version the policy keeps.
        """
        _, entry = self._load()
        current = labels_of(entry)
        if not versions:
            raise RolloutError("Refusing to write a policy with no version: keep at least one.")
        for label, version in sorted(labels.items()):
            if version not in versions:
                raise RolloutError(
                    f"Refusing to point label {label} at version {version}, which the "
                    "policy does not load."
                )
            if check and current.get(label) != version:
                self._require_available(version, f"point label {label} at version {version}")
        text = rewritten(self.config_path.read_text(), self.name, versions, labels)
        listed = " ".join(str(v) for v in sorted(versions))
        summary = f"versions {listed}; labels {describe_labels(labels)}"
        if self.dry_run:
            self._say(f"# {note or 'would write'} {self.config_path}: {summary}")
            self._say(text)
            return
        write_atomically(self.config_path, text)
        self._say(f"Wrote {self.config_path}: {summary}.")
        if self.after_write:
            env = {**os.environ, "MODELS_CONFIG": str(self.config_path)}
            result = subprocess.run(self.after_write, shell=True, env=env, check=False)
            if result.returncode != 0:
                raise RolloutError(
                    f"The --after-write command exited with {result.returncode}; "
                    f"{self.config_path} is written but may not have reached the servers."
                )

    # --- the steps -------------------------------------------------------------------------

    def status(self) -> int:
        """Print the file's policy and labels, and what each server loads and resolves."""
        _, entry = self._load()
        labels = labels_of(entry)
        self._say(f"{self.config_path}, model {self.name}:")
        self._say(f"  policy: {describe_policy(entry)}")
        self._say(f"  labels: {describe_labels(labels)}")
        reachable = True
        for url in self.servers.urls:
            self._say(f"{url}:")
            try:
                states = self.servers.states(url)
                for version, state in sorted(states.items()):
                    self._say(f"  version {version}: {state.describe()}")
                if not states:
                    self._say("  no version of the model")
                for label, version in sorted(labels.items()):
                    target = self.servers.label_target(url, label)
                    applied = "" if target == version else f" (the file says {version})"
                    self._say(f"  label {label} -> {target}{applied}")
            except ServerError as exc:
                self._say(f"  {exc}")
                reachable = False
        return 0 if reachable else 1

    def pin(self, version: int | None = None) -> None:
        """Serve one version under both labels: the starting point of a rollout.

        With policy `latest`, TF Serving swaps to a new version the moment it is
        published; pinned, it loads a new version only when `canary` asks for it.
        """
        _, entry = self._load()
        labels = labels_of(entry)
        if version is None:
            version = self._served_version()
        versions = specific_versions(entry)
        if versions is not None and labels.get(STABLE) is not None:
            if labels[STABLE] == version:
                self._say(f"Already pinned: {describe_labels(labels)}.")
                return
            raise RolloutError(
                f"Already pinned at stable -> {labels[STABLE]}: to serve version {version}, "
                f"run `canary {version}`, then `promote`."
            )
        # Other labels keep their versions; stable and canary both name the pinned one.
        others = {k: v for k, v in labels.items() if k not in (STABLE, CANARY)}
        new_labels = {**others, STABLE: version, CANARY: version}
        self._write({version, *others.values()}, new_labels)
        self._wait_labels({STABLE: version, CANARY: version})

    def _served_version(self) -> int:
        """The newest AVAILABLE version, which every server must agree on."""
        served: dict[str, int] = {}
        for url in self.servers.urls:
            try:
                states = self.servers.states(url)
            except ServerError as exc:
                raise RolloutError(f"Cannot tell which version to pin: {exc}") from None
            available = [v for v, s in states.items() if s.state == "AVAILABLE"]
            if not available:
                raise RolloutError(f"{url} has no AVAILABLE version of {self.name} to pin.")
            served[url] = max(available)
        if len(set(served.values())) > 1:
            seen = ", ".join(f"{url}: {version}" for url, version in served.items())
            raise RolloutError(
                f"The servers serve different versions ({seen}): name the one to pin."
            )
        return next(iter(served.values()))

    def canary(self, version: int) -> None:
        """Load `version` beside the stable one, wait until it is AVAILABLE, label it canary."""
        _, entry = self._load()
        labels = labels_of(entry)
        versions = specific_versions(entry)
        stable = labels.get(STABLE)
        if versions is None or stable is None:
            raise RolloutError(
                f"{self.config_path} does not pin a stable version (policy "
                f"{describe_policy(entry)}, labels {describe_labels(labels)}). Run `pin` "
                "first, before publishing the candidate: policy latest serves a new version "
                "as soon as it is published."
            )
        if version == stable:
            raise RolloutError(f"Version {version} is already stable: nothing to canary.")
        if version not in versions:
            self._write(versions | {version}, labels, note="first, write")
        # Also when the policy already loads it (a canary step that timed out, say).
        self._wait_available(version)
        if labels.get(CANARY) == version:
            self._say(f"canary already points at version {version}.")
        else:
            # The load above is not done in a dry run, so its check is not either.
            self._write(
                versions | {version},
                {**labels, CANARY: version},
                check=not self.dry_run,
                note=f"once version {version} is AVAILABLE, write",
            )
        self._wait_labels({STABLE: stable, CANARY: version})

    def promote(self) -> None:
        """Move stable to the canary's version (which must be AVAILABLE)."""
        _, entry = self._load()
        labels = labels_of(entry)
        versions = specific_versions(entry)
        canary = labels.get(CANARY)
        if canary is None or versions is None:
            raise RolloutError("There is no canary label to promote: run `canary N` first.")
        if labels.get(STABLE) == canary:
            self._say(f"stable already points at version {canary}: nothing to promote.")
            return
        promoted = {**labels, STABLE: canary}
        self._write(versions, promoted)
        self._wait_labels({STABLE: canary, CANARY: canary})
        old = sorted(versions - set(promoted.values()))
        if old:
            self._say(f"`retire` unloads {_versions(old)} once no caller pins them.")

    def rollback(self, drop_label: bool = False) -> None:
        """Point canary back at the stable version, or drop the canary label."""
        _, entry = self._load()
        labels = labels_of(entry)
        versions = specific_versions(entry)
        stable = labels.get(STABLE)
        if stable is None or versions is None:
            raise RolloutError("There is no stable label to roll back to: run `pin` first.")
        canary = labels.get(CANARY)
        if drop_label:
            if canary is None:
                self._say("There is no canary label: nothing to roll back.")
                return
            rest = {k: v for k, v in labels.items() if k != CANARY}
            self._write(versions, rest)
            self._wait_labels({STABLE: stable}, dropped=[CANARY])
        else:
            if canary == stable:
                self._say(f"canary already points at stable (version {stable}).")
                return
            self._write(versions, {**labels, CANARY: stable})
            self._wait_labels({STABLE: stable, CANARY: stable})
        if canary is not None and canary != stable:
            self._say(f"`retire` unloads version {canary}.")

    def retire(self) -> None:
        """Drop from the policy every version no label points at, keeping at least one."""
        _, entry = self._load()
        labels = labels_of(entry)
        versions = specific_versions(entry)
        if versions is None:
            self._say(
                f"Policy {describe_policy(entry)}: TF Serving unloads old versions itself; "
                "nothing to retire."
            )
            return
        keep = set(labels.values()) or {max(versions)}
        dropped = versions - keep
        if not dropped:
            self._say(f"Every loaded version is labelled ({describe_labels(labels)}).")
            return
        for version in sorted(keep):
            self._require_available(version, f"unload {_versions(dropped)}")
        self._write(keep, labels)
        self._wait_unloaded(dropped)


# --- Command line --------------------------------------------------------------------------


def _add_options(parser: argparse.ArgumentParser, suppress: bool) -> None:
    """The common options, accepted before or after the step's name."""

    def default(value: object) -> object:
        return argparse.SUPPRESS if suppress else value

    parser.add_argument(
        "--config",
        type=Path,
        default=default(DEFAULT_CONFIG),
        help="the models.config to edit (default: %(default)s)",
    )
    parser.add_argument("--model-name", default=default(MODEL_NAME))
    parser.add_argument(
        "--url",
        action="append",
        default=default(None),
        help=f"REST address of a model server to check; repeat it for each process "
        f"(default: {DEFAULT_URL})",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=default(DEFAULT_TIMEOUT_S),
        help="seconds each wait for the servers may take (default: %(default)s)",
    )
    parser.add_argument(
        "--interval",
        type=float,
        default=default(DEFAULT_INTERVAL_S),
        help="seconds between two looks at the servers (default: %(default)s)",
    )
    parser.add_argument(
        "--dry-run", action="store_true", default=default(False), help="print, do not write"
    )
    parser.add_argument(
        "--after-write",
        metavar="COMMAND",
        default=default(None),
        help="shell command run after each write, with the file's path in $MODELS_CONFIG "
        "(e.g. to copy it into a Kubernetes ConfigMap)",
    )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m serving.rollout",
        description="Carry a model version from published to stable by editing models.config "
        "in the order TF Serving accepts, checking the model servers at each step.",
    )
    _add_options(parser, suppress=False)
    steps = parser.add_subparsers(dest="step", required=True, metavar="STEP")

    def step(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = steps.add_parser(name, help=help_text, description=help_text)
        _add_options(sub, suppress=True)
        return sub

    step("status", "show the file's versions and labels and what each server serves")
    step("pin", "serve one version under both labels (before publishing a candidate)").add_argument(
        "version", type=int, nargs="?", help="default: the newest AVAILABLE version"
    )
    step("canary", "load a version, wait until it is AVAILABLE, label it canary").add_argument(
        "version", type=int
    )
    step("promote", "move stable to the canary's version")
    step("rollback", "point canary back at the stable version").add_argument(
        "--drop-label", action="store_true", help="remove the canary label instead"
    )
    step("retire", "unload every version no label points at")
    args = parser.parse_args(argv)
    args.url = args.url or [DEFAULT_URL]
    return args


def main(argv: Sequence[str] | None = None, *, transport: httpx.BaseTransport | None = None) -> int:
    """Run one step. `transport` replaces the network under the REST client (tests)."""
    args = parse_args(argv)
    with httpx.Client(timeout=REQUEST_TIMEOUT_S, transport=transport) as client:
        rollout = Rollout(
            args.config,
            ModelServers(args.url, args.model_name, client),
            timeout_s=args.timeout,
            interval_s=args.interval,
            dry_run=args.dry_run,
            after_write=args.after_write,
        )
        try:
            if args.step == "status":
                return rollout.status()
            if args.step == "pin":
                rollout.pin(args.version)
            elif args.step == "canary":
                rollout.canary(args.version)
            elif args.step == "promote":
                rollout.promote()
            elif args.step == "rollback":
                rollout.rollback(drop_label=args.drop_label)
            elif args.step == "retire":
                rollout.retire()
        except RolloutError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        except (OSError, ValueError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
