"""read_form (gateway/uploads.py) on requests built from an ASGI scope: multipart bodies as
httpx encodes them, read into the routes' form models, and what is refused."""

import httpx
import pytest
from starlette.requests import Request
from starlette.types import Message

from gateway.errors import BadRequestParameters, MalformedRequest
from gateway.schemas import BatchForm, FeedbackForm, Part, PredictForm
from gateway.uploads import MAX_PARTS, read_form

pytestmark = pytest.mark.anyio

# Bytes that look like multipart framing must come through untouched.
AWKWARD = b"\r\n--not-the-boundary\r\n\x00\xff" + bytes(range(256))


def request(body: bytes, content_type: str | None) -> Request:
    """A POST whose body arrives in one message."""
    headers = [(b"content-type", content_type.encode())] if content_type is not None else []
    headers.append((b"content-length", str(len(body)).encode()))
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/predict",
        "query_string": b"",
        "headers": headers,
    }

    async def receive() -> Message:
        return {"type": "http.request", "body": body, "more_body": False}

    return Request(scope, receive)


def multipart(
    files: list[tuple[str, tuple[str, bytes, str]]], data: dict[str, str] | None = None
) -> Request:
    """The request httpx sends for `files=` and `data=`."""
    encoded = httpx.Request("POST", "http://gateway/predict", files=files, data=data)
    return request(encoded.read(), encoded.headers["content-type"])


async def test_form_fields_take_their_parts_in_order_untouched() -> None:
    form = await read_form(
        multipart(
            [
                ("files", ("a.png", b"first", "image/png")),
                ("extra", ("c.bmp", b"", "image/bmp")),
                ("files", ("b.png", AWKWARD, "image/png")),
            ],
            data={"label": "3"},
        ),
        BatchForm,
    )

    assert form.files == [Part("files", "a.png", b"first"), Part("files", "b.png", AWKWARD)]


async def test_form_file_field_takes_the_first_part_and_text_fields_their_text() -> None:
    form = await read_form(
        multipart(
            [("file", ("a.png", b"1", "image/png")), ("file", ("b.png", b"2", "image/png"))],
            data={"label": "7", "predicted_digit": "", "model_version": "3"},
        ),
        FeedbackForm,
    )

    assert form.file == Part("file", "a.png", b"1")
    assert (form.label, form.predicted_digit, form.model_version) == (7, None, "3")


async def test_field_without_filename_has_none() -> None:
    body = (
        b"--b0undary\r\n"
        b'Content-Disposition: form-data; name="file"\r\n'
        b"Content-Type: image/png\r\n\r\n"
        b"\x89PNG\r\n"
        b"--b0undary--\r\n"
    )

    form = await read_form(request(body, "multipart/form-data; boundary=b0undary"), PredictForm)

    assert form.file == Part("file", None, b"\x89PNG")


async def test_missing_field_is_bad_request_parameters_naming_it() -> None:
    sent = multipart([("image", ("x.png", b"x", "image/png"))])

    with pytest.raises(BadRequestParameters, match="file: Field required") as missing:
        await read_form(sent, PredictForm)

    assert missing.value.status_code == 422


async def test_form_text_of_invalid_utf8_is_a_field_error_not_a_crash() -> None:
    body = (
        b"--b0undary\r\n"
        b'Content-Disposition: form-data; name="file"; filename="a.png"\r\n\r\n'
        b"1\r\n"
        b"--b0undary\r\n"
        b'Content-Disposition: form-data; name="label"\r\n\r\n'
        b"\xff3\r\n"
        b"--b0undary--\r\n"
    )

    with pytest.raises(BadRequestParameters, match="label") as refused:
        await read_form(request(body, "multipart/form-data; boundary=b0undary"), FeedbackForm)

    assert refused.value.status_code == 422


@pytest.mark.parametrize(
    "content_type",
    [
        pytest.param("application/json", id="json"),
        pytest.param("application/x-www-form-urlencoded", id="urlencoded"),
        pytest.param("multipart/form-data", id="multipart-without-boundary"),
        pytest.param("multipart/mixed; boundary=x", id="multipart-mixed"),
        pytest.param(None, id="no-content-type"),
    ],
)
async def test_body_that_is_not_multipart_form_data_is_bad_request_parameters(
    content_type: str | None,
) -> None:
    with pytest.raises(BadRequestParameters, match="not multipart/form-data") as refused:
        await read_form(request(b'{"file": "x"}', content_type), PredictForm)

    assert refused.value.status_code == 422


@pytest.mark.parametrize("cut", [10, 60, -20, -3])
async def test_truncated_multipart_is_malformed_request(cut: int) -> None:
    whole = httpx.Request(
        "POST", "http://gateway/predict", files={"file": ("a.png", b"x" * 50, "image/png")}
    )
    body = whole.read()

    with pytest.raises(MalformedRequest) as malformed:
        await read_form(request(body[:cut], whole.headers["content-type"]), PredictForm)

    assert malformed.value.status_code == 400
    assert "not valid multipart/form-data" in malformed.value.detail


async def test_body_not_framed_by_its_boundary_is_malformed_request() -> None:
    with pytest.raises(MalformedRequest):
        await read_form(request(b"just some bytes", "multipart/form-data; boundary=x"), PredictForm)


async def test_empty_multipart_body_is_malformed_request() -> None:
    with pytest.raises(MalformedRequest):
        await read_form(request(b"", "multipart/form-data; boundary=x"), PredictForm)


async def test_a_body_of_more_parts_than_the_limit_is_refused() -> None:
    many = [("files", (f"{i}.png", b"x", "image/png")) for i in range(MAX_PARTS + 1)]

    with pytest.raises(BadRequestParameters, match=f"more than {MAX_PARTS} parts"):
        await read_form(multipart(many), BatchForm)

    assert len((await read_form(multipart(many[:MAX_PARTS]), BatchForm)).files) == MAX_PARTS
