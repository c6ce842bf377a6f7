"""Checks and waits on every model server, around each write of a rollout step.

TF Serving refuses a whole file whose label names a version it has not loaded, and it
applies a file only when it next polls it: so a label moves only to a version every server
reports AVAILABLE, and a step is done only when every server shows the change.
"""

import time
from collections.abc import Callable, Sequence
from pathlib import Path

from serving.models_config_file import describe_labels, describe_versions
from serving.rollout.errors import RolloutError
from serving.rollout.servers import ModelServers, ServerError

# TF Serving re-reads the file every 60 s; on Kubernetes the kubelet takes up to about a
# minute more to refresh a mounted ConfigMap.
DEFAULT_TIMEOUT_S = 300.0
DEFAULT_INTERVAL_S = 1.0
PROGRESS_EVERY_S = 15.0

# What a server shows for one URL: (done, what it saw, for the progress and timeout lines).
Check = Callable[[str], tuple[bool, str]]


class ServerPoller:
    """Looks at every server of `servers` until a condition holds on all of them.

    Args:
        servers: the REST APIs that must agree before the next step.
        config_path: the file the servers poll, named in the advice on a timeout.
        timeout_s: how long each wait may take.
        interval_s: pause between two looks at the servers.
        dry_run: waits return at once (nothing was written to wait for).
        say: prints one line of progress.
    """

    def __init__(
        self,
        servers: ModelServers,
        config_path: Path,
        *,
        timeout_s: float,
        interval_s: float,
        dry_run: bool,
        say: Callable[[str], None],
    ) -> None:
        self.servers = servers
        self.name = servers.model_name
        self.config_path = config_path
        self.timeout_s = timeout_s
        self.interval_s = interval_s
        self.dry_run = dry_run
        self._say = say

    def require_available(self, version: int, reason: str) -> None:
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

    def wait(self, what: str, done: Check, then: str = "") -> None:
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

    def wait_available(self, version: int) -> None:
        """Until every server has loaded `version`; a failed load ends the wait at once."""

        def available(url: str) -> tuple[bool, str]:
            state = self.servers.state(url, version)
            if state.state == "END" and state.error:
                raise RolloutError(
                    f"Version {version} of {self.name} failed to load at {url}: {state.error}"
                )
            return state.state == "AVAILABLE", f"version {version} is {state.describe()}"

        self.wait(
            f"version {version} is AVAILABLE on {self._where()}",
            available,
            then=f"{self.config_path} now loads version {version} without a label. Publish it "
            f"under the model's base path and run `canary {version}` again, or drop it with "
            "`retire`.",
        )

    def wait_labels(self, labels: dict[str, int], dropped: Sequence[str] = ()) -> None:
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
        self.wait(f"{self._where()} serves labels {what}", applied)

    def wait_unloaded(self, versions: set[int]) -> None:
        """Until no server has any of `versions` loaded or loading."""

        def unloaded(url: str) -> tuple[bool, str]:
            for version in sorted(versions):
                state = self.servers.state(url, version)
                if state.state not in ("", "END"):
                    return False, f"version {version} is {state.describe()}"
            return True, ""

        self.wait(f"{describe_versions(versions)} unloaded on {self._where()}", unloaded)

    def _where(self) -> str:
        return ", ".join(self.servers.urls)
