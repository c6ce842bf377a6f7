"""TF Serving's REST edge cases, each as its source (the 2.20.0 release) has it.

The files named in each test are under tensorflow_serving/ unless said otherwise;
rapidjson is the 1.1.0 release TF Serving builds with.
"""

import base64
import json
import os
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from starlette.testclient import TestClient

from serving.__main__ import main as serving_main
from serving.__main__ import parse_args
from serving.batching import BatchingParameters
from serving.errors import ServingError
from serving.json_tensor import (
    encode_predict_response,
    parse_json,
    parse_predict_request,
    tensor_from_json,
)
from serving.registry import ModelRegistry
from serving.server import ServerSettings, create_app
from serving.tf_serving_config import LabelError, ModelSpec, VersionPolicy, check_version_labels

ZEROS = np.zeros((28, 28, 1)).tolist()
PREDICT = "/v1/models/mnist:predict"
BODY = json.dumps({"instances": [ZEROS]}).encode()
@pytest.fixture(scope="module")
def two_versions(exported_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("edges") / "mnist"
    for version in (1, 2):
        shutil.copytree(exported_model, base / str(version))
    return base


@pytest.fixture(scope="module")
def edges(two_versions: Path) -> Iterator[TestClient]:
    """Versions 1 and 2 both served, "stable" on version 1. Tests here do not change it."""
    spec = ModelSpec("mnist", two_versions, VersionPolicy(kind="all"), labels={"stable": 1})
    with TestClient(create_app(ServerSettings(models=[spec], poll_interval_s=60))) as client:
        yield client


def error_of(response: httpx.Response) -> tuple[int, str]:
    return response.status_code, response.json()["error"]


def image_with(value: str) -> bytes:
    """A predict body whose first pixel is the JSON token `value`."""
    return BODY.replace(b"[[[0.0]", b"[[[" + value.encode() + b"]", 1)


# 1. NaN and Infinity in request JSON. json_tensor.cc ParseJson parses with
# kParseNanAndInfFlag (and kParseStopWhenDoneFlag); rapidjson's reader.h ParseNumber then
# reads NaN, Inf and Infinity with an optional minus sign, and DT_FLOAT takes them.


@pytest.mark.parametrize("token", ["NaN", "-NaN", "Infinity", "-Infinity", "Inf", "-Inf"])
def test_nan_and_infinity_literals_reach_float_inputs(edges: TestClient, token: str) -> None:
    response = edges.post(PREDICT, content=image_with(token))

    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    ("token", "expected"), [("NaN", np.nan), ("-Inf", -np.inf), ("Infinity", np.inf)]
)
def test_non_finite_literals_become_float32_values(token: str, expected: float) -> None:
    request = parse_predict_request(image_with(token), lambda _signature: {"image": "float32"})

    image = request.inputs["image"]
    assert image.dtype == np.float32 and image.shape == (1, 28, 28, 1)
    np.testing.assert_equal(image[0, 0, 0, 0], np.float32(expected))
    assert not np.isnan(image[0, 0, 1, 0])


def test_lenient_json_only_when_orjson_refuses(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(_body: bytes) -> object:
        raise AssertionError("the fallback parser ran for an ordinary body")

    monkeypatch.setattr("serving.json_tensor._parse_leniently", fail)

    assert parse_json(b'{"instances": [0.5, 1e-3, -2]}') == {"instances": [0.5, 1e-3, -2]}


def test_lenient_json_reads_what_rapidjson_reads() -> None:
    value = parse_json(b' {"a": [NaN, -NaN, Inf, -Inf, Infinity, -Infinity], "s": "NaN Inf"} x')

    assert value["s"] == "NaN Inf"  # tokens inside strings stay
    assert [repr(v) for v in value["a"]] == ["nan", "nan", "inf", "-inf", "inf", "-inf"]


@pytest.mark.parametrize("body", [b'{"a": Infinit}', b'{"a": nan}', b'{"a": [1,]}', b"\xff"])
def test_lenient_json_still_refuses_what_rapidjson_refuses(body: bytes) -> None:
    with pytest.raises(ServingError, match="^JSON Parse error: .* at offset: "):
        parse_json(body)


@pytest.mark.parametrize(
    ("value", "dtype"),
    [
        (2**31, "int32"),
        (2**63, "int64"),
        (2**70, "int64"),
        (1.5, "int32"),
        (True, "float32"),
        (float("nan"), "int32"),
    ],
)
def test_numbers_outside_the_input_type_are_refused(value: object, dtype: str) -> None:
    with pytest.raises(ServingError) as raised:
        tensor_from_json([value], dtype)

    assert raised.value.message.startswith(f"JSON Value: {json.dumps(value)} Type: ")


# 2. Letter case. http_rest_api_util.cc: both path expressions are (?i), but
# http_rest_api_handler.cc ProcessRequest compares the verb ("predict", ...) and the
# subresource ("metadata") with ==, so an upper-case verb is malformed and an
# upper-case METADATA is a status request. Model names are case-sensitive.


def test_upper_case_path_with_lower_case_verb_predicts(edges: TestClient) -> None:
    for path in (
        "/V1/MODELS/mnist:predict",
        "/v1/Models/mnist/VERSIONS/2:predict",
        "/v1/models/mnist/Labels/stable:predict",
    ):
        assert edges.post(path, content=BODY).status_code == 200, path


def test_upper_case_verb_is_malformed(edges: TestClient) -> None:
    response = edges.post("/V1/MODELS/mnist:PREDICT", content=BODY)

    assert error_of(response) == (400, "Malformed request: POST /V1/MODELS/mnist:PREDICT")


def test_upper_case_metadata_is_a_status_request(edges: TestClient) -> None:
    response = edges.get("/v1/models/mnist/METADATA")

    assert response.status_code == 200
    assert [v["version"] for v in response.json()["model_version_status"]] == ["1", "2"]


def test_model_names_are_case_sensitive(edges: TestClient) -> None:
    response = edges.post("/v1/models/MNIST:predict", content=BODY)

    assert error_of(response) == (404, "Servable not found for request: Latest(MNIST)")


# 3. Query strings. net_http evhttp_request.cc hands the handler path_and_query (path,
# "?", query), and the expressions must match all of it: a query ends a prediction path,
# becomes part of a model name or label, and the metrics handler refuses it.


@pytest.mark.parametrize(
    ("path", "status", "error"),
    [
        pytest.param(
            "/v1/models/mnist:predict?foo=bar",
            400,
            "Malformed request: POST /v1/models/mnist:predict?foo=bar",
            id="predict",
        ),
        pytest.param(
            "/v1/models/mnist/versions/1:predict?x=1",
            400,
            "Malformed request: POST /v1/models/mnist/versions/1:predict?x=1",
            id="predict-version",
        ),
    ],
)
def test_query_string_on_predict(edges: TestClient, path: str, status: int, error: str) -> None:
    assert error_of(edges.post(path, content=BODY)) == (status, error)


def test_query_string_on_status_becomes_part_of_the_model_name(edges: TestClient) -> None:
    assert error_of(edges.get("/v1/models/mnist?x=1")) == (
        404,
        "Could not find any versions of model mnist?x=1",
    )
    assert error_of(edges.get("/v1/models/mnist/versions/1?x=1")) == (
        400,
        "Malformed request: GET /v1/models/mnist/versions/1?x=1",
    )
    assert error_of(edges.get("/v1/models/mnist/metadata?x=1")) == (
        400,
        "Malformed request: GET /v1/models/mnist/metadata?x=1",
    )
    # The label becomes "stable?x=1", which status requests do not look at.
    assert edges.get("/v1/models/mnist/labels/stable?x=1").status_code == 200


def test_query_string_on_the_metrics_path(edges: TestClient) -> None:
    response = edges.get("/monitoring/prometheus/metrics?x=1")

    assert response.status_code == 400
    assert response.headers["content-type"] == "text/plain"
    assert response.text == (
        "Unexpected path: /monitoring/prometheus/metrics?x=1. "
        "Should be /monitoring/prometheus/metrics"
    )


def test_paths_are_matched_before_percent_decoding(edges: TestClient) -> None:
    # The handler decodes the model name once (DecodeArg); %2525 is "%25", not "%".
    response = edges.get("/v1/models/mn%2525ist")

    assert error_of(response) == (404, "Could not find any versions of model mn%25ist")
    assert edges.post("/v1/models/mn%69st:predict", content=BODY).status_code == 200
    # Encoded "/" and ":" are part of the name, not of the path's structure.
    assert error_of(edges.post("/v1/models/a%2Fb:predict", content=BODY)) == (
        404,
        "Servable not found for request: Latest(a/b)",
    )
    assert error_of(edges.get("/v1/models/mnist%3Apredict")) == (
        404,
        "Could not find any versions of model mnist:predict",
    )


# 4. Versions beyond 64 bits. http_rest_api_util.cc ParseModelInfo reads the version with
# absl::SimpleAtoi into an int64, before the method or verb is looked at.


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/models/mnist/versions/99999999999999999999"),
        ("GET", "/v1/models/mnist/versions/9223372036854775808/metadata"),
        ("POST", "/v1/models/mnist/versions/18446744073709551615:predict"),
        ("POST", "/v1/models/mnist/versions/99999999999999999999:PREDICT"),
        ("POST", "/v1/models/nope/versions/99999999999999999999:classify"),
    ],
)
def test_versions_beyond_64_bits(edges: TestClient, method: str, path: str) -> None:
    version = re.search(r"versions/([0-9]+)", path).group(1)  # type: ignore[union-attr]

    response = edges.request(method, path, content=BODY)

    assert error_of(response) == (400, f"Failed to convert version: {version} to numeric.")


def test_largest_and_zero_versions_are_specific_requests(edges: TestClient) -> None:
    for version in (9223372036854775807, 0):
        response = edges.post(f"/v1/models/mnist/versions/{version}:predict", content=BODY)
        assert error_of(response) == (
            404,
            f"Servable not found for request: Specific(mnist, {version})",
        )
    assert error_of(edges.get("/v1/models/mnist/versions/0")) == (
        404,
        "Could not find version 0 of model mnist",
    )


# 5. A label on a status request. get_model_status_impl.cc GetModelStatusWithModelSpec
# only looks at the version: with a label (any label) it lists every version. Metadata
# (get_model_metadata_impl.cc) resolves the label through ServerCore, so it checks it.


def test_status_with_a_label_lists_every_version(edges: TestClient) -> None:
    for label in ("stable", "no-such-label"):
        response = edges.get(f"/v1/models/mnist/labels/{label}")
        assert response.status_code == 200
        versions = [entry["version"] for entry in response.json()["model_version_status"]]
        assert versions == ["1", "2"], label
    assert error_of(edges.get("/v1/models/nope/labels/stable")) == (
        404,
        "Could not find any versions of model nope",
    )


def test_metadata_with_a_label_resolves_it(edges: TestClient) -> None:
    response = edges.get("/v1/models/mnist/labels/stable/metadata")

    assert response.json()["model_spec"]["version"] == "1"
    assert error_of(edges.get("/v1/models/nope/labels/stable/metadata")) == (
        400,
        "Unrecognized servable version label: stable",
    )


# 6. An unknown model with a malformed body. http_rest_api_handler.cc hands the model
# lookup to FillPredictRequestFromJson as a callback, which json_tensor.cc calls after
# ParseJson and FillSignature: the body's errors win, the missing-key check loses.


@pytest.mark.parametrize(
    ("path", "body", "status", "error"),
    [
        ("/v1/models/nope:predict", b"", 400, "JSON Parse error: The document is empty"),
        ("/v1/models/nope:predict", b"[1]", 400, "JSON Value: [1] Is not object"),
        (
            "/v1/models/nope:predict",
            b'{"signature_name": 1}',
            400,
            'JSON Value: {"signature_name": 1} not formatted correctly. '
            "'signature_name' key must be a string value.",
        ),
        (
            "/v1/models/nope:predict",
            b'{"foo": 1}',
            404,
            "Servable not found for request: Latest(nope)",
        ),
        (
            "/v1/models/mnist/labels/nope:predict",
            b'{"foo": 1}',
            400,
            "Unrecognized servable version label: nope",
        ),
        (
            "/v1/models/nope/labels/stable:predict",
            b'{"foo": 1}',
            400,
            "Unrecognized servable version label: stable",
        ),
    ],
)
def test_body_errors_come_before_model_lookup(
    edges: TestClient, path: str, body: bytes, status: int, error: str
) -> None:
    assert error_of(edges.post(path, content=body)) == (status, error)


def test_unknown_model_with_unparsable_body_is_a_parse_error(edges: TestClient) -> None:
    status, error = error_of(edges.post("/v1/models/nope:predict", content=b'{"instances": ['))

    assert status == 400 and error.startswith("JSON Parse error: ")


# 8. Methods and paths. http_rest_api_handler.cc calls methods other than GET and POST
# malformed; paths the dispatcher does not take (not (?i)/v1/.*) are not found.


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH", "HEAD"])
def test_other_methods_on_api_paths_are_malformed(edges: TestClient, method: str) -> None:
    response = edges.request(method, "/v1/models/mnist")

    assert response.status_code == 400
    if method != "HEAD":  # a HEAD reply carries no body
        assert response.json() == {"error": f"Malformed request: {method} /v1/models/mnist"}


@pytest.mark.parametrize("method", ["GET", "POST", "OPTIONS", "DELETE"])
@pytest.mark.parametrize("path", ["/", "/v2/models/mnist", "/healthz", "/v1"])
def test_paths_outside_the_api_are_not_found(edges: TestClient, method: str, path: str) -> None:
    assert edges.request(method, path).status_code == 404


def test_metrics_answer_any_served_method(edges: TestClient) -> None:
    response = edges.post("/monitoring/prometheus/metrics")

    assert response.status_code == 200
    assert ":tensorflow:serving:request_count" in response.text


# 9. Output floats: each float32 in the fewest digits that read back as it.


def test_outputs_in_both_formats() -> None:
    outputs: dict[str, np.ndarray] = {
        "scores": np.array([[0.1, np.nan], [3.0, -np.inf]], dtype=np.float32),
        "label": np.array([4, 7], dtype=np.int64),
    }

    assert encode_predict_response({"scores": outputs["scores"]}, row_format=True) == (
        b'{"predictions":[[0.1,null],[3.0,null]]}'
    )
    assert encode_predict_response(outputs, row_format=False) == (
        b'{"outputs":{"scores":[[0.1,null],[3.0,null]],"label":[4,7]}}'
    )
    assert encode_predict_response(outputs, row_format=True) == (
        b'{"predictions":[{"scores":[0.1,null],"label":4},{"scores":[3.0,null],"label":7}]}'
    )


def test_inconsistent_batch_sizes_are_named_as_tf_serving_names_them() -> None:
    outputs: dict[str, np.ndarray] = {"a": np.zeros((2, 3), np.float32), "b": np.zeros(3, np.int64)}

    with pytest.raises(ServingError) as raised:
        encode_predict_response(outputs, row_format=True)

    assert raised.value.message == "Tensor name: b has inconsistent batch size: 3 expecting: 2"


# 10. :classify and :regress need tf.Example inputs, which the local server does not run.


@pytest.mark.parametrize("verb", ["classify", "regress"])
def test_classify_and_regress_are_not_implemented(edges: TestClient, verb: str) -> None:
    response = edges.post(f"/v1/models/mnist:{verb}", content=b'{"examples": [{"x": 1.0}]}')

    status, error = error_of(response)
    assert status == 501 and verb in error


# --allow_version_labels_for_unavailable_models. server_core.cc UpdateModelVersionLabelMap

def test_labels_at_start_up_need_the_flag() -> None:
    specs = [ModelSpec("mnist", Path("unused"), labels={"stable": 1})]

    with pytest.raises(LabelError, match="^Request to assign label to version 1 of model mnist, "):
        check_version_labels(specs, {}, {}, allow_unavailable=False)
    check_version_labels(specs, {}, {}, allow_unavailable=True)


@pytest.mark.parametrize(
    ("assigned", "allow", "refused"),
    [
        pytest.param({}, True, False, id="new-label-with-flag"),
        pytest.param({"stable": 3}, True, False, id="unchanged-label-with-flag"),
        pytest.param({"stable": 2}, True, True, id="moved-label-with-flag"),
        pytest.param({}, False, True, id="new-label-without-flag"),
    ],
)
def test_labels_on_versions_not_loaded(
    assigned: dict[str, int], allow: bool, refused: bool
) -> None:
    specs = [ModelSpec("mnist", Path("unused"), labels={"stable": 3})]

    def check() -> None:
        check_version_labels(specs, {"mnist": assigned}, {"mnist": {1, 2}}, allow)

    if refused:
        with pytest.raises(LabelError):
            check()
    else:
        check()
    check_version_labels(
        [ModelSpec("mnist", Path("unused"), labels={"stable": 2})],
        {"mnist": assigned},
        {"mnist": {1, 2}},
        allow_unavailable=False,
    )  # an AVAILABLE version takes any label


def test_a_refused_reload_keeps_the_old_labels(tmp_path: Path) -> None:
    spec = ModelSpec("mnist", tmp_path, labels={"stable": 1})
    registry = ModelRegistry([spec], BatchingParameters(), executor=None)  # type: ignore[arg-type]

    moved = ModelSpec("mnist", tmp_path, labels={"stable": 2})
    with pytest.raises(ServingError) as raised:
        registry.reconfigure([moved], allow_unavailable_labels=True)

    assert raised.value.code == "FAILED_PRECONDITION"
    assert registry.models["mnist"].spec.labels == {"stable": 1}
    registry.reconfigure([ModelSpec("mnist", tmp_path, labels={"canary": 2})], True)
    assert registry.models["mnist"].spec.labels == {"canary": 2}


def test_the_command_refuses_labels_at_start_up_without_the_flag(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "models.config"
    config.write_text(
        'model_config_list { config { name: "mnist" base_path: "mnist" '
        'version_labels { key: "stable" value: 1 } } }'
    )

    assert serving_main(["--model-config-file", str(config)]) == 2
    assert "Request to assign label to version 1 of model mnist" in capsys.readouterr().err


def test_the_flag_is_written_as_tf_serving_writes_it() -> None:
    base = ["--model-base-path", "m"]
    flag = "--allow-version-labels-for-unavailable-models"

    assert parse_args(base).allow_version_labels_for_unavailable_models is False
    assert parse_args([*base, flag]).allow_version_labels_for_unavailable_models is True
    assert parse_args([*base, f"{flag}=true"]).allow_version_labels_for_unavailable_models
    assert not parse_args([*base, f"{flag}=false"]).allow_version_labels_for_unavailable_models


def write_config(path: Path, labels: dict[str, int]) -> None:
    """Write beside, then rename: how a config is replaced atomically."""
    entries = "".join(f'version_labels {{ key: "{k}" value: {v} }} ' for k, v in labels.items())
    staging = path.with_suffix(".staging")
    staging.write_text(
        f'model_config_list {{ config {{ name: "mnist" base_path: "mnist" '
        f"model_version_policy {{ all {{}} }} {entries}}} }}"
    )
    os.replace(staging, path)


def label_version(client: TestClient, label: str) -> object:
    response = client.get(f"/v1/models/mnist/labels/{label}/metadata")
    if response.status_code != 200:
        return response.json()["error"]
    return int(response.json()["model_spec"]["version"])


def test_model_config_file_is_re_read(
    two_versions: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    shutil.copytree(two_versions, tmp_path / "mnist")
    config = tmp_path / "models.config"
    write_config(config, {"stable": 1})
    settings = ServerSettings(
        models=[ModelSpec("mnist", tmp_path / "mnist", VersionPolicy(kind="all"), {"stable": 1})],
        poll_interval_s=60,
        model_config_file=config,
        model_config_poll_s=0.1,
    )
    with TestClient(create_app(settings)) as client:
        assert label_version(client, "stable") == 1

        write_config(config, {"stable": 2})
        deadline = time.monotonic() + 30
        while label_version(client, "stable") != 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert label_version(client, "stable") == 2

        write_config(config, {"stable": 2, "canary": 3})  # 3 is not loaded: refused
        # The refusal is logged once the server has read the file: then, not after some
        # time, the labels in force are the old ones.
        deadline = time.monotonic() + 30
        while "keeping the config in force" not in caplog.text and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "Request to assign label to version 3 of model mnist" in caplog.text
        assert label_version(client, "canary") == "Unrecognized servable version label: canary"
        assert label_version(client, "stable") == 2


# 11. Base64 strings. json_tensor.cc FillTensorProto: a string input takes a JSON string
# as it is, or an object {"b64": "..."} (IsValBase64Object: exactly that one key, a string
# value) decoded with absl::Base64Unescape ("Unable to base64 decode" when it does not);
# any other object is "not formatted correctly for base64 data".

PIXEL_SPECS = {"pixels": "string"}


def b64(data: bytes) -> dict[str, str]:
    return {"b64": base64.b64encode(data).decode()}


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ({"instances": [b64(bytes(784))]}, [bytes(784)]),
        (
            {"instances": [b64(bytes(range(256))), b64(b""), "plain text"]},
            [bytes(range(256)), b"", b"plain text"],
        ),
        ({"inputs": [b64(b"\x00\xff"), b64(b"abc")]}, [b"\x00\xff", b"abc"]),
        ({"inputs": {"pixels": [b64(b"abc"), "d\u00e9f"]}}, [b"abc", "d\u00e9f".encode()]),
        ({"inputs": {"pixels": b64(b"one value")}}, b"one value"),
        (
            {"instances": [{"pixels": b64(b"named")}, {"pixels": b64(b"twice")}]},
            [b"named", b"twice"],
        ),
    ],
)
def test_b64_strings_are_decoded_to_bytes(document: dict[str, object], expected: object) -> None:
    parsed = parse_predict_request(json.dumps(document).encode(), lambda _: PIXEL_SPECS)

    assert parsed.inputs["pixels"].dtype == object
    assert parsed.inputs["pixels"].tolist() == expected


@pytest.mark.parametrize(
    ("document", "error"),
    [
        (
            {"instances": [b64(b"fine"), {"b64": "not base64!"}]},
            "Failed to process element: 1 of 'instances' list. Error: INVALID_ARGUMENT: "
            "Unable to base64 decode",
        ),
        (
            {"instances": [b64(b"fine"), {"b64": "abc"}]},  # padding missing
            "Failed to process element: 1 of 'instances' list. Error: INVALID_ARGUMENT: "
            "Unable to base64 decode",
        ),
        (
            {"instances": [b64(b"fine"), {"b64": 1}]},
            "Expecting value/list but got object at item 1 of input list",
        ),
        (
            {"inputs": [b64(b"fine"), {"b64": "AA==", "other": 1}]},
            'JSON Value: {"b64": "AA==", "other": 1} not formatted correctly for base64 data',
        ),
        (
            {"inputs": [b64(b"fine"), 7]},
            "JSON Value: 7 Type: Number is not of expected type: string",
        ),
    ],
)
def test_b64_refusals_are_tf_servings(document: dict[str, object], error: str) -> None:
    with pytest.raises(ServingError) as refused:
        parse_predict_request(json.dumps(document).encode(), lambda _: PIXEL_SPECS)

    assert (refused.value.code, refused.value.message) == ("INVALID_ARGUMENT", error)
