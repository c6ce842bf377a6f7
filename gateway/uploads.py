"""Multipart/form-data request bodies, parsed in memory by python-multipart's FormParser,
read into the route's form model (gateway/schemas.py), which also documents the route.

The whole body is read first: the middleware has already capped it at the upload limit, and
user images never touch the disk.
"""

import math
from typing import Any, TypeVar, get_origin

from pydantic import BaseModel, ValidationError
from python_multipart.multipart import Field, File, FormParser, parse_options_header
from starlette.requests import Request

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
    parts: list[Part] = []
    ended = False

    def on_part(part: Field | File) -> None:
        if len(parts) >= MAX_PARTS:
            raise BadRequestParameters(
                f"The body has more than {MAX_PARTS} parts; send at most that many files."
            )
        if isinstance(part, File):
            part.file_object.seek(0)
            filename, data = _text(part.file_name or b""), part.file_object.read()
        else:
            filename, data = None, part.value or b""
        parts.append(Part(_text(part.field_name or b""), filename, data))

    def on_end() -> None:
        nonlocal ended
        ended = True

    parser = FormParser(
        "multipart/form-data", on_part, on_part, on_end, boundary=boundary, config=IN_MEMORY
    )
    try:
        parser.write(body)
    except BadRequestParameters:
        raise
    except Exception as exc:  # python-multipart's errors, and what malformed bytes raise
        raise MalformedRequest(MALFORMED) from exc
    if not ended:
        raise MalformedRequest(MALFORMED)
    try:
        return model.model_validate(_values(parts, model))
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


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "replace")


# As Starlette's form parser: a bound on the work a body of many tiny parts can cause.
MAX_PARTS = 1000
IN_MEMORY = {"MAX_MEMORY_FILE_SIZE": math.inf}  # user images never touch the disk
MALFORMED = "The request body is not valid multipart/form-data; send the image as field 'file'."
