"""Starting and stopping the stack's processes on this machine: shared by the local stack,
the benchmarks and the end-to-end tests."""

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import IO

from contract import MODEL_NAME

ROOT = Path(__file__).resolve().parent.parent
# How much of a process's log a start-up failure quotes: enough for a traceback.
LOG_TAIL_CHARS = 2000


def model_url(serving_url: str) -> str:
    """The model's REST resource on a model server: GET it for the status, POST `:predict`."""
    return f"{serving_url}/v1/models/{MODEL_NAME}"


def model_server_command(model_dir: Path, port: int, *extra: str) -> list[str]:
    """The local model server with the TF Serving configuration compose and k8s use."""
    return [
        sys.executable,
        "-m",
        "serving",
        "--model-base-path",
        str(model_dir),
        "--port",
        str(port),
        "--enable-batching",
        "--batching-parameters-file",
        "serving/batching.config",
        "--monitoring-config-file",
        "serving/monitoring.config",
        *extra,
    ]


def gateway_command(port: int, *extra: str) -> list[str]:
    return [sys.executable, "-m", "gateway", "--port", str(port), *extra]


def _log_tail(log: Path | None) -> str:
    if log is None:
        return ""
    return "\n" + log.read_text(errors="replace")[-LOG_TAIL_CHARS:]


def wait_until_ok(
    url: str, process: subprocess.Popen[bytes], timeout_s: float, log: Path | None = None
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(
                f"error: {process.args[2]} exited with code {process.returncode}{_log_tail(log)}"
            )
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    raise SystemExit(f"error: {url} did not answer 200 within {timeout_s:.0f} s{_log_tail(log)}")


def start(
    command: list[str],
    health_url: str,
    env: dict[str, str] | None = None,
    timeout_s: float = 180,
    quiet: bool = False,
    cwd: Path | None = None,
    log: Path | None = None,
) -> subprocess.Popen[bytes]:
    """Start `command` in the project folder (or `cwd`) and wait until `health_url` answers 200.

    Its output goes to this terminal, nowhere (`quiet`), or to the end of `log`; a process
    that exits or never answers is stopped and reported, with the end of its log.
    """
    with contextlib.ExitStack() as files:
        stdout: int | IO[bytes] | None
        stderr: int | IO[bytes] | None
        if log is not None:
            stdout, stderr = files.enter_context(log.open("ab")), subprocess.STDOUT
        else:
            stdout = stderr = subprocess.DEVNULL if quiet else None
        process = subprocess.Popen(
            command,
            cwd=cwd or ROOT,
            env={**os.environ, **(env or {})},
            stdout=stdout,
            stderr=stderr,
        )
    try:
        wait_until_ok(health_url, process, timeout_s, log)
    except BaseException:
        stop([process])
        raise
    return process


def stop(processes: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM (in-flight requests finish), then kill whatever is still there after 15 s."""
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
