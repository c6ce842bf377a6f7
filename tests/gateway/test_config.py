"""Validation of the gateway's settings (contract 4): each validator, directly and from
GATEWAY_* environment variables."""

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


def test_config_empty_feedback_dir_variable_means_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_FEEDBACK_DIR", "")

    assert settings().feedback_dir is None


@pytest.mark.parametrize(
    ("url", "kept"),
    [
        pytest.param("http://tf-serving:8501", "http://tf-serving:8501", id="http"),
        pytest.param("https://models.example/", "https://models.example", id="https-slash"),
        pytest.param("http://tf-serving:8501///", "http://tf-serving:8501", id="slashes"),
        pytest.param("http://proxy/tf/", "http://proxy/tf", id="path-prefix"),
    ],
)
def test_config_tf_serving_url_is_http_without_trailing_slash(url: str, kept: str) -> None:
    assert settings(tf_serving_url=url).tf_serving_url == kept


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("tf-serving:8501", id="no-scheme"),
        pytest.param("ftp://tf-serving", id="ftp"),
        pytest.param("grpc://tf-serving:8500", id="grpc"),
        pytest.param("", id="empty"),
    ],
)
def test_config_tf_serving_url_must_start_with_http(url: str) -> None:
    with pytest.raises(ValidationError, match="GATEWAY_TF_SERVING_URL=.* must start with http"):
        settings(tf_serving_url=url)


@pytest.mark.parametrize("name", ["mnist", "mnist_v2", "digits-2.1", "M" * 128])
def test_config_model_name_accepts_plain_names(name: str) -> None:
    assert settings(model_name=name).model_name == name


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("", id="empty"),
        pytest.param("mnist/versions/1", id="slash"),
        pytest.param("mn ist", id="space"),
        pytest.param("mnist?x=1", id="query"),
        pytest.param("m" * 129, id="too-long"),
    ],
)
def test_config_model_name_must_be_a_plain_name(name: str) -> None:
    with pytest.raises(ValidationError, match="model_name"):
        settings(model_name=name)


def test_config_model_version_is_a_positive_integer() -> None:
    assert settings(model_version=1).model_version == 1
    assert settings().model_version is None
    for bad in (0, -1, "one"):
        with pytest.raises(ValidationError, match="model_version"):
            settings(model_version=bad)


@pytest.mark.parametrize(
    "label",
    [
        pytest.param("", id="empty"),
        pytest.param("../stable", id="path"),
        pytest.param("sta ble", id="space"),
        pytest.param("s" * 65, id="too-long"),
    ],
)
def test_config_model_label_must_be_a_plain_name(label: str) -> None:
    with pytest.raises(ValidationError, match="model_label"):
        settings(model_label=label)


def test_config_model_label_accepts_a_plain_name() -> None:
    assert settings(model_label="stable-2_b").model_label == "stable-2_b"


def test_config_model_version_and_label_together_are_refused() -> None:
    with pytest.raises(ValidationError, match="GATEWAY_MODEL_VERSION or GATEWAY_MODEL_LABEL, not"):
        settings(model_version=3, model_label="stable")


def test_config_model_version_and_label_from_the_environment_are_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GATEWAY_MODEL_VERSION", "3")
    monkeypatch.setenv("GATEWAY_MODEL_LABEL", "stable")

    with pytest.raises(ValidationError, match="not both"):
        settings()


def test_config_custom_canary_label_cannot_be_the_primary_label() -> None:
    with pytest.raises(ValidationError, match="'candidate' is also GATEWAY_MODEL_LABEL"):
        settings(model_label="candidate", canary_label="candidate", canary_percent=0.5)
    allowed = settings(model_label="stable", canary_label="candidate", canary_percent=0.5)
    assert (allowed.model_label, allowed.canary_label) == ("stable", "candidate")


@pytest.mark.parametrize(
    ("variable", "field"),
    [("GATEWAY_CORS_ALLOW_ORIGINS", "cors_allow_origins"), ("GATEWAY_API_KEYS", "api_keys")],
)
@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("one", ["one"], id="single"),
        pytest.param("one,two", ["one", "two"], id="two"),
        pytest.param(" one , two ,, ", ["one", "two"], id="spaces-and-empty-items"),
        pytest.param("", [], id="empty"),
    ],
)
def test_config_lists_are_comma_separated_in_the_environment(
    monkeypatch: pytest.MonkeyPatch, variable: str, field: str, value: str, expected: list[str]
) -> None:
    monkeypatch.setenv(variable, value)

    assert getattr(settings(), field) == expected


def test_config_lists_given_as_lists_are_kept() -> None:
    read = settings(api_keys=["a,b"], cors_allow_origins=["https://a.example"])

    assert read.api_keys == ["a,b"]
    assert read.cors_allow_origins == ["https://a.example"]


def test_config_reads_the_pin_and_limits_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GATEWAY_TF_SERVING_URL", "https://models.example/")
    monkeypatch.setenv("GATEWAY_MODEL_LABEL", "stable")
    monkeypatch.setenv("GATEWAY_MAX_UPLOAD_BYTES", "4096")

    read = settings()

    assert read.tf_serving_url == "https://models.example"
    assert read.model_label == "stable"
    assert read.max_upload_bytes == 4096
