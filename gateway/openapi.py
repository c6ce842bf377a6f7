"""OpenAPI descriptions for the upload routes, which read their own requests.

FastAPI documents what it parses itself; /predict, /predict/batch and /feedback parse their
multipart bodies and parameters directly (it costs a fraction of FastAPI's form and
dependency machinery), so their documentation is declared here, from the same models.
"""

from typing import Any

from pydantic import BaseModel

from contract import VERSION_LABEL_PATTERN


def parameter(where: str, name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": where,
        "required": False,
        "schema": schema,
        "description": description,
    }


def upload_route(form: type[BaseModel], *parameters: dict[str, Any]) -> dict[str, Any]:
    """`openapi_extra` for a route taking `form` as multipart/form-data."""
    return {
        "parameters": list(parameters),
        "requestBody": {
            "required": True,
            "content": {"multipart/form-data": {"schema": form.model_json_schema()}},
        },
    }


API_KEY = parameter(
    "header", "x-api-key", {"type": "string"}, "Required when the gateway has keys."
)
PIN_PARAMETERS = (
    parameter(
        "query",
        "version",
        {"type": "integer", "minimum": 1},
        "Pin a model version (overrides GATEWAY_MODEL_VERSION).",
    ),
    parameter(
        "query",
        "label",
        {"type": "string", "pattern": VERSION_LABEL_PATTERN},
        "Pin a version label such as 'stable' or 'canary'.",
    ),
    parameter("header", "x-model-version", {"type": "string"}, "Same as ?version=."),
    parameter("header", "x-model-label", {"type": "string"}, "Same as ?label=."),
)
INCLUDE_IMAGE = parameter(
    "query",
    "include_image",
    {"type": "boolean", "default": False},
    "Also return the normalised 28x28 image as a PNG data URL.",
)
