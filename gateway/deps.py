"""Dependencies handlers declare with `Annotated` aliases instead of reaching for globals.

All are `async def`: FastAPI runs plain `def` dependencies in a thread pool, a thread hop
per dependency per request for what is a dictionary lookup."""

import hmac
from typing import Annotated

from fastapi import Depends, Header, Request

from gateway.config import Settings
from gateway.errors import Unauthorized
from gateway.metrics import GatewayMetrics
from gateway.serving_client import TFServingClient


async def get_app_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_serving_client(request: Request) -> TFServingClient:
    client: TFServingClient = request.app.state.serving_client
    return client


async def get_metrics(request: Request) -> GatewayMetrics:
    metrics: GatewayMetrics = request.app.state.metrics
    return metrics


async def get_request_id(request: Request) -> str:
    request_id: str = request.state.request_id
    return request_id


SettingsDep = Annotated[Settings, Depends(get_app_settings)]
ServingClientDep = Annotated[TFServingClient, Depends(get_serving_client)]
MetricsDep = Annotated[GatewayMetrics, Depends(get_metrics)]
RequestIdDep = Annotated[str, Depends(get_request_id)]


async def require_api_key(
    settings: SettingsDep,
    x_api_key: Annotated[
        str | None, Header(description="Required when the gateway has keys.")
    ] = None,
) -> None:
    """401 unless the X-API-Key header holds one of GATEWAY_API_KEYS (when any are set)."""
    if not settings.api_keys:
        return
    offered = (x_api_key or "").encode()
    # Compare against every key in constant time, so timing reveals neither key nor match.
    matched = False
    for key in settings.api_keys:
        matched |= hmac.compare_digest(offered, key.encode())
    if not matched:
        raise Unauthorized("A valid API key is required; send it in the X-API-Key header.")
