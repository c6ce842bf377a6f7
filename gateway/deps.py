"""The gateway's services, built once per app, and the dependencies routes declare.

Routes that read state declare `ContextDep` (one dependency, not one per service). Routes
that predict or store live on a `keyed_router`: they check the API key themselves and read
`request.app.state.services` directly, keeping FastAPI's dependency machinery off the hot
path; the router declares `require_api_key` for the OpenAPI document alone."""

import hmac
import inspect
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response, Security
from fastapi.routing import APIRoute
from fastapi.security import APIKeyHeader

from gateway.canary import CanarySplit
from gateway.config import Settings
from gateway.errors import Unauthorized
from gateway.feedback import FeedbackStore
from gateway.inference import Classifier
from gateway.metrics import GatewayMetrics
from gateway.pins import Pin
from gateway.serving_client import TFServingClient
from gateway.versions import VersionResolver


@dataclass(frozen=True, slots=True)
class Services:
    """Everything a request may use, for the app's lifetime."""

    settings: Settings
    metrics: GatewayMetrics
    canary: CanarySplit
    client: TFServingClient
    resolver: VersionResolver
    classifier: Classifier
    feedback_store: FeedbackStore | None

    @property
    def configured_pin(self) -> Pin:
        """GATEWAY_MODEL_VERSION or GATEWAY_MODEL_LABEL, or neither (the newest)."""
        return Pin(self.settings.model_version, self.settings.model_label)


@dataclass(frozen=True, slots=True)
class RequestContext:
    """This gateway's services and this request's id."""

    services: Services
    request_id: str


async def request_context(request: Request) -> RequestContext:
    return RequestContext(request.app.state.services, request.state.request_id)


ContextDep = Annotated[RequestContext, Depends(request_context)]


API_KEY = APIKeyHeader(
    name="X-API-Key", auto_error=False, description="Required when the gateway has keys."
)


async def require_api_key(
    request: Request, offered: Annotated[str | None, Security(API_KEY)]
) -> None:
    """What OpenAPI shows of `KeyedRoute` (the X-API-Key security scheme): `check_api_key`."""
    check_api_key(request.app.state.services.settings, offered)


class KeyedRoute(APIRoute):
    """A route whose endpoint takes the request alone and reads everything itself: it is
    called once the API key is checked, without FastAPI's dependency solving (a sixth of the
    app's own time per upload). Dependencies declared for it or its router do not run: they
    only document it."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        endpoint = self.endpoint
        if list(inspect.signature(endpoint).parameters) != ["request"]:
            raise TypeError(f"{self.path}: a KeyedRoute's endpoint takes the request alone.")

        async def handler(request: Request) -> Response:
            settings = request.app.state.services.settings
            check_api_key(settings, request.headers.get(API_KEY.model.name))
            response: Response = await endpoint(request)
            return response

        return handler


def keyed_router(tag: str) -> APIRouter:
    """The router of routes that predict or store: KeyedRoutes, documented with the key."""
    return APIRouter(tags=[tag], dependencies=[Depends(require_api_key)], route_class=KeyedRoute)


def check_api_key(settings: Settings, offered: str | None) -> None:
    """401 unless the X-API-Key header holds one of GATEWAY_API_KEYS (when any are set)."""
    if not settings.api_keys:
        return
    sent = (offered or "").encode()
    # Compare against every key in constant time, so timing reveals neither key nor match.
    matched = False
    for key in settings.api_keys:
        matched |= hmac.compare_digest(sent, key.encode())
    if not matched:
        raise Unauthorized("A valid API key is required; send it in the X-API-Key header.")
