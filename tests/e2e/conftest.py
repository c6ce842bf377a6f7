"""Real processes on free loopback ports: the local model server and the gateway, as
users run them, started and stopped by scripts/services.py as the local stack and the
benchmarks are. Everything a test starts is stopped, even when the test fails."""

import contextlib
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from contract import MODEL_NAME
from scripts import services
from scripts.services import ROOT as ROOT  # the folder tests start processes in

pytest.importorskip("tensorflow")

pytestmark = pytest.mark.e2e
QUIET_TF = {"TF_CPP_MIN_LOG_LEVEL": "2"}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Service:
    """A process a test starts (and may stop and start again), its base URL and its log."""

    command: list[str]
    url: str
    health_path: str
    env: dict[str, str]  # on top of this process's environment
    log: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 90) -> "Service":
        """Start and wait until the health path answers 200; a failure quotes the log's end."""
        self.process = services.start(
            self.command, self.url + self.health_path, self.env, timeout_s, log=self.log
        )
        return self

    def stop(self) -> None:
        if self.process is not None:
            services.stop([self.process])


def model_server(base: Path, port: int, log: Path) -> Service:
    return Service(
        services.model_server_command(base, port, "--file-system-poll-wait-seconds", "0.5"),
        f"http://127.0.0.1:{port}",
        f"/v1/models/{MODEL_NAME}",
        QUIET_TF,
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
        f"/v1/models/{MODEL_NAME}",
        QUIET_TF,
        log,
    )


def gateway(serving_url: str, port: int, log: Path, **settings: str) -> Service:
    env = {
        "GATEWAY_TF_SERVING_URL": serving_url,
        "GATEWAY_TIMEOUT_S": "5",
        "GATEWAY_VERSION_CACHE_S": "0.5",
    }
    env.update({f"GATEWAY_{key.upper()}": value for key, value in settings.items()})
    return Service(
        services.gateway_command(port, "--log-level", "warning"),
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
    base = folder / "models" / MODEL_NAME
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
