"""Validation of the gateway's canary and feedback settings (contract 4)."""

from pathlib import Path

import pytest
from pydantic import ValidationError

from gateway.config import Settings


def settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[arg-type, call-arg]


def test_config_canary_and_feedback_defaults_are_off() -> None:
    defaults = settings()

    assert defaults.canary_percent == 0
    assert defaults.canary_label == "canary"
    assert defaults.feedback_dir is None


def test_config_reads_canary_and_feedback_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("GATEWAY_CANARY_PERCENT", "12.5")
    monkeypatch.setenv("GATEWAY_CANARY_LABEL", "candidate_2")
    monkeypatch.setenv("GATEWAY_FEEDBACK_DIR", str(tmp_path / "feedback"))

    read = settings()

    assert read.canary_percent == 12.5
    assert read.canary_label == "candidate_2"
    assert read.feedback_dir == tmp_path / "feedback"


@pytest.mark.parametrize("percent", [0, 0.5, 20, 100])
def test_config_canary_percent_accepts_0_to_100(percent: float) -> None:
    assert settings(canary_percent=percent).canary_percent == percent


@pytest.mark.parametrize(
    "percent",
    [
        pytest.param(-1, id="negative"),
        pytest.param(100.5, id="over-100"),
        pytest.param(float("nan"), id="nan"),
        pytest.param("twenty", id="not-a-number"),
    ],
)
def test_config_canary_percent_outside_0_to_100_is_refused(percent: object) -> None:
    with pytest.raises(ValidationError, match="canary_percent"):
        settings(canary_percent=percent)


def test_config_canary_percent_error_names_variable_and_value() -> None:
    with pytest.raises(ValidationError, match=r"GATEWAY_CANARY_PERCENT=150\.0 must be between"):
        settings(canary_percent=150)


@pytest.mark.parametrize(
    "label",
    [
        pytest.param("", id="empty"),
        pytest.param("../stable", id="path"),
        pytest.param("can ary", id="space"),
        pytest.param("c" * 65, id="too-long"),
    ],
)
def test_config_canary_label_must_be_a_plain_name(label: str) -> None:
    with pytest.raises(ValidationError, match="GATEWAY_CANARY_LABEL="):
        settings(canary_label=label)


def test_config_canary_label_cannot_be_the_primary_label() -> None:
    with pytest.raises(ValidationError, match="also GATEWAY_MODEL_LABEL"):
        settings(model_label="canary", canary_percent=10)
    # With the canary off the default canary label is not in the way.
    assert settings(model_label="canary").model_label == "canary"


def test_config_empty_feedback_dir_means_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_FEEDBACK_DIR", " ")

    assert settings().feedback_dir is None
