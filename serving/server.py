"""The REST API of TF Serving as a plain ASGI application over the model registry.

Paths are matched with TF Serving's own regular expressions (http_rest_api_util.cc), so
versions, labels, metadata and case-insensitivity behave as they do there. No web
framework sits in between: routing is those expressions, and per-request overhead is what
limits throughput once batching has amortised the model.
"""

import asyncio
import contextlib
import gc
import logging
import re
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
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
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_pb2,
)

from serving.batching import BatchingParameters
from serving.errors import ServingError, invalid_argument
from serving.json_tensor import encode_predict_response, parse_predict_request
from serving.model_config import ModelSpec
from serving.registry import InputSpec, ModelRegistry

logger = logging.getLogger(__name__)

PREDICTION_PATH = re.compile(
    r"/v1/models/([^/:]+)(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?:(classify|regress|predict)",
    re.IGNORECASE,
)
STATUS_PATH = re.compile(
    r"/v1/models(?:/([^/:]+))?(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?(?:/(metadata))?",
    re.IGNORECASE,
)
API_PREFIX = re.compile(r"/v1/", re.IGNORECASE)
DEFAULT_MONITORING_PATH = "/monitoring/prometheus/metrics"
JSON = b"application/json"
Reply = tuple[int, bytes, bytes]  # HTTP status, body, content type


@dataclass(frozen=True)
class ServerSettings:
    models: list[ModelSpec]
    batching: BatchingParameters = BatchingParameters()
    poll_interval_s: float = 1.0
    monitoring_path: str | None = DEFAULT_MONITORING_PATH  # None: no metrics endpoint
    model_threads: int = 2


@dataclass
class _Metrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
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
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        raise invalid_argument("Failed to convert version: ", text, " to numeric.") from None


class RestApi:
    """Request handling over one registry: a method, path and body in, a reply out."""

    def __init__(self, registry: ModelRegistry, metrics: _Metrics) -> None:
        self.registry = registry
        self.metrics = metrics

    async def handle(self, method: str, path: str, body: bytes) -> Reply:
        if not API_PREFIX.match(path):
            return 404, b"", b"text/plain"
        try:
            if method == "POST" and (match := PREDICTION_PATH.fullmatch(path)):
                name, version_text, label, verb = match.groups()
                return await self._predict(body, unquote(name), version_text, label, verb)
            if method == "GET" and (match := STATUS_PATH.fullmatch(path)):
                name, version_text, label, subresource = match.groups()
                if not name:
                    raise invalid_argument("Missing model name in request.")
                version = _parse_version(version_text)
                if version is not None and label:
                    raise _both_version_and_label(version, label)
                if subresource:
                    return self._metadata(unquote(name), version, label and unquote(label))
                return self._status(unquote(name), version, label and unquote(label))
            raise invalid_argument("Malformed request: ", method, " ", path)
        except ServingError as error:
            return _error(error)

    async def _predict(
        self, body: bytes, name: str, version_text: str | None, label: str | None, verb: str
    ) -> Reply:
        started = time.perf_counter()
        status = "OK"
        try:
            if verb.lower() != "predict":
                raise ServingError(
                    "UNIMPLEMENTED", f"The {verb} API is not served here; use :predict."
                )
            version = _parse_version(version_text)
            if version is not None and label:
                raise _both_version_and_label(version, label)
            servable = self.registry.resolve(name, version, label and unquote(label))

            def input_dtypes(signature: str) -> dict[str, str]:
                dtypes = servable.input_dtypes.get(signature)
                if dtypes is None:
                    raise invalid_argument(
                        f'Serving signature name: "{signature}" not found in signature def'
                    )
                return dtypes

            parsed = parse_predict_request(body, input_dtypes)
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
            self.metrics.latency.labels(name, "predict").observe(time.perf_counter() - started)

    def _status(self, name: str, version: int | None, label: str | None) -> Reply:
        response = get_model_status_pb2.GetModelStatusResponse()
        for number, state in self.registry.version_status(name, version, label):
            entry = response.model_version_status.add()
            entry.version = number
            entry.state = get_model_status_pb2.ModelVersionStatus.State.Value(state.state)
            entry.status.error_code = _error_code_value(state.error_code)
            entry.status.error_message = state.error_message
        body = json_format.MessageToJson(
            response, always_print_fields_with_no_presence=True, preserving_proto_field_name=True
        )
        return 200, body.encode(), JSON

    def _metadata(self, name: str, version: int | None, label: str | None) -> Reply:
        servable = self.registry.resolve(name, version, label)
        spec = model_pb2.ModelSpec(name=name, signature_name="")
        spec.version.value = servable.version
        signatures = get_model_metadata_pb2.SignatureDefMap()
        for key, signature_def in servable.signature_defs.items():
            signatures.signature_def[key].CopyFrom(signature_def)
        options = {
            "always_print_fields_with_no_presence": True,
            "preserving_proto_field_name": True,
        }
        body = {
            "model_spec": json_format.MessageToDict(spec, **options),
            "metadata": {"signature_def": json_format.MessageToDict(signatures, **options)},
        }
        return 200, orjson.dumps(body, option=orjson.OPT_INDENT_2), JSON


def _error_code_value(name: str) -> int:
    # tensorflow.error.Code, reached through the status message that uses it.
    field = get_model_status_pb2.ModelVersionStatus.DESCRIPTOR.fields_by_name["status"]
    codes = field.message_type.fields_by_name["error_code"].enum_type
    return int(codes.values_by_name[name].number)


def _both_version_and_label(version: int, label: str) -> ServingError:
    return invalid_argument(
        "Both model version (",
        version,
        ") and model version label (",
        label,
        ") cannot be supplied.",
    )


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
        executor = ThreadPoolExecutor(settings.model_threads, thread_name_prefix="model")
        registry = ModelRegistry(
            settings.models,
            settings.batching,
            executor,
            on_batch=lambda rows, _seconds: metrics.batch_size.observe(rows),
        )
        await asyncio.to_thread(registry.poll)
        # TensorFlow leaves millions of long-lived objects behind; exempt them from the
        # collector so full collections take microseconds, not tail-latency spikes.
        gc.freeze()
        self.api = RestApi(registry, metrics)

        async def poll_forever() -> None:
            while True:
                await asyncio.sleep(settings.poll_interval_s)
                try:
                    retired = await asyncio.to_thread(registry.poll)
                except Exception:  # a bad poll must not stop future polls
                    logger.exception("Polling the model base paths failed")
                    continue
                for servable in retired:
                    await servable.close()

        poller = asyncio.create_task(poll_forever())
        try:
            yield registry
        finally:
            poller.cancel()
            for model in registry.models.values():
                for servable in model.available.values():
                    await servable.close()
            executor.shutdown(wait=True)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._serve_lifespan(receive, send)
        elif scope["type"] == "http":
            status, body, content_type = await self._reply(scope, receive)
            await send(
                {
                    "type": "http.response.start",
                    "status": status,
                    "headers": [
                        (b"content-type", content_type),
                        (b"content-length", str(len(body)).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})

    async def _reply(self, scope: Scope, receive: Receive) -> Reply:
        method, path = scope["method"], scope["path"]
        if self.settings.monitoring_path and path == self.settings.monitoring_path:
            return 200, generate_latest(self.metrics.registry), CONTENT_TYPE_LATEST.encode()
        chunks = []
        while True:
            message: Message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        if self.api is None:
            return _error(ServingError("UNAVAILABLE", "The server is starting."))
        return await self.api.handle(method, path, b"".join(chunks))

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


def create_app(settings: ServerSettings) -> ModelServer:
    return ModelServer(settings)
