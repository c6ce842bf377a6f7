"""The rollout command: each step in the order TF Serving accepts, refusals, waits, and a
version carried from published to stable through the real model server under traffic."""

import os
import shutil
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from serving.rollout.__main__ import main
from serving.rollout.servers import ModelServers
from serving.rollout.steps import Rollout, RolloutError
from serving.tf_serving_config import (
    LabelError,
    check_version_labels,
    parse_model_config,
    parse_model_server_config,
)
from tests.deploy.files import ROOT, deployment_config

URL = "http://tf-serving:8501"

LATEST = """\
model_config_list {
  config {
    name: "mnist"
    base_path: "/models/mnist"
    model_platform: "tensorflow"
    model_version_policy { latest { num_versions: 1 } }
  }
}
"""


def pinned(versions: list[int], **labels: int) -> str:
    policy = " ".join(f"versions: {v}" for v in versions)
    label_lines = "".join(
        f'    version_labels {{ key: "{k}" value: {v} }}\n' for k, v in labels.items()
    )
    return (
        'model_config_list {\n  config {\n    name: "mnist"\n    base_path: "/models/mnist"\n'
        '    model_platform: "tensorflow"\n'
        f"    model_version_policy {{ specific {{ {policy} }} }}\n{label_lines}  }}\n}}\n"
    )


class FakeTFServing:
    """TF Serving's config polling and REST status/metadata APIs over a models.config.

    Every request first polls the file, as --model_config_file_poll_wait_seconds would: a
    changed file is taken the way ServerCore::ReloadConfig takes it (labels checked against
    what is AVAILABLE before anything loads, with --allow_version_labels_for_unavailable_models;
    a refused file is recorded and ignored). A version loads over `load_polls` requests;
    versions in `failing` fail to load.
    """

    def __init__(
        self,
        config: Path,
        published: set[int],
        load_polls: int = 2,
        failing: frozenset[int] = frozenset(),
    ) -> None:
        self.config = config
        self.published = published
        self.load_polls = load_polls
        self.failing = failing
        self.text: str | None = None
        self.labels: dict[str, int] = {}
        self.states: dict[int, str] = {}
        self.errors: dict[int, str] = {}
        self.loading: dict[int, int] = {}
        self.applied: list[tuple[dict[str, int], set[int]]] = []  # labels, AVAILABLE then
        self.refused: list[str] = []
        self.mislabelled: list[str] = []  # a label resolved to a version not AVAILABLE
        self.settle()

    def settle(self) -> None:
        """Take the file and finish loading what it asks for, as a server that has run a while."""
        self.poll()
        while self.loading:
            self.poll()

    def available(self) -> set[int]:
        return {v for v, state in self.states.items() if state == "AVAILABLE"}

    def poll(self) -> None:
        for version in list(self.loading):
            self.loading[version] -= 1
            if self.loading[version] <= 0:
                del self.loading[version]
                self.states[version] = "AVAILABLE"
        text = self.config.read_text()
        if text == self.text:
            return
        self.text = text
        (spec,) = parse_model_config(text)
        try:
            check_version_labels([spec], {"mnist": self.labels}, {"mnist": self.available()}, True)
        except LabelError as exc:
            self.refused.append(f"{exc}\n{text}")
            return
        self.labels = dict(spec.labels)
        self.applied.append((dict(self.labels), self.available()))
        wanted = set(spec.policy.choose(sorted(self.published)))
        for version in wanted - self.available() - set(self.loading):
            if version in self.failing:
                self.states[version] = "END"
                self.errors[version] = f"Failed to load version {version}: bad SavedModel"
            else:
                self.states[version] = "LOADING"
                self.loading[version] = self.load_polls
        for version in self.available() - wanted:
            self.states[version] = "END"

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.poll()
        for label, version in self.labels.items():
            if self.states.get(version) != "AVAILABLE":
                self.mislabelled.append(f"{label} -> {version} ({self.states.get(version)})")
        path = request.url.path.removeprefix("/v1/models/mnist")
        if path == "":
            return httpx.Response(200, json={"model_version_status": self._status(self.states)})
        if path.startswith("/versions/"):
            version = int(path.removeprefix("/versions/"))
            if version not in self.states:
                error = f"Could not find version {version} of model mnist"
                return httpx.Response(404, json={"error": error})
            return httpx.Response(200, json={"model_version_status": self._status([version])})
        label = path.removeprefix("/labels/").removesuffix("/metadata")
        if label not in self.labels:
            return httpx.Response(
                400, json={"error": f"Unrecognized servable version label: {label}"}
            )
        version = self.labels[label]
        if self.states.get(version) != "AVAILABLE":
            error = f"Servable not found for request: Specific(mnist, {version})"
            return httpx.Response(404, json={"error": error})
        spec = {"name": "mnist", "signature_name": "", "version": str(version)}
        return httpx.Response(200, json={"model_spec": spec, "metadata": {}})

    def _status(self, versions: object) -> list[dict[str, object]]:
        return [
            {
                "version": str(v),
                "state": self.states[v],
                "status": {
                    "error_code": "UNKNOWN" if v in self.errors else "OK",
                    "error_message": self.errors.get(v, ""),
                },
            }
            for v in sorted(versions)  # type: ignore[call-overload]
        ]


def transport(*servers: FakeTFServing) -> httpx.MockTransport:
    by_host = {f"server{i}": server for i, server in enumerate(servers)}
    return httpx.MockTransport(lambda request: by_host[request.url.host].handle(request))


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "models.config"
    path.write_text(LATEST)
    return path


def rollout(
    config: Path, *servers: FakeTFServing, timeout_s: float = 2.0, **options: object
) -> Rollout:
    client = httpx.Client(transport=transport(*servers))
    urls = [f"http://server{i}:8501" for i in range(len(servers))]
    return Rollout(
        config,
        ModelServers(urls, "mnist", client),
        timeout_s=timeout_s,
        interval_s=0.001,
        **options,  # type: ignore[arg-type]
    )


def policy_and_labels(config: Path) -> tuple[list[int], dict[str, int]]:
    (spec,) = parse_model_config(config.read_text())
    return sorted(spec.policy.versions), spec.labels


def test_rollout_carries_a_version_from_published_to_stable(config: Path) -> None:
    server = FakeTFServing(config, published={1})
    steps = rollout(config, server)
    steps.pin()
    assert policy_and_labels(config) == ([1], {"stable": 1, "canary": 1})
    server.published.add(2)  # nothing loads it: the policy is pinned
    server.poll()
    assert server.states == {1: "AVAILABLE"}
    steps.canary(2)
    assert policy_and_labels(config) == ([1, 2], {"stable": 1, "canary": 2})
    steps.promote()
    assert policy_and_labels(config) == ([1, 2], {"stable": 2, "canary": 2})
    steps.retire()
    assert policy_and_labels(config) == ([2], {"stable": 2, "canary": 2})
    assert server.states == {1: "END", 2: "AVAILABLE"}
    assert server.refused == [] and server.mislabelled == []


def test_rollout_of_the_readme_leaves_the_shipped_config_a_deployment_config(
    tmp_path: Path,
) -> None:
    """The README's compose walkthrough on serving/models.config itself. Only the policy
    and the labels change; the heading comments and every other field stay, so the checks of
    tests/deploy (the same config as the ConfigMap's, but for those) hold afterwards."""
    shipped = (ROOT / "serving/models.config").read_text()
    config = tmp_path / "models.config"
    config.write_text(shipped)
    server = FakeTFServing(config, published={1})
    steps = rollout(config, server)

    steps.pin()
    server.published.add(2)
    steps.canary(2)
    steps.promote()
    steps.retire()

    assert policy_and_labels(config) == ([2], {"stable": 2, "canary": 2})
    assert deployment_config(config.read_text()) == deployment_config(shipped)
    assert server.refused == [] and server.mislabelled == []


def test_rollout_canary_loads_then_waits_then_labels(config: Path) -> None:
    config.write_text(pinned([1], stable=1, canary=1))
    server = FakeTFServing(config, published={1, 2}, load_polls=5)
    rollout(config, server).canary(2)
    # Each config TF Serving took: labels, and the versions AVAILABLE when it took them.
    assert server.applied == [
        ({"stable": 1, "canary": 1}, set()),  # at start-up: new labels, nothing loaded
        ({"stable": 1, "canary": 1}, {1}),  # version 2 added, labels unchanged
        ({"stable": 1, "canary": 2}, {1, 2}),  # labelled once AVAILABLE
    ]
    assert server.refused == []


def test_rollout_canary_times_out_leaving_the_version_loaded_unlabelled(config: Path) -> None:
    config.write_text(pinned([1], stable=1, canary=1))
    server = FakeTFServing(config, published={1})
    with pytest.raises(RolloutError) as refused:
        rollout(config, server, timeout_s=0.2).canary(3)
    assert "version 3 is AVAILABLE" in str(refused.value)
    assert "last seen: http://server0:8501: version 3 is unknown to the server" in str(
        refused.value
    )
    assert "now loads version 3 without a label" in str(refused.value)
    assert policy_and_labels(config) == ([1, 3], {"stable": 1, "canary": 1})


def test_rollout_canary_stops_at_a_failed_load(config: Path) -> None:
    config.write_text(pinned([1], stable=1, canary=1))
    server = FakeTFServing(config, published={1, 2}, failing=frozenset({2}))
    with pytest.raises(RolloutError, match="failed to load .*bad SavedModel"):
        rollout(config, server).canary(2)
    assert policy_and_labels(config)[1] == {"stable": 1, "canary": 1}


def test_rollout_canary_refuses_an_unpinned_config(config: Path) -> None:
    server = FakeTFServing(config, published={1, 2})
    with pytest.raises(RolloutError, match="Run `pin` first"):
        rollout(config, server).canary(2)
    assert config.read_text() == LATEST


def test_rollout_promote_refuses_a_canary_that_is_not_available(config: Path) -> None:
    text = pinned([1, 2], stable=1, canary=2)
    config.write_text(text)
    server = FakeTFServing(config, published={1})  # version 2 is not on disk
    with pytest.raises(RolloutError, match="version 2 of mnist is unknown.*not AVAILABLE"):
        rollout(config, server).promote()
    assert config.read_text() == text


@pytest.mark.parametrize(
    ("drop_label", "labels"),
    [
        pytest.param(False, {"stable": 1, "canary": 1}, id="canary-back-to-stable"),
        pytest.param(True, {"stable": 1}, id="drop-canary-label"),
    ],
)
def test_rollout_rollback(config: Path, drop_label: bool, labels: dict[str, int]) -> None:
    config.write_text(pinned([1, 2], stable=1, canary=2))
    server = FakeTFServing(config, published={1, 2})
    steps = rollout(config, server)
    steps.rollback(drop_label=drop_label)
    assert policy_and_labels(config) == ([1, 2], labels)
    steps.retire()
    assert policy_and_labels(config) == ([1], labels)
    assert server.states[2] == "END" and server.refused == []


@pytest.mark.parametrize(
    ("start", "kept"),
    [
        pytest.param(pinned([1, 2, 3], stable=2, canary=3), [2, 3], id="labelled-kept"),
        pytest.param(pinned([1, 2]), [2], id="no-label-keeps-newest"),
    ],
)
def test_rollout_retire_keeps_labelled_versions(config: Path, start: str, kept: list[int]) -> None:
    config.write_text(start)
    server = FakeTFServing(config, published={1, 2, 3})
    rollout(config, server).retire()
    assert policy_and_labels(config)[0] == kept


def test_rollout_waits_for_every_server(config: Path) -> None:
    config.write_text(pinned([1], stable=1, canary=1))
    fast = FakeTFServing(config, published={1, 2}, load_polls=1)
    slow = FakeTFServing(config, published={1, 2}, load_polls=30)
    rollout(config, fast, slow).canary(2)
    assert fast.states[2] == slow.states[2] == "AVAILABLE"
    assert fast.refused == slow.refused == []
    # A process that never loads it stops the step before the label moves.
    config.write_text(pinned([1], stable=1, canary=1))
    missing = FakeTFServing(config, published={1})
    with pytest.raises(RolloutError, match="Timed out"):
        rollout(config, FakeTFServing(config, published={1, 2}), missing, timeout_s=0.2).canary(2)
    assert policy_and_labels(config)[1]["canary"] == 1


def test_rollout_dry_run_prints_and_writes_nothing(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config.write_text(pinned([1], stable=1, canary=1))
    before = config.read_text()
    server = FakeTFServing(config, published={1, 2})
    rollout(config, server, dry_run=True).canary(2)
    printed = capsys.readouterr().out
    assert config.read_text() == before
    first, second = printed.split("# once version 2 is AVAILABLE, write")
    assert "versions: 2" in first and "value: 2" not in first
    assert 'key: "canary"\n      value: 2' in second


def test_rollout_writes_atomically_keeping_the_mode(config: Path) -> None:
    config.chmod(0o640)
    server = FakeTFServing(config, published={1})
    rollout(config, server).pin()
    assert stat.S_IMODE(config.stat().st_mode) == 0o640
    assert [p.name for p in config.parent.iterdir()] == ["models.config"]
    # What is written is what TF Serving parses: the same config, comments aside.
    (spec,) = parse_model_config(config.read_text())
    assert (spec.name, str(spec.base_path), spec.policy.kind) == (
        "mnist",
        "/models/mnist",
        "specific",
    )
    (entry,) = parse_model_server_config(config.read_text()).model_config_list.config
    assert entry.model_platform == "tensorflow"


def test_rollout_after_write_command_delivers_the_file(config: Path, tmp_path: Path) -> None:
    """As on Kubernetes: the servers read a copy (the ConfigMap), not the file edited."""
    delivered = tmp_path / "configmap" / "models.config"
    delivered.parent.mkdir()
    config.write_text(pinned([1], stable=1, canary=1))
    shutil.copy(config, delivered)
    server = FakeTFServing(delivered, published={1, 2})
    rollout(config, server, after_write=f'cp "$MODELS_CONFIG" "{delivered}"').canary(2)
    assert policy_and_labels(delivered) == ([1, 2], {"stable": 1, "canary": 2})
    failing = rollout(config, server, after_write="exit 3")
    with pytest.raises(RolloutError, match="exited with 3"):
        failing.promote()


def test_rollout_cli_status_and_refusal(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config.write_text(pinned([1, 2], stable=1, canary=2))
    server = FakeTFServing(config, published={1, 2}, load_polls=0)
    argv = ["--config", str(config), "--url", "http://server0:8501", "status"]
    assert main(argv, transport=transport(server)) == 0
    out = capsys.readouterr().out
    assert "policy: specific 1 2" in out
    assert "version 2: AVAILABLE" in out and "label canary -> 2" in out
    # Options after the step's name; a refusal is a sentence on stderr and exit code 1.
    argv = ["canary", "1", "--config", str(config), "--url", "http://server0:8501"]
    assert main(argv, transport=transport(server)) == 1
    assert "Version 1 is already stable" in capsys.readouterr().err


# --- End to end: the real model server, polling the file, under traffic --------------------

BODY = {"instances": [[[[0.0]] * 28] * 28]}
RELOADED = "Reloaded the model config from"  # the model server's log line


class Traffic:
    """Predict requests to both labels from a background thread; every failure is kept."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.failures: list[str] = []
        self.answered = {"stable": 0, "canary": 0}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        deadline = time.monotonic() + 600  # bounded, whatever happens to the test
        with httpx.Client(timeout=30) as client:
            while not self._stop.is_set() and time.monotonic() < deadline:
                for label in self.answered:
                    path = f"/v1/models/mnist/labels/{label}:predict"
                    try:
                        response = client.post(self.url + path, json=BODY)
                    except httpx.HTTPError as exc:
                        self.failures.append(f"{label}: {exc!r}")
                        continue
                    if response.status_code == 200:
                        self.answered[label] += 1
                    else:
                        self.failures.append(f"{label}: {response.status_code} {response.text}")
                time.sleep(0.02)

    def __enter__(self) -> "Traffic":
        self._thread.start()
        return self

    def answers(self, more: int = 5, timeout_s: float = 60) -> None:
        """Until each label has answered `more` requests beyond its count now."""
        wanted = {label: count + more for label, count in self.answered.items()}
        deadline = time.monotonic() + timeout_s
        while any(self.answered[label] < wanted[label] for label in wanted):
            assert time.monotonic() < deadline, f"stalled: {self.answered} {self.failures[-3:]}"
            time.sleep(0.05)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=60)


def run_step(config: Path, url: str, *step: str) -> str:
    command = [sys.executable, "-m", "serving.rollout", "--config", str(config), "--url", url]
    result = subprocess.run(
        [*command, "--interval", "0.2", "--timeout", "120", *step],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, f"{step}: {result.stdout}{result.stderr}"
    return result.stdout


def label_version(url: str, label: str) -> str:
    response = httpx.get(f"{url}/v1/models/mnist/labels/{label}/metadata", timeout=10)
    assert response.status_code == 200, response.text
    return str(response.json()["model_spec"]["version"])


def scan_after_this(config: Path, log: Path) -> None:
    """Return once the server has scanned its model folders since this call began.

    The server logs each models.config change it applies, then scans the folders before it
    reads the file again. Of three changes (whitespace), each awaited in the log, the last
    is logged after a scan that followed an earlier one, even if the rollout step's own
    reload was logged after the count was read."""
    text = config.read_text()
    reloads = log.read_text().count(RELOADED)
    for blank_lines in (1, 2, 3):
        staging = config.with_suffix(".touched")
        staging.write_text(text + "\n" * blank_lines)
        os.replace(staging, config)
        reloads += 1
        deadline = time.monotonic() + 60
        while log.read_text().count(RELOADED) < reloads:
            assert time.monotonic() < deadline, log.read_text()[-2000:]
            time.sleep(0.05)


@pytest.mark.e2e
@pytest.mark.slow
def test_e2e_rollout_publishes_to_stable_without_a_failed_request(
    exported_model: Path, tmp_path: Path
) -> None:
    from tests.e2e.conftest import config_model_server, free_port

    base = tmp_path / "models" / "mnist"
    shutil.copytree(exported_model, base / "1")
    config = tmp_path / "models.config"
    config.write_text(LATEST.replace("/models/mnist", str(base)))
    port = free_port()
    server = config_model_server(config, port, tmp_path / "serving.log")
    try:
        server.start()
        url = server.url
        run_step(config, url, "pin")
        with Traffic(url) as traffic:
            traffic.answers()
            # Publish as training does: copy beside, then rename into place.
            shutil.copytree(exported_model, base / ".staging-2")
            os.rename(base / ".staging-2", base / "2")
            # Pinned: a scan of the folders that saw version 2 leaves it unloaded.
            scan_after_this(config, tmp_path / "serving.log")
            assert httpx.get(f"{url}/v1/models/mnist/versions/2").status_code == 404
            out = run_step(config, url, "canary", "2")
            assert "version 2 is AVAILABLE" in out
            assert (label_version(url, "stable"), label_version(url, "canary")) == ("1", "2")
            run_step(config, url, "promote")
            assert label_version(url, "stable") == "2"
            run_step(config, url, "retire")
            status = httpx.get(f"{url}/v1/models/mnist").json()["model_version_status"]
            assert {s["version"]: s["state"] for s in status} == {"1": "END", "2": "AVAILABLE"}
            traffic.answers()  # requests keep being answered after version 1 is retired
        assert traffic.failures == []
        assert min(traffic.answered.values()) >= 10, traffic.answered
        assert "label stable -> 2" in run_step(config, url, "status")
    finally:
        server.stop()
