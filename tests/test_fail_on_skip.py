"""FAIL_ON_SKIP=1, as .ci/run sets it: a run in which anything was skipped fails and says
what and why; without it, skips pass as pytest has them pass. Each case is a small suite
run in-process with this suite's hook (tests/conftest.py)."""

import pytest

pytest_plugins = ["pytester"]

PASSING = "def test_runs():\n    pass\n"
SKIPS = {
    "test": {"test_skip.py": "import pytest\n\ndef test_skipped():\n    pytest.skip('no GPU')\n"},
    "module": {
        "test_skip.py": "import pytest\n\npytest.importorskip('no_such_module')\n\n"
        "def test_never_run():\n    pass\n"
    },
    "folder": {  # as tests/e2e/conftest.py skips its folder without TensorFlow
        "needs/conftest.py": "import pytest\n\npytest.importorskip('no_such_module')\n",
        "needs/test_skip.py": "def test_never_run():\n    pass\n",
    },
}
REASONS = {"test": "no GPU", "module": "no_such_module", "folder": "no_such_module"}


def suite(pytester: pytest.Pytester, kind: str) -> None:
    pytester.makeconftest("from tests.conftest import pytest_configure  # noqa: F401\n")
    pytester.makepyfile(test_pass=PASSING)
    for name, text in SKIPS[kind].items():
        path = pytester.path / name
        path.parent.mkdir(exist_ok=True)
        path.write_text(text)


@pytest.mark.parametrize("kind", list(SKIPS))
def test_a_skip_fails_the_run_with_fail_on_skip(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    suite(pytester, kind)
    monkeypatch.setenv("FAIL_ON_SKIP", "1")

    result = pytester.runpytest()

    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        ["*FAIL_ON_SKIP=1: skipped tests fail the run*", f"SKIPPED *{REASONS[kind]}*"]
    )
    assert result.parseoutcomes()["passed"] == 1


@pytest.mark.parametrize("kind", list(SKIPS))
def test_a_skip_passes_the_run_without_fail_on_skip(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    suite(pytester, kind)
    monkeypatch.delenv("FAIL_ON_SKIP", raising=False)

    result = pytester.runpytest()

    assert result.ret == pytest.ExitCode.OK
    assert "FAIL_ON_SKIP" not in result.stdout.str()
    assert result.parseoutcomes()["skipped"] == 1


def test_a_run_without_skips_passes_with_fail_on_skip(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makeconftest("from tests.conftest import pytest_configure  # noqa: F401\n")
    pytester.makepyfile(test_pass=PASSING)
    monkeypatch.setenv("FAIL_ON_SKIP", "1")

    assert pytester.runpytest().ret == pytest.ExitCode.OK
