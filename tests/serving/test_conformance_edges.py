"""TF Serving's REST edge cases, each as its source (the 2.20.0 release) has it.

The files named in each test are under tensorflow_serving/ unless said otherwise;
libevent is the 2.1.12 release and rapidjson the 1.1.0 release TF Serving builds with.
"""

import base64
import gzip
import json
import math
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
from tensorflow.core.protobuf import meta_graph_pb2

from serving.__main__ import main as serving_main
from serving.__main__ import parse_args
from serving.batching import BatchingParameters
from serving.errors import ServingError
from serving.json_tensor import (
    debug_string,
    encode_predict_response,
    float32_texts,
    float64_text,
    parse_json,
    parse_predict_request,
    tensor_from_json,
)
from serving.registry import ModelRegistry
from serving.server import ServerSettings, _refuse_classify_regress, create_app, gunzip
from serving.tf_serving_config import LabelError, ModelSpec, VersionPolicy, check_version_labels

ZEROS = np.zeros((28, 28, 1)).tolist()
PREDICT = "/v1/models/mnist:predict"
BODY = json.dumps({"instances": [ZEROS]}).encode()
NOT_FOUND_PAGE = (
    "<HTML><HEAD>\n<TITLE>404 Not Found</TITLE>\n</HEAD><BODY>\n<H1>Not Found</H1>\n"
    "</BODY></HTML>\n"
)
NOT_IMPLEMENTED_PAGE = (
    "<HTML><HEAD>\n<TITLE>501 Not Implemented</TITLE>\n</HEAD><BODY>\n"
    "<H1>Not Implemented</H1>\n</BODY></HTML>\n"
)


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


def test_nan_for_an_integer_input_is_quoted_as_rapidjson_quotes_it() -> None:
    # PrettyWriter::Double refuses NaN, so the value prints as nothing.
    with pytest.raises(ServingError) as raised:
        tensor_from_json(float("nan"), "int32")

    assert raised.value.message == "JSON Value:  Type: Number is not of expected type: int32"
    assert debug_string([1.0, float("nan"), 2.0]) == "[1.0, "


@pytest.mark.parametrize(
    ("value", "dtype", "quoted"),
    [
        (2**31, "int32", "2147483648"),
        (2**63, "int64", "9223372036854775808"),
        (2**64, "int64", "18446744073709552000.0"),  # a double to rapidjson
        (2**70, "int64", "1.1805916207174113e21"),
        (1.5, "int32", "1.5"),
        (True, "float32", "true"),
    ],
)
def test_numbers_outside_the_input_type_are_refused(value: object, dtype: str, quoted: str) -> None:
    with pytest.raises(ServingError) as raised:
        tensor_from_json([value], dtype)

    assert raised.value.message.startswith(f"JSON Value: {quoted} Type: ")


def test_debug_strings_are_rapidjson_pretty_writer_output() -> None:
    # json_tensor.cc JsonValueToDebugString: PrettyWriter, kFormatSingleLineArray, 256 bytes.
    assert debug_string({"a": [1, 2.5, 1e21, 1e-7], "b": {}, "c": 'q"\n\x01'}) == (
        '{\n    "a": [1, 2.5, 1e21, 1e-7],\n    "b": {},\n    "c": "q\\"\\n\\u0001"\n}'
    )
    assert debug_string(1e20) == "100000000000000000000.0"
    long = debug_string(list(range(1000)))
    assert 256 <= len(long) < 270 and long.startswith("[0, 1, 2") and not long.endswith("]")


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
            'JSON Value: {\n    "signature_name": 1\n} not formatted correctly. '
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


# 7. gzip bodies. net_http evhttp_request.cc ReadRequestBytes inflates the body when the
# Content-Encoding header contains "gzip" (auto_uncompress_input defaults to true in
# httpserver_interface.h); a body that does not inflate (gzip_zlib.cc) reads as empty.


@pytest.mark.parametrize("encoding", ["gzip", "x-gzip", "deflate, gzip"])
def test_gzip_bodies_are_inflated(edges: TestClient, encoding: str) -> None:
    response = edges.post(
        PREDICT, content=gzip.compress(BODY), headers={"Content-Encoding": encoding}
    )

    assert response.status_code == 200


def test_gzip_is_matched_case_sensitively(edges: TestClient) -> None:
    response = edges.post(
        PREDICT, content=gzip.compress(BODY), headers={"Content-Encoding": "GZIP"}
    )

    status, error = error_of(response)
    assert status == 400 and error.startswith("JSON Parse error: ")


def test_gzip_that_does_not_inflate_reads_as_an_empty_body(edges: TestClient) -> None:
    response = edges.post(PREDICT, content=BODY, headers={"Content-Encoding": "gzip"})

    assert error_of(response) == (400, "JSON Parse error: The document is empty")


def test_gunzip_trusts_only_the_gzip_trailer() -> None:
    packed = gzip.compress(b'{"a": 1}')
    too_big = packed[:-4] + (100 * 1024 * 1024 + 1).to_bytes(4, "little")

    assert gunzip(packed) == b'{"a": 1}'
    assert gunzip(too_big) == b""
    assert gunzip(packed + packed) == b""  # one member only
    assert gunzip(packed[:-1]) == b""
    assert gunzip(b"gzip") == b""


# 8. Methods. evhttp_server.cc allows GET, POST, HEAD, PUT, DELETE, OPTIONS and PATCH;
# libevent http.c answers others with evhttp_send_error's 501 page, and paths the
# dispatcher does not take (not (?i)/v1/.*) with its 404 page. http_server.cc answers
# OPTIONS itself (CORS preflight, no body); the handler calls other methods malformed.


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH", "HEAD"])
def test_other_methods_on_api_paths_are_malformed(edges: TestClient, method: str) -> None:
    response = edges.request(method, "/v1/models/mnist")

    assert response.status_code == 400
    if method != "HEAD":  # a HEAD reply carries no body
        assert response.json() == {"error": f"Malformed request: {method} /v1/models/mnist"}


@pytest.mark.parametrize("path", ["/v1/models/mnist", "/", "/monitoring/prometheus/metrics"])
@pytest.mark.parametrize("method", ["TRACE", "CONNECT"])
def test_methods_libevent_refuses(edges: TestClient, method: str, path: str) -> None:
    response = edges.request(method, path)

    assert response.status_code == 501
    assert response.headers["content-type"] == "text/html"
    assert response.headers["connection"] == "close"
    assert response.text == NOT_IMPLEMENTED_PAGE


def test_options_is_a_cors_preflight(edges: TestClient) -> None:
    allowed = edges.options("/v1/models/mnist:predict", headers={"Origin": "https://app.test"})
    refused = edges.options("/v1/models/mnist:predict")

    assert (allowed.status_code, allowed.content) == (200, b"")
    assert (refused.status_code, refused.content) == (400, b"")
    assert allowed.headers["content-type"] == "text/html; charset=ISO-8859-1"


@pytest.mark.parametrize("method", ["GET", "POST", "OPTIONS", "DELETE"])
@pytest.mark.parametrize("path", ["/", "/v2/models/mnist", "/healthz", "/v1"])
def test_paths_outside_the_api_get_libevents_404_page(
    edges: TestClient, method: str, path: str
) -> None:
    response = edges.request(method, path)

    assert response.status_code == 404
    assert response.headers["content-type"] == "text/html"
    assert response.text == NOT_FOUND_PAGE


def test_metrics_answer_any_served_method(edges: TestClient) -> None:
    response = edges.post("/monitoring/prometheus/metrics")

    assert response.status_code == 200
    assert ":tensorflow:serving:request_count" in response.text


# 9. Output floats. json_tensor.cc WriteDecimal writes absl::StrCat(value) (six
# significant digits, printf %g) when that reads back as the same float, else
# StrFormat("%.*g", max_digits10); adds ".0" to whole numbers; NaN, Infinity, -Infinity.


def write_decimal(value: np.floating) -> str:
    """WriteDecimal for one value, the plain way."""
    number = float(value)
    if math.isnan(number):
        return "NaN"
    if math.isinf(number):
        return "Infinity" if number > 0 else "-Infinity"
    text = f"{number:.6g}"
    if type(value)(text) != value:
        text = f"{number:.{9 if value.dtype == np.float32 else 17}g}"
    return text if "." in text or "e" in text else text + ".0"


def test_float32_outputs_as_tf_serving_writes_them() -> None:
    # The values of json_tensor_test.cc FromJsonSingleFloatTensorSixDigitPrecision and
    # FromJsonSingleFloatTensorNonFinite, then round-trip cases.
    values = np.array(
        [9000000, 999999, 0.5, 0.0003, 0.00003, 555557.5, np.nan, np.inf, 3, -np.inf]
        + [0.1, 0.123456789, 1234567, 16777216, -0.0, 1e-45, 3.4e38],
        dtype=np.float32,
    )

    assert float32_texts(values) == [
        "9e+06", "999999.0", "0.5", "0.0003", "3e-05", "555557.5",
        "NaN", "Infinity", "3.0", "-Infinity",
        "0.1", "0.123456791", "1234567.0", "16777216.0", "-0.0", "1.4013e-45", "3.4e+38",
    ]  # fmt: skip


def test_float32_texts_agree_with_write_decimal_everywhere() -> None:
    rng = np.random.default_rng(7)
    with np.errstate(over="ignore"):
        values = (rng.standard_normal(20_000) * 10.0 ** rng.integers(-45, 39, 20_000)).astype(
            np.float32
        )
    values[::7] = np.round(values[::7])
    values[::11] = rng.random(len(values[::11]))  # probabilities
    values[::101], values[::103], values[::107] = np.nan, np.inf, -np.inf
    expected = [write_decimal(value) for value in values]

    assert float32_texts(values) == expected  # the vectorised path
    few_at_a_time = np.array_split(values, len(values) // 50)  # the value-by-value path
    assert [text for chunk in few_at_a_time for text in float32_texts(chunk)] == expected


def test_float64_outputs_fall_back_to_17_digits() -> None:
    values = [0.1, 1 / 3, 2.0, 1e22, -1e-300, float("nan")]

    assert [float64_text(v) for v in values] == [write_decimal(np.float64(v)) for v in values]
    assert float64_text(1 / 3) == "0.33333333333333331"


def test_outputs_in_both_formats() -> None:
    outputs: dict[str, np.ndarray] = {
        "scores": np.array([[0.1, np.nan], [3.0, -np.inf]], dtype=np.float32),
        "label": np.array([4, 7], dtype=np.int64),
    }

    assert encode_predict_response({"scores": outputs["scores"]}, row_format=True) == (
        b'{"predictions":[[0.1,NaN],[3.0,-Infinity]]}'
    )
    assert encode_predict_response(outputs, row_format=False) == (
        b'{"outputs":{"scores":[[0.1,NaN],[3.0,-Infinity]],"label":[4,7]}}'
    )
    assert encode_predict_response(outputs, row_format=True) == (
        b'{"predictions":[{"scores":[0.1,NaN],"label":4},{"scores":[3.0,-Infinity],"label":7}]}'
    )


def test_inconsistent_batch_sizes_are_named_as_tf_serving_names_them() -> None:
    outputs: dict[str, np.ndarray] = {"a": np.zeros((2, 3), np.float32), "b": np.zeros(3, np.int64)}

    with pytest.raises(ServingError) as raised:
        encode_predict_response(outputs, row_format=True)

    assert raised.value.message == "Tensor name: b has inconsistent batch size: 3 expecting: 2"


def test_predict_response_floats_are_written_decimals(edges: TestClient) -> None:
    rng = np.random.default_rng(3)
    images = [rng.random((28, 28, 1)).tolist() for _ in range(4)]

    response = edges.post(PREDICT, json={"instances": images})

    assert response.status_code == 200
    for prediction in response.json()["predictions"]:
        for number in [*prediction["probabilities"], prediction["confidence"]]:
            text = write_decimal(np.float32(number))
            assert text in response.text
            assert np.float32(text) == np.float32(number)


# 10. :classify and :regress on a predict-only model. classifier.cc
# GetClassificationSignatureDef and regressor.cc GetRegressionSignatureDef check the
# signature's shape (the method-name check is off by default, server.h), after
# FillClassifyRegressRequestFromJson has read the body and the model has been found.


@pytest.mark.parametrize(
    ("verb", "body", "status", "error"),
    [
        (
            "classify",
            b'{"examples": [{"x": 1.0}]}',
            400,
            "Expected one or two output Tensors, found 4",
        ),
        ("regress", b'{"examples": [{"x": 1.0}]}', 400, "Expected one output Tensor."),
        (
            "classify",
            b'{"signature_name": "nope", "examples": [{"x": 1}]}',
            400,
            "No signature was found with the name: nope",
        ),
        (
            "regress",
            b'{"signature_name": "x"}',
            400,
            'JSON Value: {\n    "signature_name": "x"\n} When method is classify, key '
            "'examples' is expected and was not found",
        ),
        (
            "classify",
            b'{"examples": []}',
            400,
            "JSON Value: {\n    \"examples\": []\n} 'examples' value is an empty array",
        ),
        ("classify", b'{"examples": [1]}', 400, "Example must be JSON object but got JSON Number"),
        (
            "classify",
            b'{"examples": [{"x": [1, 2.5]}]}',
            400,
            "Unexpected element type in feature: x expecting type: int64",
        ),
        (
            "regress",
            b'{"examples": [{"x": [null]}]}',
            400,
            "Feature: x has element with unexpected JSON type: Null",
        ),
        (
            "regress",
            b'{"examples": [{"x": 9223372036854775808}]}',
            400,
            "Feature: x has uint64_t element. Only int64_t is supported.",
        ),
        (
            "classify",
            b'{"context": {"c": [{"b64": "%%"}]}, "examples": [{}]}',
            400,
            "Unable to base64 decode",
        ),
    ],
)
def test_classify_and_regress_on_a_predict_model(
    edges: TestClient, verb: str, body: bytes, status: int, error: str
) -> None:
    response = edges.post(f"/v1/models/mnist:{verb}", content=body)

    assert error_of(response) == (status, error)


def test_classify_on_an_unknown_model(edges: TestClient) -> None:
    response = edges.post("/v1/models/nope:classify", content=b'{"examples": [{}]}')

    assert error_of(response) == (404, "Servable not found for request: Latest(nope)")


def test_a_signature_fit_to_classify_is_not_run_here() -> None:
    signature = meta_graph_pb2.SignatureDef(method_name="tensorflow/serving/classify")
    signature.inputs["inputs"].name = "examples:0"
    signature.outputs["scores"].name = "scores:0"

    class Servable:
        signature_defs = {"serving_default": signature}

    with pytest.raises(ServingError) as raised:
        _refuse_classify_regress("classify", Servable(), "serving_default")  # type: ignore[arg-type]

    assert raised.value.http_status == 501


# --allow_version_labels_for_unavailable_models. server_core.cc UpdateModelVersionLabelMap
# runs when a config is applied, before its versions load: a label must point at an
# AVAILABLE version unless the flag is on and the label is new or keeps its version.


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
# any other object is "not formatted correctly for base64 data". Lists of them in the row
# and columnar formats take a fast path; it must read exactly what the value-by-value walk
# reads, and leave every refusal to it.

PIXEL_SPECS = {"pixels": "string"}


def b64(data: bytes) -> dict[str, str]:
    return {"b64": base64.b64encode(data).decode()}


@pytest.mark.parametrize(
    "document",
    [
        {"instances": [b64(bytes(784))]},
        {"instances": [b64(bytes(range(256)) * 3 + bytes(16)), b64(b""), "plain text"]},
        {"inputs": [b64(b"\x00\xff"), b64(b"abc")]},
        {"inputs": {"pixels": [b64(b"abc"), "d\u00e9f"]}},
        {"inputs": {"pixels": b64(b"one value")}},
        {"instances": [{"pixels": b64(b"named")}, {"pixels": b64(b"twice")}]},
    ],
)
def test_b64_strings_read_as_the_value_by_value_walk_reads_them(
    document: dict[str, object], monkeypatch: pytest.MonkeyPatch
) -> None:
    body = json.dumps(document).encode()
    fast = parse_predict_request(body, lambda _: PIXEL_SPECS)
    monkeypatch.setattr("serving.json_tensor._fast_strings", lambda _items: None)
    slow = parse_predict_request(body, lambda _: PIXEL_SPECS)

    assert fast.row_format == slow.row_format
    assert fast.inputs["pixels"].dtype == slow.inputs["pixels"].dtype == object
    assert fast.inputs["pixels"].shape == slow.inputs["pixels"].shape
    assert fast.inputs["pixels"].tolist() == slow.inputs["pixels"].tolist()


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
            'JSON Value: {\n    "b64": "AA==",\n    "other": 1\n} not formatted correctly for '
            "base64 data",
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
