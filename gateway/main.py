"""The gateway application: `create_app(settings)` wires lifespan, middleware, routers and
error handlers. Serve it with `python -m gateway`, or `uvicorn --factory
gateway.main:create_app`: settings are read when the app is built, not at import time."""

import contextlib
import gc
import logging
import random
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles

from gateway.canary import CanarySplit
from gateway.config import Settings, get_settings
from gateway.deps import API_KEY, Services
from gateway.errors import GatewayError
from gateway.feedback import FeedbackStore
from gateway.inference import Classifier
from gateway.metrics import GatewayMetrics, note_error, worker_stopped
from gateway.middleware import REQUEST_ID_HEADER, GatewayMiddleware
from gateway.parameters import PIN_PARAMETERS
from gateway.routes import feedback, model, operations, predict, read, ui
from gateway.serving_client import TFServingClient
from gateway.upstream import Send, aiohttp_send
from gateway.versions import VersionResolver

logger = logging.getLogger(__name__)
Lifespan = Callable[[FastAPI], contextlib.AbstractAsyncContextManager[Any]]


def _lifespan(
    settings: Settings,
    metrics: GatewayMetrics,
    upstream: Send | None,
    draw: Callable[[], float],
    clock: Callable[[], float],
) -> Lifespan:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if not settings.api_keys:
            logger.warning(
                "GATEWAY_API_KEYS is empty: the prediction and feedback endpoints answer "
                "anyone who can reach this gateway, without an API key."
            )
        store = None
        if settings.feedback_dir:
            store = FeedbackStore(settings.feedback_dir, settings.feedback_max_items)
            store.prepare()
        async with contextlib.AsyncExitStack() as stack:
            send = upstream
            if send is None:
                send = await stack.enter_async_context(aiohttp_send(settings))
            client = TFServingClient(send, settings.tf_serving_url, settings.model_name)
            canary = CanarySplit(settings.canary_percent, settings.canary_label, draw, clock)
            resolver = VersionResolver(
                client, settings.version_cache_s, canary.label if canary.enabled else None, clock
            )
            classifier = Classifier(client, resolver, canary, metrics)
            app.state.services = Services(
                settings, metrics, canary, client, resolver, classifier, store
            )
            # Everything imported so far lives as long as the process: keep it out of the
            # collector's full passes, which otherwise show up as latency spikes.
            gc.freeze()
            try:
                yield
            finally:
                await resolver.close()
        worker_stopped()

    return lifespan


def create_app(
    settings: Settings | None = None,
    *,
    upstream: Send | None = None,
    draw: Callable[[], float] = random.random,
    clock: Callable[[], float] = time.monotonic,
) -> FastAPI:
    """Build the gateway. Tests replace the network under the TF Serving client
    (`upstream`), the canary's draws in [0, 1) and the clock of its caches and logs."""
    settings = settings or get_settings()
    metrics = GatewayMetrics()
    if settings.canary_percent > 0:
        for reason in ("upstream_unavailable", "upstream_error", "upstream_timeout"):
            metrics.canary_fallbacks.labels(reason)  # exported as 0 before the first one
    app = FastAPI(
        title="MNIST Classification API",
        description="Classify handwritten digits. Upload an image of one digit to /predict, of a "
        "number to /read.",
        version="1.0.0",
        lifespan=_lifespan(settings, metrics, upstream, draw, clock),
    )
    for routes in (operations, predict, read, feedback, model, ui):
        app.include_router(routes.router)
    app.mount("/ui", StaticFiles(directory=ui.STATIC_DIR, html=True), name="ui")

    @app.exception_handler(GatewayError)
    async def gateway_error(request: Request, exc: GatewayError) -> JSONResponse:
        note_error(request.scope["state"], exc.kind)
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code)

    @app.exception_handler(Exception)
    async def unexpected_error(request: Request, _exc: Exception) -> JSONResponse:
        # Counted by the middleware, which the error has passed on its way here.
        logger.exception("Unexpected error on %s %s", request.method, request.url.path)
        return JSONResponse(
            {
                "detail": "The gateway failed unexpectedly; the error is logged with request id "
                f"{getattr(request.state, 'request_id', 'unknown')}."
            },
            status_code=500,
        )

    if settings.cors_allow_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_allow_origins,
            allow_methods=["GET", "POST"],
            allow_headers=[
                "Content-Type",
                API_KEY.model.name,
                REQUEST_ID_HEADER.decode(),
                *(p.shown_name for p in PIN_PARAMETERS if p.where == "header"),
            ],
            expose_headers=[REQUEST_ID_HEADER.decode()],
            max_age=600,
        )
    app.add_middleware(
        GatewayMiddleware,
        metrics=metrics,
        max_body_bytes=settings.max_upload_bytes,
        max_in_flight=settings.max_in_flight,
    )
    return app
