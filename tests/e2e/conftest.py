"""Real processes on free loopback ports: the local model server and the gateway, as
users run them. Everything a test starts is stopped, even when the test fails."""

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

pytest.importorskip("tensorflow")

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.e2e


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Service:
    """A started process and its base URL."""

    command: list[str]
    url: str
    health_path: str
    env: dict[str, str]
    log: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 90) -> "Service":
        log = self.log.open("ab")
        self.process = subprocess.Popen(
            self.command, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"{self.command} exited: {self.log.read_text()[-2000:]}")
            try:
                if httpx.get(self.url + self.health_path, timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise AssertionError(
            f"{self.url}{self.health_path} not ready: {self.log.read_text()[-2000:]}"
        )

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def model_server(base: Path, port: int, log: Path) -> Service:
    return Service(
        [
            sys.executable,
            "-m",
            "serving",
            "--model-base-path",
            str(base),
            "--port",
            str(port),
            "--file-system-poll-wait-seconds",
            "0.5",
            "--batching-parameters-file",
            "serving/batching.config",
            "--monitoring-config-file",
            "serving/monitoring.config",
        ],
        f"http://127.0.0.1:{port}",
        "/v1/models/mnist",
        {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
        log,
    )


def config_model_server(config: Path, port: int, log: Path) -> Service:
    """The local model server on a models.config it re-reads twice a second, labels allowed
    on versions still loading (as the stack runs TF Serving)."""
    return Service(
        [
            sys.executable,
            "-m",
            "serving",
            "--model-config-file",
            str(config),
            "--model-config-file-poll-wait-seconds",
            "0.5",
            "--allow-version-labels-for-unavailable-models",
            "--file-system-poll-wait-seconds",
            "0.5",
            "--port",
            str(port),
        ],
        f"http://127.0.0.1:{port}",
        "/v1/models/mnist",
        {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
        log,
    )


def gateway(serving_url: str, port: int, log: Path, **settings: str) -> Service:
    env = {
        **os.environ,
        "GATEWAY_TF_SERVING_URL": serving_url,
        "GATEWAY_TIMEOUT_S": "5",
        "GATEWAY_VERSION_CACHE_S": "0.5",
    }
    env.update({f"GATEWAY_{key.upper()}": value for key, value in settings.items()})
    return Service(
        [sys.executable, "-m", "gateway", "--port", str(port), "--log-level", "warning"],
        f"http://127.0.0.1:{port}",
        "/healthz",
        env,
        log,
    )


@dataclass
class Stack:
    base: Path
    serving: Service
    gateway: Service


@contextlib.contextmanager
def running_stack(exported_model: Path, folder: Path) -> Iterator[Stack]:
    """A copy of the tiny model as version 1, the model server and the gateway on it."""
    base = folder / "models" / "mnist"
    shutil.copytree(exported_model, base / "1")
    serving = model_server(base, free_port(), folder / "serving.log")
    front = gateway(
        serving.url,
        free_port(),
        folder / "gateway.log",
        model_base_path=str(base),
        max_upload_bytes=str(2 * 1024 * 1024),
    )
    try:
        serving.start()
        front.start()
        yield Stack(base, serving, front)
    finally:
        front.stop()
        serving.stop()


@pytest.fixture
def stack(exported_model: Path, tmp_path: Path) -> Iterator[Stack]:
    """A stack of its own, for tests that stop processes or publish versions."""
    with running_stack(exported_model, tmp_path) as started:
        yield started


@pytest.fixture(scope="module")
def shared_stack(exported_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """One stack for the tests of a module that only send requests."""
    with running_stack(exported_model, tmp_path_factory.mktemp("stack")) as started:
        yield started
