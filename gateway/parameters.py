"""The query and header parameters the predict routes read themselves (gateway/routes/predict.py
says why), each defined once: the same object parses a request's value and describes the
parameter in the OpenAPI document, where `upload_route` puts it beside the route's form model.
"""

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel
from starlette.datastructures import Headers, QueryParams

from contract import VERSION_LABEL_PATTERN, VERSION_LABEL_RULE
from gateway.errors import BadRequestParameters

T = TypeVar("T")
_LABEL = re.compile(VERSION_LABEL_PATTERN)
# A model version as text, as /predict answers it: a positive integer of at most 19 digits.
VERSION_PATTERN = r"^[0-9]{1,19}$"
_VERSION = re.compile(VERSION_PATTERN)
_TRUE, _FALSE = frozenset({"true", "1", "yes", "on"}), frozenset({"false", "0", "no", "off"})


@dataclass(frozen=True, slots=True)
class Parameter(Generic[T]):
    """One optional parameter: where it is sent, how it is documented and how it is parsed.

    `parse(text, shown_name)` turns the sent text into the value or raises
    BadRequestParameters with a sentence that names the parameter as the caller wrote it.
    """

    where: Literal["query", "header"]
    name: str
    schema: dict[str, Any]
    description: str
    parse: Callable[[str, str], T]

    @property
    def shown_name(self) -> str:
        """The name as documentation writes it: `version`, `X-Model-Version`."""
        if self.where == "query":
            return self.name
        return "-".join(part.capitalize() for part in self.name.split("-"))

    def read(self, query: QueryParams, headers: Headers) -> T | None:
        """The parsed value, or None when the request does not send the parameter."""
        text = (query if self.where == "query" else headers).get(self.name)
        return None if text is None else self.parse(text, self.shown_name)

    def openapi(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "in": self.where,
            "required": False,
            "schema": self.schema,
            "description": self.description,
        }


def is_version(text: str) -> bool:
    return _VERSION.fullmatch(text) is not None and int(text) > 0


def positive_integer(text: str, name: str) -> int:
    if not is_version(text):
        raise BadRequestParameters(f"{name} must be a positive integer, not {text[:30]!r}.")
    return int(text)


def version_label(text: str, _name: str) -> str:
    # The label becomes part of the upstream URL: only plain names get through.
    if not _LABEL.fullmatch(text):
        raise BadRequestParameters(f"The label must be {VERSION_LABEL_RULE}, not {text[:70]!r}.")
    return text


def boolean(text: str, name: str) -> bool:
    lowered = text.lower()
    if lowered not in _TRUE and lowered not in _FALSE:
        raise BadRequestParameters(f"{name} must be true or false, not {lowered[:20]!r}.")
    return lowered in _TRUE


VERSION = Parameter(
    "query",
    "version",
    {"type": "integer", "minimum": 1},
    "Pin a model version (overrides GATEWAY_MODEL_VERSION).",
    positive_integer,
)
LABEL = Parameter(
    "query",
    "label",
    {"type": "string", "pattern": VERSION_LABEL_PATTERN},
    "Pin a version label such as 'stable' or 'canary'.",
    version_label,
)
VERSION_HEADER = Parameter(
    "header", "x-model-version", {"type": "string"}, "Same as ?version=.", positive_integer
)
LABEL_HEADER = Parameter(
    "header", "x-model-label", {"type": "string"}, "Same as ?label=.", version_label
)
INCLUDE_IMAGE = Parameter(
    "query",
    "include_image",
    {"type": "boolean", "default": False},
    "Also return the normalised 28x28 image as a PNG data URL.",
    boolean,
)
PIN_PARAMETERS = (VERSION, LABEL, VERSION_HEADER, LABEL_HEADER)


def upload_route(form: type[BaseModel], *parameters: Parameter[Any]) -> dict[str, Any]:
    """`openapi_extra` for a route taking `form` as multipart/form-data."""
    body = {"multipart/form-data": {"schema": form.model_json_schema()}}
    extra: dict[str, Any] = {"requestBody": {"required": True, "content": body}}
    if parameters:
        extra["parameters"] = [parameter.openapi() for parameter in parameters]
    return extra
