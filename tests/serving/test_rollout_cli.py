"""The rollout command's help: every step's --help prints and exits 0 (its options are
accepted before or after the step, so the step's copies carry no default of their own)."""

import pytest

from serving.rollout.__main__ import parse_args

STEPS = ("status", "pin", "canary", "promote", "rollback", "retire")


@pytest.mark.parametrize("argv", [["--help"], *[[step, "--help"] for step in STEPS]])
def test_every_help_prints_the_defaults(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        parse_args(argv)

    assert exited.value.code == 0
    assert "serving/models.config" in capsys.readouterr().out
