"""The gateway application: `create_app(settings)` wires lifespan, middleware, routers and
error handlers; `app` is what uvicorn serves."""

import contextlib
import gc
import logging
from collections.abc import AsyncIterator

import httpx
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from httpx_aiohttp import AiohttpTransport
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.formparsers import MultiPartParser

from gateway.canary import CanarySplit
from gateway.config import Settings, get_settings
from gateway.errors import GatewayError
from gateway.feedback import FeedbackStore
from gateway.metrics import GatewayMetrics, worker_stopped
from gateway.middleware import LimitsMiddleware, RequestContextMiddleware
from gateway.routes import feedback, model, operations, predict, ui
from gateway.serving_client import TFServingClient

logger = logging.getLogger(__name__)


def _lifespan(settings: Settings, transport: httpx.AsyncBaseTransport | None):  # type: ignore[no-untyped-def]
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if app.state.feedback_store is not None:
            app.state.feedback_store.prepare()
        # Idle connections are dropped well before servers drop them (uvicorn: 5 s).
        limits = httpx.Limits(
            max_connections=256, max_keepalive_connections=64, keepalive_expiry=2.0
        )
        async with httpx.AsyncClient(
            base_url=settings.tf_serving_url,
            timeout=httpx.Timeout(settings.timeout_s, connect=settings.connect_timeout_s),
            # httpx's own pool scans every connection for every request, which dominates
            # at high concurrency; aiohttp's pool under httpx's API does not (measured in
            # docs/benchmarks.md).
            transport=transport or AiohttpTransport(limits=limits),
        ) as http:
            app.state.serving_client = TFServingClient(
                http,
                settings.model_name,
                settings.version_cache_s,
                canary_label=settings.canary_label if settings.canary_percent > 0 else None,
            )
            # Everything imported so far lives as long as the process: keep it out of the
            # collector's full passes, which otherwise show up as latency spikes.
            gc.freeze()
            yield
        worker_stopped()

    return lifespan


def _validation_detail(exc: RequestValidationError) -> str:
    problems = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error.get("loc", ()) if part != "body")
        problems.append(
            f"{where}: {error.get('msg', 'invalid')}" if where else error.get("msg", "")
        )
    hint = (
        " Send images as multipart/form-data: field 'file' for /predict,"
        " 'files' for /predict/batch, 'file' and 'label' (0-9) for /feedback."
    )
    return "Invalid request: " + "; ".join(problems) + "." + hint


def _add_error_handlers(app: FastAPI, metrics: GatewayMetrics) -> None:
    async def gateway_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, GatewayError)
        metrics.errors.labels(exc.kind).inc()
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code)

    async def validation_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        metrics.errors.labels("bad_parameters").inc()
        return JSONResponse({"detail": _validation_detail(exc)}, status_code=422)

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        detail = exc.detail
        if exc.status_code == 400 and "parsing the body" in str(detail):
            detail = (
                "The request body is not valid multipart/form-data; send the image as field 'file'."
            )
        return JSONResponse({"detail": detail}, status_code=exc.status_code, headers=exc.headers)

    async def unexpected_error(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("Unexpected error on %s %s", request.method, request.url.path)
        metrics.errors.labels("internal").inc()
        return JSONResponse(
            {
                "detail": "The gateway failed unexpectedly; the error is logged with request id "
                f"{getattr(request.state, 'request_id', 'unknown')}."
            },
            status_code=500,
        )

    app.add_exception_handler(GatewayError, gateway_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, unexpected_error)


def create_app(
    settings: Settings | None = None, *, transport: httpx.AsyncBaseTransport | None = None
) -> FastAPI:
    """Build the gateway. `transport` replaces the network under the TF Serving client (tests)."""
    settings = settings or get_settings()
    metrics = GatewayMetrics()
    # Keep uploads in memory: the body is already capped at max_upload_bytes, and user
    # images never touch the disk.
    MultiPartParser.spool_max_size = settings.max_upload_bytes
    app = FastAPI(
        title="MNIST Classification API",
        description="Classify handwritten digits. Upload an image of one digit to /predict.",
        version="1.0.0",
        lifespan=_lifespan(settings, transport),
    )
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.canary = CanarySplit(settings.canary_percent, settings.canary_label)
    if app.state.canary.enabled:
        for reason in ("upstream_unavailable", "upstream_error", "upstream_timeout"):
            metrics.canary_fallbacks.labels(reason)  # exported as 0 before the first one
    app.state.feedback_store = (
        FeedbackStore(settings.feedback_dir) if settings.feedback_dir is not None else None
    )
    for router in (operations.router, predict.router, feedback.router, model.router, ui.router):
        app.include_router(router)
    app.mount("/ui", StaticFiles(directory=ui.STATIC_DIR, html=True), name="ui")
    _add_error_handlers(app, metrics)
    app.add_middleware(
        LimitsMiddleware,
        metrics=metrics,
        max_body_bytes=settings.max_upload_bytes,
        max_in_flight=settings.max_in_flight,
    )
    if settings.cors_allow_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_allow_origins,
            allow_methods=["GET", "POST"],
            allow_headers=[
                "Content-Type",
                "X-API-Key",
                "X-Request-ID",
                "X-Model-Version",
                "X-Model-Label",
            ],
            expose_headers=["X-Request-ID"],
            max_age=600,
        )
    app.add_middleware(RequestContextMiddleware, metrics=metrics)
    return app


def __getattr__(name: str) -> FastAPI:
    # `uvicorn gateway.main:app` reads settings when it imports `app`, not at import time.
    if name == "app":
        return create_app()
    raise AttributeError(name)
