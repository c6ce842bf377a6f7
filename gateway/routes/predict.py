"""POST /predict and /predict/batch: upload -> normalised digit -> TF Serving -> answer.

These routes read their requests themselves (multipart with python-multipart, parameters
from the query and headers) and answer with JSON serialised once: on the hot path that costs
a fraction of FastAPI's form, dependency and response-model machinery. The OpenAPI document
still describes them (gateway/openapi.py), and the response models below are the contract.
"""

import base64
import time

import numpy as np
import orjson
from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from gateway.deps import Services, check_api_key
from gateway.errors import (
    BadRequestParameters,
    InvalidImage,
    NoDigitFound,
    PayloadTooLarge,
    UnsupportedImageType,
)
from gateway.openapi import API_KEY, INCLUDE_IMAGE, PIN_PARAMETERS, upload_route
from gateway.pins import Pin, request_pin
from gateway.preprocessing import encode_png, preprocess_upload
from gateway.schemas import (
    BatchForm,
    BatchPredictResponse,
    PredictForm,
    PredictResponse,
    error_responses,
)
from gateway.serving_client import ModelOutput
from gateway.uploads import Part, read_form

router = APIRouter(tags=["predict"])
# Uploads up to this size (canvas drawings, phone-size JPEGs) decode in well under a
# millisecond: inline is cheaper than a hop to the thread pool and back.
INLINE_DECODE_BYTES = 256 * 1024
TRUE, FALSE = frozenset({"true", "1", "yes", "on"}), frozenset({"false", "0", "no", "off"})
# What is wrong with one file of a batch, not with the request: that file gets its own error.
FILE_ERRORS = (InvalidImage, UnsupportedImageType, PayloadTooLarge, NoDigitFound)

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


async def normalised_digit(upload: Part, services: Services) -> np.ndarray:
    """An upload as the 28x28 digit the model takes (decoded off the loop when it is big)."""
    max_pixels = services.settings.max_image_pixels
    started = time.perf_counter()
    try:
        if len(upload.data) <= INLINE_DECODE_BYTES:
            return preprocess_upload(upload.data, max_pixels)
        return await run_in_threadpool(preprocess_upload, upload.data, max_pixels)
    finally:
        services.metrics.preprocess.observe(time.perf_counter() - started)


def include_image(request: Request) -> bool:
    text = request.query_params.get("include_image", "false").lower()
    if text not in TRUE and text not in FALSE:
        raise BadRequestParameters(f"include_image must be true or false, not {text[:20]!r}.")
    return text in TRUE


def prediction(
    output: ModelOutput, image: np.ndarray, with_image: bool, services: Services, version: str
) -> dict[str, object]:
    """One digit's answer (the fields of DigitPrediction), counted in the metrics."""
    metrics = services.metrics
    metrics.child(metrics.digits, str(output.digit), version).inc()
    metrics.child(metrics.confidence, version).observe(output.confidence)
    return {
        "predicted_digit": output.digit,
        "confidence": output.confidence,
        "probabilities": output.probabilities,
        "normalized_image": png_data_url(image) if with_image else None,
    }


def png_data_url(image: np.ndarray) -> str:
    return "data:image/png;base64," + base64.b64encode(encode_png(image)).decode("ascii")


def json_response(body: dict[str, object], status_code: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code, media_type="application/json")


def accepted(request: Request) -> tuple[Services, Pin, bool]:
    """What both predict routes check before reading the body: the API key, the pin and
    include_image. Returns the services, the pin and whether to include the image."""
    services: Services = request.app.state.services
    check_api_key(services.settings, request.headers)
    pin = request_pin(request.query_params, request.headers, services.configured_pin)
    return services, pin, include_image(request)


@router.post(
    "/predict",
    response_model=PredictResponse,
    responses=ERROR_RESPONSES,
    openapi_extra=upload_route(PredictForm, *PIN_PARAMETERS, INCLUDE_IMAGE, API_KEY),
)
async def predict(request: Request) -> Response:
    """Classify one handwritten digit."""
    services, pin, with_image = accepted(request)
    form = await read_form(request)
    image = await normalised_digit(form.file("file"), services)
    result = await services.classifier.classify(image[None], pin, request.state.request_id)
    version = str(result.model_version)
    answer = prediction(result.outputs[0], image, with_image, services, version)
    answer["model_version"] = version
    return json_response(answer)


@router.post(
    "/predict/batch",
    response_model=BatchPredictResponse,
    responses=ERROR_RESPONSES,
    openapi_extra=upload_route(BatchForm, *PIN_PARAMETERS, INCLUDE_IMAGE, API_KEY),
)
async def predict_batch(request: Request) -> Response:
    """Classify several digits in one call to the model server. A file that cannot be read
    as one digit gets its own error entry; the others are answered."""
    services, pin, with_image = accepted(request)
    files = (await read_form(request)).files("files")
    if not files:
        raise BadRequestParameters(
            "Invalid request: field 'files' is missing; send one or more images as 'files'."
        )
    if any(upload.filename is None for upload in files):
        # Per-file errors are for files; a text field is a mistake in the request.
        raise BadRequestParameters(
            "Invalid request: every 'files' part must be a file (an image), not a text field."
        )
    if len(files) > services.settings.max_batch:
        raise BadRequestParameters(
            f"{len(files)} files is more than the {services.settings.max_batch} allowed per "
            "batch; split the batch."
        )
    images: list[np.ndarray] = []
    entries: list[dict[str, object] | None] = []
    for upload in files:
        try:
            images.append(await normalised_digit(upload, services))
            entries.append(None)
        except FILE_ERRORS as exc:
            # This file alone: the others are still answered.
            services.metrics.child(services.metrics.errors, exc.kind).inc()
            entries.append(
                {
                    "filename": upload.filename,
                    "error": {"status": exc.status_code, "detail": exc.detail},
                }
            )
    version = None
    if images:
        result = await services.classifier.classify(np.stack(images), pin, request.state.request_id)
        version = str(result.model_version)
        read = iter(zip(result.outputs, images, strict=True))
        for index, upload in enumerate(files):
            if entries[index] is None:
                output, image = next(read)
                answer = prediction(output, image, with_image, services, version)
                answer["filename"] = upload.filename
                entries[index] = answer
    return json_response({"predictions": entries, "model_version": version})
