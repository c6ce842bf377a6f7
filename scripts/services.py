"""Starting and stopping the stack's processes on this machine: shared by the local stack,
the benchmarks and the end-to-end tests."""

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any

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


def until(
    condition: Callable[[], object], what: str, timeout_s: float = 60, log: Path | None = None
) -> float:
    """Poll `condition` until it holds and return the seconds that took; an exception it
    raises counts as not yet. Polls quickly at first, then every half second.

    Raises:
        TimeoutError: not within `timeout_s`, naming `what`, the last exception and the end
            of `log`.
    """
    started = time.monotonic()
    last, pause = "", 0.025
    while time.monotonic() - started < timeout_s:
        try:
            if condition():
                return time.monotonic() - started
        except Exception as exc:  # not up yet, say; quoted if it never holds
            last = f" (last: {exc!r})"
        pause = min(pause * 2, 0.5)
        time.sleep(pause)
    raise TimeoutError(f"not within {timeout_s:.0f} s: {what}{last}{_log_tail(log)}")


def _answers_ok(url: str, process: subprocess.Popen[bytes], log: Path | None) -> bool:
    if process.poll() is not None:
        name = process.args[2]  # type: ignore[index]  # python -m <name>
        raise SystemExit(f"error: {name!s} exited with code {process.returncode}{_log_tail(log)}")
    with urllib.request.urlopen(url, timeout=2) as response:
        return bool(response.status == 200)


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
        stdout: int | IO[bytes] | None = subprocess.DEVNULL if quiet else None
        stderr = stdout
        if log is not None:
            stdout, stderr = files.enter_context(log.open("ab")), subprocess.STDOUT
        environment = {**os.environ, **(env or {})}
        process = subprocess.Popen(
            command, cwd=cwd or ROOT, env=environment, stdout=stdout, stderr=stderr
        )
    try:
        ready = f"{health_url} answers 200"
        until(lambda: _answers_ok(health_url, process, log), ready, timeout_s, log)
    except TimeoutError as exc:
        stop([process])
        raise SystemExit(f"error: {exc}") from None
    except BaseException:
        stop([process])
        raise
    return process


def stop(processes: Iterable[subprocess.Popen[Any] | None]) -> None:
    """SIGTERM (in-flight requests finish), then kill whatever is still there after 15 s."""
    started = [process for process in processes if process is not None]
    for process in started:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in started:
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def loopback(port: int) -> str:
    return f"http://127.0.0.1:{port}"


@contextlib.contextmanager
def quiet_stack(
    model_dir: Path, serving_port: int, gateway_port: int, cwd: Path | None = None, workers: int = 1
) -> Iterator[tuple[subprocess.Popen[bytes], subprocess.Popen[bytes]]]:
    """The local model server on `model_dir` and a gateway of `workers` processes in front of
    it, on loopback ports and with their output silenced, as the benchmarks measure them (from
    the checkout `cwd`); yields both processes once ready, and stops them on exit."""
    env = {"TF_CPP_MIN_LOG_LEVEL": "2", "GATEWAY_TF_SERVING_URL": loopback(serving_port)}
    command = model_server_command(model_dir, serving_port, "--log-level", "warning")
    usage = subprocess.run([*command[:3], "--help"], cwd=cwd or ROOT, capture_output=True)
    if b"--enable-batching" not in usage.stdout:
        command.remove("--enable-batching")  # older servers batched on the file alone
    processes = [start(command, model_url(loopback(serving_port)), env, quiet=True, cwd=cwd)]
    try:
        command = gateway_command(gateway_port, "--workers", str(workers), "--log-level", "warning")
        ready = f"{loopback(gateway_port)}/readyz"
        processes.append(start(command, ready, env, quiet=True, cwd=cwd))
        yield processes[0], processes[1]
    finally:
        stop(processes)
