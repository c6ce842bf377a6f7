"""Dependencies handlers declare with `Annotated` aliases instead of reaching for globals.

FastAPI solves every dependency (and each of its sub-dependencies, cached or not) on every
request, so the hot path asks for one `Call` instead of one dependency per service. All are
`async def`: FastAPI runs plain `def` dependencies in a thread pool."""

import hmac
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header, Request

from gateway.canary import CanarySplit
from gateway.config import Settings
from gateway.errors import FeatureDisabled, Unauthorized
from gateway.feedback import FeedbackStore
from gateway.metrics import GatewayMetrics
from gateway.serving_client import TFServingClient


@dataclass(frozen=True, slots=True)
class Call:
    """This gateway's services and this request's id."""

    settings: Settings
    client: TFServingClient
    metrics: GatewayMetrics
    canary: CanarySplit
    request_id: str


async def get_call(request: Request) -> Call:
    state = request.app.state
    return Call(
        state.settings,
        state.serving_client,
        state.metrics,
        state.canary,
        request.state.request_id,
    )


CallDep = Annotated[Call, Depends(get_call)]


async def get_feedback_store(request: Request) -> FeedbackStore:
    store: FeedbackStore | None = request.app.state.feedback_store
    if store is None:
        raise FeatureDisabled(
            "Feedback is off on this gateway; set GATEWAY_FEEDBACK_DIR to a writable folder "
            "to turn POST /feedback on."
        )
    return store


FeedbackStoreDep = Annotated[FeedbackStore, Depends(get_feedback_store)]


async def require_api_key(
    request: Request,
    x_api_key: Annotated[
        str | None, Header(description="Required when the gateway has keys.")
    ] = None,
) -> None:
    """401 unless the X-API-Key header holds one of GATEWAY_API_KEYS (when any are set)."""
    settings: Settings = request.app.state.settings
    if not settings.api_keys:
        return
    offered = (x_api_key or "").encode()
    # Compare against every key in constant time, so timing reveals neither key nor match.
    matched = False
    for key in settings.api_keys:
        matched |= hmac.compare_digest(offered, key.encode())
    if not matched:
        raise Unauthorized("A valid API key is required; send it in the X-API-Key header.")
