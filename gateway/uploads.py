"""Multipart/form-data request bodies, parsed in memory in one pass with python-multipart.

The whole body is read first: the middleware has already capped it at the upload limit, and
user images never touch the disk.
"""

from dataclasses import dataclass

from python_multipart.multipart import MultipartParser, MultipartState, parse_options_header
from starlette.requests import Request

from gateway.errors import BadRequestParameters, MalformedRequest
from gateway.schemas import UPLOAD_HINT


@dataclass(frozen=True, slots=True)
class Part:
    name: str
    filename: str | None
    data: bytes


@dataclass(frozen=True, slots=True)
class Form:
    parts: list[Part]

    def files(self, name: str) -> list[Part]:
        return [part for part in self.parts if part.name == name]

    def file(self, name: str) -> Part:
        """The one part called `name`.

        Raises:
            BadRequestParameters: there is none.
        """
        for part in self.parts:
            if part.name == name:
                return part
        raise BadRequestParameters(f"Invalid request: field '{name}' is missing. {UPLOAD_HINT}")

    def text(self, name: str) -> str | None:
        for part in self.parts:
            if part.name == name:
                return part.data.decode("utf-8", "replace")
        return None


async def read_form(request: Request) -> Form:
    """The request's multipart parts, in order.

    Raises:
        BadRequestParameters: the body is not multipart/form-data.
        MalformedRequest: it says it is, but does not parse.
    """
    media_type, options = parse_options_header(request.headers.get("content-type"))
    boundary = options.get(b"boundary")
    if media_type != b"multipart/form-data" or not boundary:
        raise BadRequestParameters(
            f"Invalid request: the body is not multipart/form-data. {UPLOAD_HINT}"
        )
    body = await request.body()
    parts: list[Part] = []
    headers: dict[bytes, bytes] = {}
    field = value = b""
    chunks: list[bytes] = []

    def on_header_field(data: bytes, start: int, end: int) -> None:
        nonlocal field
        field += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        nonlocal value
        value += data[start:end]

    def on_header_end() -> None:
        nonlocal field, value
        headers[field.lower()] = value
        field = value = b""

    def on_part_data(data: bytes, start: int, end: int) -> None:
        chunks.append(data[start:end])

    def on_part_end() -> None:
        if len(parts) >= MAX_PARTS:
            raise BadRequestParameters(
                f"The body has more than {MAX_PARTS} parts; send at most that many files."
            )
        _, disposition = parse_options_header(headers.get(b"content-disposition"))
        name = disposition.get(b"name")
        if name is not None:
            filename = disposition.get(b"filename")
            parts.append(
                Part(
                    name.decode("utf-8", "replace"),
                    filename.decode("utf-8", "replace") if filename is not None else None,
                    b"".join(chunks),
                )
            )
        headers.clear()
        chunks.clear()

    parser = MultipartParser(
        boundary,
        {
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_header_end": on_header_end,
            "on_part_data": on_part_data,
            "on_part_end": on_part_end,
        },
    )
    try:
        parser.write(body)
    except BadRequestParameters:
        raise
    except Exception as exc:  # python-multipart's errors, and what malformed bytes raise
        raise MalformedRequest(MALFORMED) from exc
    if parser.state != MultipartState.END:
        raise MalformedRequest(MALFORMED)
    return Form(parts)


# As Starlette's form parser: a bound on the work a body of many tiny parts can cause.
MAX_PARTS = 1000
MALFORMED = "The request body is not valid multipart/form-data; send the image as field 'file'."
