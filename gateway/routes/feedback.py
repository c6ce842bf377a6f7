"""POST /feedback: a user's correction, stored as the normalised digit and one JSON line."""

from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, UploadFile
from starlette.concurrency import run_in_threadpool

from gateway.deps import CallDep, FeedbackStoreDep, require_api_key
from gateway.routes.predict import normalised_upload
from gateway.schemas import FeedbackResponse, error_responses

router = APIRouter(tags=["feedback"], dependencies=[Depends(require_api_key)])
# Versions are what /predict answers: a number, as text.
VERSION_PATTERN = r"^[0-9]{1,19}$"
NOT_SENT = "none"  # the predicted_digit label value when the client did not send one

FEEDBACK_RESPONSES = error_responses(
    {
        400: "The upload is not a readable image.",
        401: "An API key is required.",
        404: "Feedback is off: GATEWAY_FEEDBACK_DIR is not set.",
        413: "The upload has too many bytes or pixels.",
        415: "The file is not in a supported image format.",
        422: "No digit found, or a label or other field out of range.",
        503: "The feedback could not be stored.",
    }
)


@router.post(
    "/feedback",
    status_code=201,
    response_model=FeedbackResponse,
    responses=FEEDBACK_RESPONSES,
)
async def feedback(
    file: Annotated[
        UploadFile, File(description="The image that was classified (the same upload).")
    ],
    label: Annotated[int, Form(ge=0, le=9, description="The digit the image really shows.")],
    call: CallDep,
    store: FeedbackStoreDep,
    predicted_digit: Annotated[
        int | None, Form(ge=0, le=9, description="The digit /predict answered.")
    ] = None,
    model_version: Annotated[
        str | None,
        Form(pattern=VERSION_PATTERN, description="The model_version /predict answered."),
    ] = None,
) -> FeedbackResponse:
    """Report the right digit for an image. Stores the normalised 28x28 digit (never the
    upload itself) and its metadata under GATEWAY_FEEDBACK_DIR; 404 when that is unset."""
    digit = await normalised_upload(file, call)
    # Small files, but an fsync can take a while on a busy disk: keep the loop free.
    item = await run_in_threadpool(
        store.save,
        digit,
        label=label,
        predicted_digit=predicted_digit,
        model_version=model_version,
        request_id=call.request_id,
    )
    predicted = NOT_SENT if predicted_digit is None else str(predicted_digit)
    call.metrics.feedback.labels(predicted, str(label)).inc()
    return FeedbackResponse(id=item.id)
