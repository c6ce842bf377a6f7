"""The OpenAPI document (gateway/openapi.py and the routes' declarations): the upload routes
read their own requests, so what they take and answer is declared by hand and checked here."""

from typing import Any

import pytest
from fastapi.testclient import TestClient

from contract import VERSION_LABEL_PATTERN

UPLOAD_ROUTES = ["/predict", "/predict/batch", "/feedback"]
PREDICT_ROUTES = ["/predict", "/predict/batch"]


@pytest.fixture
def schema(client: TestClient) -> dict[str, Any]:
    document: dict[str, Any] = client.get("/openapi.json").json()
    return document


def post(schema: dict[str, Any], path: str) -> dict[str, Any]:
    operation: dict[str, Any] = schema["paths"][path]["post"]
    return operation


def form(schema: dict[str, Any], path: str) -> dict[str, Any]:
    body = post(schema, path)["requestBody"]
    assert body["required"] is True
    assert list(body["content"]) == ["multipart/form-data"]
    form_schema: dict[str, Any] = body["content"]["multipart/form-data"]["schema"]
    return form_schema


def parameters(schema: dict[str, Any], path: str) -> dict[tuple[str, str], dict[str, Any]]:
    return {(p["in"], p["name"].lower()): p for p in post(schema, path).get("parameters", [])}


BINARY = {"type": "string", "contentMediaType": "application/octet-stream"}


def test_openapi_documents_predict_and_errors(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()

    predict = schema["paths"]["/predict"]["post"]
    assert {"200", "400", "413", "415", "422", "502", "503", "504"} <= set(predict["responses"])
    assert client.get("/docs").status_code == 200


def test_openapi_predict_takes_one_file_field(schema: dict[str, Any]) -> None:
    body = form(schema, "/predict")

    assert body["required"] == ["file"]
    assert BINARY.items() <= body["properties"]["file"].items()


def test_openapi_batch_takes_a_list_of_files(schema: dict[str, Any]) -> None:
    body = form(schema, "/predict/batch")

    assert body["required"] == ["files"]
    files = body["properties"]["files"]
    assert files["type"] == "array"
    assert BINARY.items() <= files["items"].items()


def test_openapi_feedback_takes_file_and_label_and_optional_prediction(
    schema: dict[str, Any],
) -> None:
    body = form(schema, "/feedback")

    assert sorted(body["required"]) == ["file", "label"]
    properties = body["properties"]
    assert BINARY.items() <= properties["file"].items()
    assert (properties["label"]["type"], properties["label"]["minimum"]) == ("integer", 0)
    assert properties["label"]["maximum"] == 9
    assert {"predicted_digit", "model_version"} <= set(properties)


@pytest.mark.parametrize("path", PREDICT_ROUTES)
def test_openapi_predict_routes_document_pins_and_image_flag(
    schema: dict[str, Any], path: str
) -> None:
    documented = parameters(schema, path)

    assert set(documented) == {
        ("query", "version"),
        ("query", "label"),
        ("query", "include_image"),
        ("header", "x-model-version"),
        ("header", "x-model-label"),
    }
    assert all(p["required"] is False for p in documented.values())
    assert documented[("query", "version")]["schema"] == {"type": "integer", "minimum": 1}
    assert documented[("query", "label")]["schema"]["pattern"] == VERSION_LABEL_PATTERN
    assert documented[("query", "include_image")]["schema"]["type"] == "boolean"


@pytest.mark.parametrize("path", UPLOAD_ROUTES)
def test_openapi_upload_routes_require_the_api_key_scheme(
    schema: dict[str, Any], path: str
) -> None:
    scheme = schema["components"]["securitySchemes"]["APIKeyHeader"]

    assert (scheme["type"], scheme["in"], scheme["name"]) == ("apiKey", "header", "X-API-Key")
    assert post(schema, path)["security"] == [{"APIKeyHeader": []}]


def test_openapi_feedback_documents_no_parameters(schema: dict[str, Any]) -> None:
    assert parameters(schema, "/feedback") == {}


@pytest.mark.parametrize(
    ("path", "success", "errors"),
    [
        ("/predict", "200", {"400", "401", "413", "415", "422", "502", "503", "504"}),
        ("/predict/batch", "200", {"400", "401", "413", "415", "422", "502", "503", "504"}),
        ("/feedback", "201", {"400", "401", "404", "413", "415", "422", "503", "507"}),
    ],
)
def test_openapi_upload_routes_document_success_and_each_error_body(
    schema: dict[str, Any], path: str, success: str, errors: set[str]
) -> None:
    responses = post(schema, path)["responses"]

    assert set(responses) == {success} | errors
    for status in errors:
        assert responses[status]["description"]
        body = responses[status]["content"]["application/json"]["schema"]
        assert body == {"$ref": "#/components/schemas/ErrorBody"}, status


@pytest.mark.parametrize(
    ("path", "status", "model"),
    [
        ("/predict", "200", "PredictResponse"),
        ("/predict/batch", "200", "BatchPredictResponse"),
        ("/feedback", "201", "FeedbackResponse"),
    ],
)
def test_openapi_upload_routes_document_their_answer_model(
    schema: dict[str, Any], path: str, status: str, model: str
) -> None:
    answer = post(schema, path)["responses"][status]["content"]["application/json"]["schema"]

    assert answer == {"$ref": f"#/components/schemas/{model}"}
    assert model in schema["components"]["schemas"]


def test_openapi_error_body_is_one_detail_sentence(schema: dict[str, Any]) -> None:
    error = schema["components"]["schemas"]["ErrorBody"]

    assert error["required"] == ["detail"]
    assert error["properties"]["detail"]["type"] == "string"
