"""The steps of a canary rollout, in the order TF Serving accepts them.

Each step reads the model's policy and labels from models.config, refuses what TF Serving
would refuse, writes the new policy and labels, then waits until every server shows them:
a version is loaded before a label names it, and unloaded only once no label does.
"""

import sys
from pathlib import Path
from typing import TextIO

from contract import STABLE_LABEL
from serving.models_config_file import (
    Proto,
    describe_labels,
    describe_policy,
    describe_versions,
    labels_of,
    model_entry,
    read_config,
    rewritten,
    specific_versions,
)
from serving.rollout.config_writer import ConfigWriter
from serving.rollout.errors import RolloutError
from serving.rollout.polling import DEFAULT_INTERVAL_S, DEFAULT_TIMEOUT_S, ServerPoller
from serving.rollout.servers import ModelServers, ServerError

STABLE = STABLE_LABEL
CANARY = "canary"


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
        self.dry_run = dry_run
        self.out = out
        self.poller = ServerPoller(
            servers,
            config_path,
            timeout_s=timeout_s,
            interval_s=interval_s,
            dry_run=dry_run,
            say=self._say,
        )
        self.writer = ConfigWriter(
            config_path, dry_run=dry_run, after_write=after_write, say=self._say
        )

    def _say(self, text: str) -> None:
        print(text, file=self.out or sys.stdout, flush=True)

    def _entry(self) -> Proto:
        """The model's entry as the file holds it now."""
        return model_entry(read_config(self.config_path), self.name)

    def _labels_and_versions(self) -> tuple[dict[str, int], set[int] | None]:
        """The entry's labels, and its policy's versions (None unless `specific`)."""
        entry = self._entry()
        return labels_of(entry), specific_versions(entry)

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
        current = labels_of(self._entry())
        if not versions:
            raise RolloutError("Refusing to write a policy with no version: keep at least one.")
        for label, version in sorted(labels.items()):
            if version not in versions:
                raise RolloutError(
                    f"Refusing to point label {label} at version {version}, which the "
                    "policy does not load."
                )
            if check and current.get(label) != version:
                self.poller.require_available(version, f"point label {label} at version {version}")
        text = rewritten(self.config_path.read_text(), self.name, versions, labels)
        listed = " ".join(str(v) for v in sorted(versions))
        self.writer.write(text, f"versions {listed}; labels {describe_labels(labels)}", note)

    # --- the steps -------------------------------------------------------------------------

    def status(self) -> int:
        """Print the file's policy and labels, and what each server loads and resolves."""
        entry = self._entry()
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
        self.poller.wait_labels({STABLE: version, CANARY: version})

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
        entry = self._entry()
        labels, versions = labels_of(entry), specific_versions(entry)
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
        self.poller.wait_available(version)
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
        self.poller.wait_labels({STABLE: stable, CANARY: version})

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
        self.poller.wait_labels({STABLE: canary, CANARY: canary})
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
            self.poller.wait_labels({STABLE: stable}, dropped=[CANARY])
        else:
            if canary == stable:
                self._say(f"canary already points at stable (version {stable}).")
                return
            self._write(versions, {**labels, CANARY: stable})
            self.poller.wait_labels({STABLE: stable, CANARY: stable})
        if canary is not None and canary != stable:
            self._say(f"`retire` unloads version {canary}.")

    def retire(self) -> None:
        """Drop from the policy every version no label points at, keeping at least one."""
        entry = self._entry()
        labels, versions = labels_of(entry), specific_versions(entry)
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
            self.poller.require_available(version, f"unload {describe_versions(dropped)}")
        self._write(keep, labels)
        self.poller.wait_unloaded(dropped)
