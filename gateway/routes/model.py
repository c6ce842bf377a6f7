"""GET /model: which model is served, its versions and states, and its model card."""

import json
import logging
from pathlib import Path

from fastapi import APIRouter

from contract import model_card_path
from gateway.deps import ContextDep
from gateway.errors import UpstreamUnavailable
from gateway.pins import Pin
from gateway.schemas import ModelInfo, VersionState
from gateway.versions import VersionResolver

router = APIRouter(tags=["model"])
logger = logging.getLogger(__name__)


def read_model_card(base_path: str | None, version: int | None) -> dict[str, object] | None:
    """The version's model card from the models volume, when the gateway mounts it."""
    if base_path is None or version is None:
        return None
    path = model_card_path(Path(base_path) / str(version))
    try:
        card = json.loads(path.read_text())
    except (OSError, ValueError):
        logger.info("No readable model card at %s", path)
        return None
    return card if isinstance(card, dict) else None


@router.get("/model", response_model=ModelInfo)
async def model_info(context: ContextDep) -> ModelInfo:
    services, request_id = context.services, context.request_id
    settings, resolver = services.settings, services.resolver
    statuses = await services.client.model_status(request_id=request_id)
    serving = await _version_or_none(resolver, services.configured_pin, request_id)
    canary = services.canary
    canary_version = None
    if canary.enabled:
        canary_version = await _version_or_none(resolver, Pin(None, canary.label), request_id)
    return ModelInfo(
        name=settings.model_name,
        serving_version=str(serving) if serving is not None else None,
        versions=[
            VersionState(version=str(s.version), state=s.state, error_message=s.error_message)
            for s in statuses
        ],
        pinned_version=settings.model_version,
        pinned_label=settings.model_label,
        model_card=read_model_card(settings.model_base_path, serving),
        canary_percent=canary.percent,
        canary_label=canary.label if canary.enabled else None,
        canary_version=str(canary_version) if canary_version is not None else None,
    )


async def _version_or_none(resolver: VersionResolver, pin: Pin, request_id: str) -> int | None:
    try:
        info = await resolver.resolve(pin, refresh=True, request_id=request_id)
    except UpstreamUnavailable:
        return None
    return info.version
