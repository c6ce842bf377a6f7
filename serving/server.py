"""The REST API of TF Serving as a plain ASGI application over the model registry.

Paths are matched with TF Serving's own regular expressions (http_rest_api_util.cc), on
the raw path and query as its HTTP server hands them over, so versions, labels, metadata,
letter case and query strings behave as they do there. No web framework sits in between:
routing is those expressions, and per-request overhead is what limits throughput.
"""

import asyncio
import contextlib
import gc
import logging
import re
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import orjson
from google.protobuf import json_format
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from starlette.types import Message, Receive, Scope, Send

from serving.batching import BatchingParameters
from serving.errors import ServingError, invalid_argument
from serving.json_tensor import INT64_RANGE, encode_predict_response, parse_predict_request
from serving.registry import InputSpec, ModelRegistry, Servable
from serving.tf_serving_config import DEFAULT_MONITORING_PATH, ModelSpec, parse_model_config

logger = logging.getLogger(__name__)

# RE2's \d is ASCII; Python's would take any Unicode digit, hence [0-9].
PREDICTION_PATH = re.compile(
    r"/v1/models/([^/:]+)(?:(?:/versions/([0-9]+))|(?:/labels/([^/:]+)))?"
    r":(classify|regress|predict)",
    re.IGNORECASE,
)
STATUS_PATH = re.compile(
    r"/v1/models(?:/([^/:]+))?(?:(?:/versions/([0-9]+))|(?:/labels/([^/:]+)))?(?:/(metadata))?",
    re.IGNORECASE,
)
API_PREFIX = re.compile(r"/v1/", re.IGNORECASE)  # kHTTPRestApiHandlerPathRegex, (?i)/v1/.*
JSON = b"application/json"
TEXT_PLAIN = b"text/plain"
Reply = tuple[int, bytes, bytes]  # HTTP status, body, content type
NOT_FOUND: Reply = (404, b"Not Found", TEXT_PLAIN)


@dataclass(frozen=True)
class ServerSettings:
    models: list[ModelSpec]
    # None: each request runs at once, as in TF Serving without --enable_batching.
    batching: BatchingParameters | None = None
    poll_interval_s: float = 1.0
    monitoring_path: str | None = DEFAULT_MONITORING_PATH  # None: no metrics endpoint
    # The models.config `models` came from, re-read every model_config_poll_s (0: never),
    # as --model_config_file_poll_wait_seconds does.
    model_config_file: Path | None = None
    model_config_poll_s: float = 0.0
    allow_version_labels_for_unavailable_models: bool = False


class _Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        # Named as TF Serving's own Prometheus metrics, so dashboards work on both.
        self.requests = Counter(
            ":tensorflow:serving:request_count",
            "Requests handled, by model and status.",
            ["model_name", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            ":tensorflow:serving:request_latency_seconds",
            "Predict latency inside the server.",
            ["model_name", "API"],
            registry=self.registry,
            buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0),
        )
        self.batch_size = Histogram(
            ":tensorflow:serving:batching_session:processed_batch_size",
            "Rows per model call after server-side batching.",
            registry=self.registry,
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
        )


def _error(error: ServingError) -> Reply:
    return error.http_status, orjson.dumps({"error": error.message}), JSON


def _parse_version(text: str | None) -> int | None:
    """The version in a path, as absl::SimpleAtoi reads it into an int64."""
    if not text:
        return None
    try:
        version = int(text)
    except ValueError:  # more digits than Python converts
        version = INT64_RANGE[1] + 1
    if version > INT64_RANGE[1]:
        raise invalid_argument("Failed to convert version: ", text, " to numeric.")
    return version


class RestApi:
    """Request handling over one registry: a method, path and body in, a reply out.

    `path` is the request target as TF Serving's handler sees it: the raw path,
    not percent-decoded, followed by "?" and the query string when there is one.
    """

    def __init__(self, registry: ModelRegistry, metrics: _Metrics) -> None:
        self.registry = registry
        self.metrics = metrics

    async def handle(self, method: str, path: str, body: bytes) -> Reply:
        """HttpRestApiHandler::ProcessRequest: parse the path, then dispatch.

        Like ParseModelInfo, a version that does not fit in 64 bits is refused before the
        method and verb are looked at; verbs and "metadata" are compared case-sensitively
        although the expressions match any case, so /v1/models/m:PREDICT is malformed.
        """
        pattern = PREDICTION_PATH if method == "POST" else STATUS_PATH if method == "GET" else None
        match = pattern.fullmatch(path) if pattern else None
        try:
            if match:
                name, version_text, label, last = match.groups()
                name = unquote(name) if name else ""
                version = _parse_version(version_text)
                label = unquote(label) if label else None
                if method == "POST" and last in ("predict", "classify", "regress"):
                    return await self._infer(last, body, name, version, label)
                if method == "GET":
                    if not name:
                        raise invalid_argument("Missing model name in request.")
                    if last == "metadata":
                        return self._metadata(name, version, label)
                    return self._status(name, version)
            raise invalid_argument("Malformed request: ", method, " ", path)
        except ServingError as error:
            return _error(error)

    async def _infer(
        self, verb: str, body: bytes, name: str, version: int | None, label: str | None
    ) -> Reply:
        started = time.perf_counter()
        status = "OK"
        try:
            if verb != "predict":
                raise ServingError(
                    "UNIMPLEMENTED",
                    f"The local model server does not run the {verb} API; TF Serving does.",
                )
            resolved: list[Servable] = []

            def input_dtypes(signature: str) -> dict[str, str]:
                # Called once the body has parsed: a malformed body is reported before
                # an unknown model, as FillPredictRequestFromJson orders it.
                servable = self.registry.resolve(name, version, label)
                resolved.append(servable)
                dtypes = servable.input_dtypes.get(signature)
                if dtypes is None:
                    raise invalid_argument(
                        f'Serving signature name: "{signature}" not found in signature def'
                    )
                return dtypes

            parsed = parse_predict_request(body, input_dtypes)
            servable = resolved[0]
            _check_shapes(servable.inputs[parsed.signature_name], parsed.inputs)
            outputs = await servable.predict(parsed.signature_name, parsed.inputs)
            return 200, encode_predict_response(outputs, parsed.row_format), JSON
        except ServingError as error:
            status = error.code
            raise
        except asyncio.CancelledError:
            status = "CANCELLED"
            raise
        finally:
            self.metrics.requests.labels(name, status).inc()
            self.metrics.latency.labels(name, verb).observe(time.perf_counter() - started)

    def _status(self, name: str, version: int | None) -> Reply:
        """GetModelStatus. A label in the path is not looked at: every version is listed."""
        statuses = [
            {
                "version": str(number),  # proto3 JSON writes int64 as a string
                "state": state.state,
                "status": {"error_code": state.error_code, "error_message": state.error_message},
            }
            for number, state in self.registry.version_status(name, version)
        ]
        return 200, orjson.dumps({"model_version_status": statuses}), JSON

    def _metadata(self, name: str, version: int | None, label: str | None) -> Reply:
        servable = self.registry.resolve(name, version, label)
        signatures = {
            key: json_format.MessageToDict(
                signature_def,
                always_print_fields_with_no_presence=True,
                preserving_proto_field_name=True,
            )
            for key, signature_def in servable.signature_defs.items()
        }
        body = {
            "model_spec": {"name": name, "signature_name": "", "version": str(servable.version)},
            "metadata": {"signature_def": {"signature_def": signatures}},
        }
        return 200, orjson.dumps(body), JSON


def _check_shapes(specs: dict[str, InputSpec], inputs: dict[str, np.ndarray]) -> None:
    """Refuse inputs the signature cannot take, before they reach a batch."""
    for name, spec in specs.items():
        value = inputs[name]
        if not spec.accepts(value.shape):
            expected = "any" if spec.shape is None else [-1 if d is None else d for d in spec.shape]
            raise invalid_argument(
                f"input tensor '{name}' has shape {list(value.shape)}, but the signature "
                f"expects {expected}"
            )


class ModelServer:
    """The local model server as an ASGI app; models load and poll during its lifespan."""

    def __init__(self, settings: ServerSettings) -> None:
        self.settings = settings
        self.metrics = _Metrics()
        self.api: RestApi | None = None

    @contextlib.asynccontextmanager
    async def lifespan(self) -> AsyncIterator[ModelRegistry]:
        """Load the models, poll for new versions until exit, then finish in-flight work."""
        settings, metrics = self.settings, self.metrics
        batching, executor = settings.batching, None
        if batching is not None:
            # One model call at a time, on one core, with batches as large as the load makes
            # them: the least CPU per request on one or two cores (the event loop has the
            # other). A batch is formed only when the model thread is free to run it: one
            # formed sooner would wait, small, while the requests behind it could join it.
            executor = ThreadPoolExecutor(1, thread_name_prefix="model")
            batching = replace(batching, num_batch_threads=1)
        registry = ModelRegistry(
            settings.models,
            batching,
            executor,
            on_batch=metrics.batch_size.observe,
        )
        await asyncio.to_thread(registry.poll)
        # TensorFlow leaves millions of long-lived objects behind; exempt them from the
        # collector so full collections take microseconds, not tail-latency spikes.
        gc.freeze()
        self.api = RestApi(registry, metrics)

        async def poll_forever() -> None:
            while True:
                await asyncio.sleep(settings.poll_interval_s)
                await _poll(registry)

        pollers = [asyncio.create_task(poll_forever())]
        if settings.model_config_file is not None and settings.model_config_poll_s > 0:
            pollers.append(
                asyncio.create_task(self._poll_model_config(registry, settings.model_config_file))
            )
        try:
            yield registry
        finally:
            for poller in pollers:
                poller.cancel()
            for model in registry.models.values():
                for servable in model.available.values():
                    await servable.close()
            if executor is not None:
                executor.shutdown(wait=True)

    async def _poll_model_config(self, registry: ModelRegistry, path: Path) -> None:
        """Re-read the models.config, as Server::PollFilesystemAndReloadConfig does.

        A file that does not parse, or whose labels TF Serving would refuse, is logged
        and the config in force stays; it is tried again at the next poll.
        """
        settings = self.settings
        applied = await asyncio.to_thread(_read_text, path)
        while True:
            await asyncio.sleep(settings.model_config_poll_s)
            text = await asyncio.to_thread(_read_text, path)
            if text is None or text == applied:
                continue
            try:
                specs = parse_model_config(text, relative_to=path.parent)
                await asyncio.to_thread(
                    registry.reconfigure,
                    specs,
                    settings.allow_version_labels_for_unavailable_models,
                )
            except (ValueError, ServingError) as exc:
                logger.error("Reloading %s failed, keeping the config in force: %s", path, exc)
                continue
            applied = text
            logger.info("Reloaded the model config from %s", path)
            await _poll(registry)  # load what the new config asks for now, not at the next poll

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._serve_lifespan(receive, send)
        elif scope["type"] == "http":
            status, body, content_type = await self._reply(scope, receive)
            headers = [
                (b"content-type", content_type),
                (b"content-length", str(len(body)).encode()),
            ]
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": body})

    async def _reply(self, scope: Scope, receive: Receive) -> Reply:
        """Route as TF Serving's HTTP server does: the monitoring path is looked up without
        the query, the REST handler gets every (?i)/v1/.* path with its query."""
        raw_path = scope.get("raw_path")
        path = raw_path.decode("utf-8", "replace") if raw_path else scope["path"]
        query = scope.get("query_string", b"").decode("latin-1")
        monitoring_path = self.settings.monitoring_path
        if monitoring_path and path == monitoring_path:
            if query:  # ProcessPrometheusRequest compares path and query to its path
                unexpected = f"Unexpected path: {path}?{query}. Should be {monitoring_path}"
                return 400, unexpected.encode(), TEXT_PLAIN
            return 200, generate_latest(self.metrics.registry), CONTENT_TYPE_LATEST.encode()
        target = f"{path}?{query}" if query else path
        if not API_PREFIX.match(target):
            return NOT_FOUND
        body = await _whole_body(receive)
        if self.api is None:
            return _error(ServingError("UNAVAILABLE", "The server is starting."))
        return await self.api.handle(scope["method"], target, body)

    async def _serve_lifespan(self, receive: Receive, send: Send) -> None:
        await receive()  # lifespan.startup
        try:
            async with self.lifespan():
                await send({"type": "lifespan.startup.complete"})
                await receive()  # lifespan.shutdown
        except Exception as exc:
            logger.exception("The model server failed to start")
            await send({"type": "lifespan.startup.failed", "message": str(exc)})
            return
        await send({"type": "lifespan.shutdown.complete"})


async def _whole_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message: Message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _poll(registry: ModelRegistry) -> None:
    """Bring the registry in line with the disk; a failed poll is logged, not fatal."""
    try:
        retired = await asyncio.to_thread(registry.poll)
    except Exception:
        logger.exception("Polling the model base paths failed")
        return
    for servable in retired:
        await servable.close()


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError as exc:
        logger.error("Failed to read the model config %s: %s", path, exc)
        return None


def create_app(settings: ServerSettings) -> ModelServer:
    return ModelServer(settings)
