"""POST /predict and /predict/batch: upload -> preprocessing -> TF Serving -> answer."""

import base64
import logging
import re
import time
from typing import Annotated, NamedTuple

import numpy as np
from fastapi import APIRouter, Depends, File, Header, Query, Request, UploadFile
from starlette.concurrency import run_in_threadpool

from gateway.canary import TRACK_CANARY, TRACK_PINNED, TRACK_PRIMARY
from gateway.config import LABEL_PATTERN, Settings
from gateway.deps import Call, CallDep, require_api_key
from gateway.errors import BadRequestParameters, GatewayError, PayloadTooLarge
from gateway.metrics import GatewayMetrics
from gateway.preprocessing import encode_png, preprocess_upload
from gateway.schemas import BatchItem, BatchPredictResponse, PredictResponse, error_responses
from gateway.serving_client import PredictResult

router = APIRouter(tags=["predict"], dependencies=[Depends(require_api_key)])
logger = logging.getLogger(__name__)
# Uploads up to this size (canvas drawings, phone-size JPEGs) decode in well under a
# millisecond: inline is cheaper than a hop to the thread pool and back.
INLINE_DECODE_BYTES = 256 * 1024

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

VersionQuery = Annotated[
    int | None, Query(ge=1, description="Pin a model version (overrides GATEWAY_MODEL_VERSION).")
]
LabelQuery = Annotated[
    str | None,
    Query(
        pattern=LABEL_PATTERN,
        description="Pin a version label such as 'stable' or 'canary'.",
    ),
]
VersionHeader = Annotated[str | None, Header(description="Same as ?version=.")]
LabelHeader = Annotated[str | None, Header(description="Same as ?label=.")]
IncludeImage = Annotated[
    bool, Query(description="Also return the normalised 28x28 image as a PNG data URL.")
]


class Pin(NamedTuple):
    """Where a request is sent: a version, a label, or neither (the newest)."""

    version: int | None
    label: str | None
    requested: bool  # pinned by the request itself; only requests without are canaries


async def resolve_pin(
    request: Request,
    version: VersionQuery = None,
    label: LabelQuery = None,
    x_model_version: VersionHeader = None,
    x_model_label: LabelHeader = None,
) -> Pin:
    """A request's pin: query, then header, then the gateway's configured pin."""
    if version is None and x_model_version is not None:
        if not x_model_version.isdigit() or int(x_model_version) < 1:
            raise BadRequestParameters(
                f"X-Model-Version must be a positive integer, not {x_model_version!r}."
            )
        version = int(x_model_version)
    if x_model_label is not None and not re.fullmatch(LABEL_PATTERN, x_model_label):
        # The label becomes part of the upstream URL: only plain names get through.
        raise BadRequestParameters("X-Model-Label must be 1-64 letters, digits, '_' or '-'.")
    label = label or x_model_label
    if version is not None and label:
        raise BadRequestParameters("Pin a model version or a label, not both.")
    if version is None and not label:
        settings: Settings = request.app.state.settings
        return Pin(settings.model_version, settings.model_label, requested=False)
    return Pin(version, label, requested=True)


PinDep = Annotated[Pin, Depends(resolve_pin)]


async def normalised_upload(upload: UploadFile, call: Call) -> np.ndarray:
    settings = call.settings
    if upload.size is not None and upload.size > settings.max_upload_bytes:
        raise PayloadTooLarge(
            f"The file is larger than {settings.max_upload_bytes} bytes; send a smaller image."
        )
    data = await upload.read()
    started = time.perf_counter()
    try:
        if len(data) <= INLINE_DECODE_BYTES:
            return preprocess_upload(data, settings.max_image_pixels)
        # Big photos take milliseconds to decode: keep the event loop free meanwhile.
        return await run_in_threadpool(preprocess_upload, data, settings.max_image_pixels)
    finally:
        call.metrics.preprocess.observe(time.perf_counter() - started)


def png_data_url(image: np.ndarray) -> str:
    return "data:image/png;base64," + base64.b64encode(encode_png(image)).decode()


def prediction_fields(
    probabilities: np.ndarray, version: int, metrics: GatewayMetrics
) -> dict[str, object]:
    digit = int(probabilities.argmax())
    confidence = float(probabilities[digit])
    metrics.digits.labels(str(digit), str(version)).inc()
    metrics.confidence.labels(str(version)).observe(confidence)
    return {
        "predicted_digit": digit,
        "confidence": confidence,
        "probabilities": [float(p) for p in probabilities],
    }


async def classify(images: np.ndarray, call: Call, pin: Pin) -> PredictResult:
    """Ask the canary (for its share of unpinned requests), else or on failure the primary.

    A canary failure of any kind is counted and the request served by the primary, so a
    bad canary never fails a user; only the primary's own errors reach them.
    """
    if not pin.requested and call.canary.picks_canary():
        try:
            return await _timed_predict(images, call, None, call.canary.label, TRACK_CANARY)
        except GatewayError as exc:
            call.metrics.canary_fallbacks.labels(exc.kind).inc()
            if call.canary.should_log_fallback():
                logger.warning(
                    "Canary label %r failed (%s: %s); the primary serves instead "
                    "(logged once a minute, counted in gateway_canary_fallbacks_total).",
                    call.canary.label,
                    exc.kind,
                    exc.detail,
                )
    track = TRACK_PINNED if pin.requested else TRACK_PRIMARY
    return await _timed_predict(images, call, pin.version, pin.label, track)


async def _timed_predict(
    images: np.ndarray, call: Call, version: int | None, label: str | None, track: str
) -> PredictResult:
    started = time.perf_counter()
    try:
        result = await call.client.predict(
            images, version=version, label=label, request_id=call.request_id
        )
    except GatewayError as exc:
        # Versions sent by callers never become label values (any number can be sent);
        # the configured one and those TF Serving named can.
        failed = exc.model_version or (version if track == TRACK_PRIMARY else None)
        call.metrics.upstream.labels(exc.kind, str(failed) if failed else "unknown", track).observe(
            time.perf_counter() - started
        )
        raise
    call.metrics.upstream.labels("ok", str(result.model_version), track).observe(
        time.perf_counter() - started
    )
    return result


@router.post("/predict", response_model=PredictResponse, responses=ERROR_RESPONSES)
async def predict(
    file: Annotated[
        UploadFile, File(description="An image of one digit: PNG, JPEG, GIF, WebP, BMP or TIFF.")
    ],
    call: CallDep,
    pin: PinDep,
    include_image: IncludeImage = False,
) -> PredictResponse:
    """Classify one handwritten digit."""
    image = await normalised_upload(file, call)
    result = await classify(image[None], call, pin)
    return PredictResponse(
        **prediction_fields(result.probabilities[0], result.model_version, call.metrics),  # type: ignore[arg-type]
        model_version=str(result.model_version),
        normalized_image=png_data_url(image) if include_image else None,
    )


@router.post("/predict/batch", response_model=BatchPredictResponse, responses=ERROR_RESPONSES)
async def predict_batch(
    files: Annotated[
        list[UploadFile], File(description="Several digit images, one upstream call.")
    ],
    call: CallDep,
    pin: PinDep,
    include_image: IncludeImage = False,
) -> BatchPredictResponse:
    """Classify several digits in one call to the model server."""
    if len(files) > call.settings.max_batch:
        raise BadRequestParameters(
            f"{len(files)} files is more than the {call.settings.max_batch} allowed per batch; "
            "split the batch."
        )
    images = []
    for index, upload in enumerate(files):
        try:
            images.append(await normalised_upload(upload, call))
        except GatewayError as exc:
            # Same status, but say which file: the rest of the batch was fine.
            exc.detail = f"File {index} ({upload.filename or 'unnamed'}): {exc.detail}"
            raise
    result = await classify(np.stack(images), call, pin)
    return BatchPredictResponse(
        predictions=[
            BatchItem(
                **prediction_fields(row, result.model_version, call.metrics),  # type: ignore[arg-type]
                filename=upload.filename,
                normalized_image=png_data_url(image) if include_image else None,
            )
            for row, upload, image in zip(result.probabilities, files, images, strict=True)
        ],
        model_version=str(result.model_version),
    )
