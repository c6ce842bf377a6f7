"""Operational endpoints: the root message, liveness, readiness and Prometheus metrics."""

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST

from gateway.deps import CallDep
from gateway.errors import UpstreamUnavailable
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
async def readyz(call: CallDep) -> Readiness:
    """Readiness: 200 only while TF Serving reports the model (or the pinned version or
    label) AVAILABLE."""
    settings, client, request_id = call.settings, call.client, call.request_id
    if settings.model_version is not None:
        statuses = await client.model_status(settings.model_version, request_id=request_id)
        if not any(s.state == "AVAILABLE" for s in statuses):
            raise UpstreamUnavailable(
                f"Pinned model version {settings.model_version} is not AVAILABLE."
            )
        return Readiness(status="ready", model_version=str(settings.model_version))
    version = await client.serving_version(settings.model_label, request_id, refresh=True)
    return Readiness(status="ready", model_version=str(version))


@router.get("/metrics", response_class=Response, include_in_schema=True)
async def metrics(call: CallDep) -> Response:
    """Prometheus metrics of this gateway (all its worker processes)."""
    return Response(call.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)
