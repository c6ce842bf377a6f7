"""Multipart/form-data request bodies, parsed in memory in one pass with python-multipart,
read into the route's form model (gateway/schemas.py), which also documents the route.

The whole body is read first: the middleware has already capped it at the upload limit, and
user images never touch the disk.
"""

from typing import TYPE_CHECKING, Any, TypeVar, get_origin

from pydantic import BaseModel, ValidationError
from python_multipart.multipart import MultipartParser, MultipartState, parse_options_header
from starlette.requests import Request

if TYPE_CHECKING:  # python-multipart declares its callbacks' types for checkers only
    from python_multipart.multipart import MultipartCallbacks

from gateway.errors import BadRequestParameters, MalformedRequest
from gateway.schemas import UPLOAD_HINT, Part, validation_detail

FormModel = TypeVar("FormModel", bound=BaseModel)


async def read_form(request: Request, model: type[FormModel]) -> FormModel:
    """The request's multipart body as `model`: each field takes the parts of its name, a
    file field the first such part, a list field all of them, any other field the first
    one's text (an empty text counts as not sent when the field is optional).

    Raises:
        BadRequestParameters: the body is not multipart/form-data, or a field is missing or
            invalid.
        MalformedRequest: it says it is multipart, but does not parse.
    """
    media_type, options = parse_options_header(request.headers.get("content-type"))
    boundary = options.get(b"boundary")
    if media_type != b"multipart/form-data" or not boundary:
        raise BadRequestParameters(
            f"Invalid request: the body is not multipart/form-data. {UPLOAD_HINT}"
        )
    body = await request.body()  # outside the try: a body over the limit is the middleware's
    collector = _PartCollector()
    parser = MultipartParser(boundary, collector.callbacks())
    try:
        parser.write(body)
    except BadRequestParameters:
        raise
    except Exception as exc:  # python-multipart's errors, and what malformed bytes raise
        raise MalformedRequest(MALFORMED) from exc
    if parser.state != MultipartState.END:
        raise MalformedRequest(MALFORMED)
    try:
        return model.model_validate(_values(collector.parts, model))
    except ValidationError as exc:
        raise BadRequestParameters(validation_detail(exc.errors())) from exc


def _values(parts: list[Part], model: type[BaseModel]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for part in parts:
        field = model.model_fields.get(part.name)
        if field is None:
            continue
        if get_origin(field.annotation) is list:
            values.setdefault(part.name, []).append(part)
        elif part.name in values:
            continue
        elif field.annotation is Part:
            values[part.name] = part
        elif part.data or field.is_required():
            values[part.name] = part.data.decode("utf-8", "replace")
    return values


class _PartCollector:
    """python-multipart's callbacks: each part's headers and data, kept whole in memory."""

    def __init__(self) -> None:
        self.parts: list[Part] = []
        self._headers: dict[bytes, bytes] = {}
        self._field = self._value = b""
        self._chunks: list[bytes] = []

    def callbacks(self) -> "MultipartCallbacks":
        return {
            "on_header_field": self._on_header_field,
            "on_header_value": self._on_header_value,
            "on_header_end": self._on_header_end,
            "on_part_data": self._on_part_data,
            "on_part_end": self._on_part_end,
        }

    def _on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._field += data[start:end]

    def _on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def _on_header_end(self) -> None:
        self._headers[self._field.lower()] = self._value
        self._field = self._value = b""

    def _on_part_data(self, data: bytes, start: int, end: int) -> None:
        self._chunks.append(data[start:end])

    def _on_part_end(self) -> None:
        if len(self.parts) >= MAX_PARTS:
            raise BadRequestParameters(
                f"The body has more than {MAX_PARTS} parts; send at most that many files."
            )
        _, disposition = parse_options_header(self._headers.get(b"content-disposition"))
        name = disposition.get(b"name")
        if name is not None:
            filename = disposition.get(b"filename")
            self.parts.append(
                Part(
                    name.decode("utf-8", "replace"),
                    filename.decode("utf-8", "replace") if filename is not None else None,
                    b"".join(self._chunks),
                )
            )
        self._headers.clear()
        self._chunks.clear()


# As Starlette's form parser: a bound on the work a body of many tiny parts can cause.
MAX_PARTS = 1000
MALFORMED = "The request body is not valid multipart/form-data; send the image as field 'file'."
