"""The steps of a canary rollout, in the order TF Serving accepts them.

Each step reads the model's policy and labels from models.config, refuses what TF Serving
would refuse, writes the new policy and labels, then waits until every server shows them.
TF Serving refuses a whole file whose label names a version it has not loaded, and applies a
file only when it next polls it: so a version is loaded before a label names it, a label
moves only to a version every server reports AVAILABLE, and a version is unloaded only once
no label names it.
"""

import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from contract import STABLE_LABEL
from serving.rollout.servers import ModelServers, ServerError
from serving.tf_serving_config import ModelSpec, parse_model_config, rewritten

STABLE = STABLE_LABEL
CANARY = "canary"
# TF Serving re-reads the file every 60 s; on Kubernetes the kubelet takes up to about a
# minute more to refresh a mounted ConfigMap.
DEFAULT_TIMEOUT_S = 300.0
DEFAULT_INTERVAL_S = 1.0
PROGRESS_EVERY_S = 15.0

# What a server shows for one URL: (done, what it saw, for the progress and timeout lines).
Check = Callable[[str], tuple[bool, str]]


class RolloutError(Exception):
    """A step refused or not finished; the message says why and what to do next."""


def describe_labels(labels: dict[str, int]) -> str:
    if not labels:
        return "none"
    return ", ".join(f"{label} -> {version}" for label, version in sorted(labels.items()))


def describe_versions(versions: Iterable[int]) -> str:
    listed = sorted(versions)
    return ("version " if len(listed) == 1 else "versions ") + " ".join(str(v) for v in listed)


def write_atomically(path: Path, text: str) -> None:
    """Replace `path` in one rename, keeping its permission bits (a server running as another
    user must still read it): a server polling the file reads the old text or the new."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text)
    shutil.copymode(path, temporary)
    os.replace(temporary, path)


class Rollout:
    """The steps of a canary rollout on one model of one models.config (the file the
    servers poll, or a copy `after_write` delivers to them). A dry run prints the files a
    step would write, and writes and waits for nothing."""

    def __init__(
        self,
        config_path: Path,
        servers: ModelServers,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        interval_s: float = DEFAULT_INTERVAL_S,
        dry_run: bool = False,
        after_write: str | None = None,
    ) -> None:
        self.config_path = config_path
        self.servers = servers
        self.name = servers.model_name
        self.timeout_s = timeout_s
        self.interval_s = interval_s
        self.dry_run = dry_run
        self.after_write = after_write

    def _say(self, text: str) -> None:
        print(text, flush=True)

    def _model(self) -> ModelSpec:
        """The model's entry as the file holds it now."""
        for spec in parse_model_config(self.config_path.read_text()):
            if spec.name == self.name:
                return spec
        raise ValueError(f"{self.config_path} has no model named {self.name!r}")

    def _labels_and_versions(self) -> tuple[dict[str, int], set[int] | None]:
        """The entry's labels, and its policy's versions (None unless `specific`)."""
        spec = self._model()
        specific = spec.policy.kind == "specific"
        return spec.labels, set(spec.policy.versions) if specific else None

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
        (`check`), and every label at a version the policy keeps. Where the servers read a
        copy of the file (a Kubernetes ConfigMap), the --after-write command delivers it.
        """
        current = self._model().labels
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

    # --- checks and waits on every server ------------------------------------------------

    def _require_available(self, version: int, reason: str) -> None:
        """Refuse (RolloutError naming `reason`) unless every server has `version` AVAILABLE."""
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

    def _wait(self, what: str, done: Check, then: str = "") -> None:
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
                    f"{seen}). "
                    + (
                        then
                        or f"{self.config_path} is written; a server that has not applied it "
                        "may have refused it (its log says why) or not re-read it yet: check "
                        "with `status`."
                    )
                )
            if now >= next_report:
                self._say(f"  still waiting ({seen})")
                next_report = now + PROGRESS_EVERY_S
            time.sleep(self.interval_s)

    def _wait_available(self, version: int) -> None:
        """Until every server has loaded `version`; a failed load ends the wait at once."""

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
        """Until every server resolves each label to its version, and no `dropped` label."""

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
        """Until no server has any of `versions` loaded or loading."""

        def unloaded(url: str) -> tuple[bool, str]:
            for version in sorted(versions):
                state = self.servers.state(url, version)
                if state.state not in ("", "END"):
                    return False, f"version {version} is {state.describe()}"
            return True, ""

        self._wait(f"{describe_versions(versions)} unloaded on {self._where()}", unloaded)

    def _where(self) -> str:
        return ", ".join(self.servers.urls)

    # --- the steps -------------------------------------------------------------------------

    def status(self) -> int:
        """Print the file's policy and labels, and what each server loads and resolves."""
        spec = self._model()
        labels = spec.labels
        self._say(f"{self.config_path}, model {self.name}:")
        self._say(f"  policy: {spec.policy.describe()}")
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
        labels, versions = self._labels_and_versions()
        if version is None:
            version = self._served_version()
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
        labels, versions = self._labels_and_versions()
        stable = labels.get(STABLE)
        if versions is None or stable is None:
            raise RolloutError(
                f"{self.config_path} does not pin a stable version (policy "
                f"{self._model().policy.describe()}, labels {describe_labels(labels)}). Run `pin` "
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
        labels, versions = self._labels_and_versions()
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
            self._say(f"`retire` unloads {describe_versions(old)} once no caller pins them.")

    def rollback(self, drop_label: bool = False) -> None:
        """Point canary back at the stable version, or drop the canary label."""
        labels, versions = self._labels_and_versions()
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
        labels, versions = self._labels_and_versions()
        if versions is None:
            self._say(
                f"Policy {self._model().policy.describe()}: TF Serving unloads old versions "
                "itself; nothing to retire."
            )
            return
        keep = set(labels.values()) or {max(versions)}
        dropped = versions - keep
        if not dropped:
            self._say(f"Every loaded version is labelled ({describe_labels(labels)}).")
            return
        for version in sorted(keep):
            self._require_available(version, f"unload {describe_versions(dropped)}")
        self._write(keep, labels)
        self._wait_unloaded(dropped)
