"""POST /feedback: a user's correction, stored as the normalised digit and one JSON line."""

from fastapi import Request, Response
from starlette.concurrency import run_in_threadpool

from gateway.deps import Services, keyed_router
from gateway.errors import FeatureDisabled
from gateway.parameters import upload_route
from gateway.routes.predict import json_response, normalised_digit
from gateway.schemas import FeedbackForm, FeedbackResponse, error_responses
from gateway.uploads import read_form

router = keyed_router("feedback")
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
        507: "The feedback store is full (GATEWAY_FEEDBACK_MAX_ITEMS).",
    }
)


@router.post(
    "/feedback",
    status_code=201,
    responses={201: {"model": FeedbackResponse}, **FEEDBACK_RESPONSES},
    openapi_extra=upload_route(FeedbackForm),
)
async def feedback(request: Request) -> Response:
    """Report the right digit for an image. Stores the normalised 28x28 digit (never the
    upload itself) and its metadata under GATEWAY_FEEDBACK_DIR; 404 when that is unset."""
    services: Services = request.app.state.services
    store = services.feedback_store
    if store is None:
        raise FeatureDisabled(
            "Feedback is off on this gateway; set GATEWAY_FEEDBACK_DIR to a writable folder "
            "to turn POST /feedback on."
        )
    sent = await read_form(request, FeedbackForm)
    digit = await normalised_digit(sent.file, services)
    # Small files, but an fsync can take a while on a busy disk: keep the loop free.
    item = await run_in_threadpool(
        store.save,
        digit,
        label=sent.label,
        predicted_digit=sent.predicted_digit,
        model_version=sent.model_version,
        request_id=request.state.request_id,
    )
    predicted = NOT_SENT if sent.predicted_digit is None else str(sent.predicted_digit)
    services.metrics.child(services.metrics.feedback, predicted, str(sent.label)).inc()
    return json_response(FeedbackResponse(id=item.id).model_dump(), status_code=201)
