"""Fixtures shared across the suite: a tiny SavedModel trained once per session, an
environment without a developer's GATEWAY_* variables, and FAIL_ON_SKIP=1 (CI), with which
any skipped test fails the run."""

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.drawings import write_synthetic_npz


class FailOnSkip:
    """Fails the session when a test or a whole module was skipped: a dependency missing in
    CI must not pass as a green run that tested nothing of what it needs."""

    def __init__(self) -> None:
        self.skipped: list[str] = []

    def _note(self, report: pytest.CollectReport | pytest.TestReport) -> None:
        if report.skipped and not hasattr(report, "wasxfail"):  # xfail is reported apart
            reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
            self.skipped.append(f"{report.nodeid or '.'}: {reason}")

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        self._note(report)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self._note(report)

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.skipped and session.exitstatus in (
            pytest.ExitCode.OK,
            pytest.ExitCode.NO_TESTS_COLLECTED,
        ):
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if self.skipped:
            terminalreporter.write_sep("=", "FAIL_ON_SKIP=1: skipped tests fail the run", red=True)
            for line in self.skipped:
                terminalreporter.write_line(f"SKIPPED {line}")


def pytest_configure(config: pytest.Config) -> None:
    if os.environ.get("FAIL_ON_SKIP") == "1":
        config.pluginmanager.register(FailOnSkip(), "fail-on-skip")


def gateway_variables() -> list[str]:
    """The GATEWAY_* variables set here (pydantic-settings reads them in any case)."""
    return [name for name in os.environ if name.upper().startswith("GATEWAY_")]


@pytest.fixture(scope="session", autouse=True)
def no_gateway_variables() -> Iterator[None]:
    """A developer's GATEWAY_* variables must not change outcomes: neither the settings tests
    build nor the gateways they start (with this environment) see them. Session-wide, as
    module-scoped stacks start before any function-scoped fixture."""
    with pytest.MonkeyPatch.context() as env:
        for name in gateway_variables():
            env.delenv(name)
        yield


@pytest.fixture(scope="session")
def synthetic_npz(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("data") / "mnist.npz"
    write_synthetic_npz(path, train=3000, test=300)
    return path


def train_tiny(npz: Path, model_dir: Path, *extra: str) -> int:
    """One epoch of the seed architecture on synthetic digits: seconds, not minutes."""
    from training.__main__ import main

    return main(
        [
            "--data",
            str(npz),
            "--model-dir",
            str(model_dir),
            "--arch",
            "seed",
            "--epochs",
            "1",
            "--min-accuracy",
            "0",
            *extra,
        ]
    )


@pytest.fixture(scope="session")
def exported_model(synthetic_npz: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Version 1 of a tiny model exported by the real training command."""
    pytest.importorskip("tensorflow")
    model_dir = tmp_path_factory.mktemp("models") / "mnist"
    assert train_tiny(synthetic_npz, model_dir) == 0
    return model_dir / "1"
