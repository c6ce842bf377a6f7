"""POST /predict and /predict/batch: upload -> normalised digit -> TF Serving -> answer.

The routes read their own forms and parameters (gateway/uploads.py, gateway/parameters.py)
and answer with JSON serialised once: on the hot path that costs a fraction of FastAPI's form
and response-model machinery. The OpenAPI document is built from the same definitions.
"""

import base64
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import orjson
from fastapi import Request, Response
from starlette.concurrency import run_in_threadpool

from gateway.deps import Services, keyed_router
from gateway.errors import (
    BadRequestParameters,
    InvalidImage,
    NoDigitFound,
    PayloadTooLarge,
    UnsupportedImageType,
)
from gateway.metrics import note_error
from gateway.parameters import INCLUDE_IMAGE, PIN_PARAMETERS, upload_route
from gateway.pins import Pin, request_pin
from gateway.preprocessing import encode_png, preprocess_upload
from gateway.schemas import (
    BatchForm,
    BatchPredictResponse,
    Part,
    PredictForm,
    PredictResponse,
    error_responses,
)
from gateway.serving_client import ModelOutput
from gateway.uploads import read_form

router = keyed_router("predict")
# Uploads up to this size (canvas drawings, phone-size JPEGs) decode in well under a
# millisecond: inline is cheaper than a hop to the thread pool and back.
INLINE_DECODE_BYTES = 256 * 1024
# What is wrong with one file of a batch, not with the request: that file gets its own error.
FILE_ERRORS = (InvalidImage, UnsupportedImageType, PayloadTooLarge, NoDigitFound)
Prepared = TypeVar("Prepared")

ERROR_RESPONSES = error_responses(
    {
        400: "The upload is not a readable image.",
        401: "An API key is required.",
        413: "The upload has too many bytes or pixels.",
        415: "The file is not in a supported image format.",
        422: "No digit found, or invalid parameters.",
        502: "The model server answered with an error.",
        503: "The model server is unreachable or the model is not available.",
        504: "The model server timed out.",
    }
)


async def preprocessed(
    upload: Part, services: Services, work: Callable[[bytes, int], Prepared]
) -> Prepared:
    """`work(bytes, max_pixels)` on an upload, timed, off the loop when the upload is big."""
    max_pixels = services.settings.max_image_pixels
    started = time.perf_counter()
    try:
        if len(upload.data) <= INLINE_DECODE_BYTES:
            return work(upload.data, max_pixels)
        return await run_in_threadpool(work, upload.data, max_pixels)
    finally:
        services.metrics.preprocess.observe(time.perf_counter() - started)


async def normalised_digit(upload: Part, services: Services) -> np.ndarray:
    """An upload as the 28x28 digit the model takes."""
    return await preprocessed(upload, services, preprocess_upload)


def prediction(
    output: ModelOutput, image: np.ndarray, with_image: bool, services: Services, version: str
) -> dict[str, object]:
    """One digit's answer (the fields of DigitPrediction), counted in the metrics."""
    count_digit(output, services, version)
    return {
        "predicted_digit": output.digit,
        "confidence": output.confidence,
        "probabilities": output.probabilities,
        "normalized_image": png_data_url(image) if with_image else None,
    }


def count_digit(output: ModelOutput, services: Services, version: str) -> None:
    """A digit answered, in the metrics: which digit, and how confident."""
    metrics = services.metrics
    metrics.child(metrics.digits, str(output.digit), version).inc()
    metrics.child(metrics.confidence, version).observe(output.confidence)


def png_data_url(image: np.ndarray) -> str:
    return "data:image/png;base64," + base64.b64encode(encode_png(image)).decode("ascii")


def json_response(body: dict[str, object], status_code: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code, media_type="application/json")


@dataclass(frozen=True, slots=True)
class PredictParameters:
    """What both predict routes read before the body (the API key is checked already)."""

    services: Services
    pin: Pin
    include_image: bool
    request_id: str

    @classmethod
    def of(cls, request: Request) -> "PredictParameters":
        services: Services = request.app.state.services
        query, headers = request.query_params, request.headers
        return cls(
            services,
            request_pin(query, headers, services.configured_pin),
            bool(INCLUDE_IMAGE.read(query, headers)),
            request.state.request_id,
        )


@router.post(
    "/predict",
    responses={200: {"model": PredictResponse}, **ERROR_RESPONSES},
    openapi_extra=upload_route(PredictForm, *PIN_PARAMETERS, INCLUDE_IMAGE),
)
async def predict(request: Request) -> Response:
    """Classify one handwritten digit."""
    asked = PredictParameters.of(request)
    image = await normalised_digit((await read_form(request, PredictForm)).file, asked.services)
    result = await asked.services.classifier.classify(image[None], asked.pin, asked.request_id)
    version = str(result.model_version)
    answer = prediction(result.outputs[0], image, asked.include_image, asked.services, version)
    answer["model_version"] = version
    return json_response(answer)


@router.post(
    "/predict/batch",
    responses={200: {"model": BatchPredictResponse}, **ERROR_RESPONSES},
    openapi_extra=upload_route(BatchForm, *PIN_PARAMETERS, INCLUDE_IMAGE),
)
async def predict_batch(request: Request) -> Response:
    """Classify several digits in one call to the model server. A file that cannot be read
    as one digit gets its own error entry; the others are answered."""
    asked = PredictParameters.of(request)
    files = batch_files(await read_form(request, BatchForm), asked.services.settings.max_batch)
    digits = [await digit_or_error(upload, asked.services, request) for upload in files]
    images = [digit for digit in digits if isinstance(digit, np.ndarray)]
    version = None
    if images:
        result = await asked.services.classifier.classify(
            np.stack(images), asked.pin, asked.request_id
        )
        version = str(result.model_version)
        outputs = iter(result.outputs)
        for index, digit in enumerate(digits):
            if isinstance(digit, np.ndarray):
                answer = prediction(
                    next(outputs), digit, asked.include_image, asked.services, version
                )
                digits[index] = {**answer, "filename": files[index].filename}
    return json_response({"predictions": digits, "model_version": version})


def batch_files(form: BatchForm, max_batch: int) -> list[Part]:
    """The batch's files, or the request's own error (a text field, too many)."""
    files = form.files
    if any(upload.filename is None for upload in files):
        # Per-file errors are for files; a text field is a mistake in the request.
        raise BadRequestParameters(
            "Invalid request: every 'files' part must be a file (an image), not a text field."
        )
    if len(files) > max_batch:
        raise BadRequestParameters(
            f"{len(files)} files is more than the {max_batch} allowed per batch; split the batch."
        )
    return files


async def digit_or_error(
    upload: Part, services: Services, request: Request
) -> np.ndarray | dict[str, object]:
    """One file of a batch as the digit the model takes, or its own error entry: the other
    files are still answered."""
    try:
        return await normalised_digit(upload, services)
    except FILE_ERRORS as exc:
        note_error(request.scope["state"], exc.kind)
        return {
            "filename": upload.filename,
            "error": {"status": exc.status_code, "detail": exc.detail},
        }
