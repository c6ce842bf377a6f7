"""Operational endpoints: the root message, liveness, readiness and Prometheus metrics."""

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST

from gateway.deps import ContextDep
from gateway.schemas import ErrorBody, Health, Message, Readiness

router = APIRouter(tags=["operations"])


@router.get("/", response_model=Message)
async def root() -> Message:
    return Message(message="MNIST Classification API")


@router.get("/healthz", response_model=Health)
async def healthz() -> Health:
    """Liveness: answers while the process does. Never calls TF Serving, so an outage
    upstream does not get healthy gateways restarted."""
    return Health(status="ok")


@router.get(
    "/readyz",
    response_model=Readiness,
    responses={503: {"model": ErrorBody, "description": "The model is not available."}},
)
async def readyz(context: ContextDep) -> Readiness:
    """Readiness: 200 only while TF Serving has the version /predict would use (the newest,
    or the pinned version or label) loaded and AVAILABLE; looked up afresh each time."""
    services = context.services
    pin = services.configured_pin
    info = await services.resolver.resolve(pin, refresh=True, request_id=context.request_id)
    return Readiness(status="ready", model_version=str(info.version))


@router.get("/metrics", response_class=Response, include_in_schema=True)
async def metrics(context: ContextDep) -> Response:
    """Prometheus metrics of this gateway (all its worker processes)."""
    return Response(context.services.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)
