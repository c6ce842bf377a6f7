"""The REST API of TF Serving as a plain ASGI application over the model registry.

Paths are matched with TF Serving's own regular expressions (http_rest_api_util.cc), on
the raw path and query as its HTTP server hands them over, so versions, labels, metadata,
letter case and query strings behave as they do there. What TF Serving's HTTP layer
(net_http over libevent) answers before its handler runs is copied too: its error pages,
methods, CORS preflight and gzip bodies. No web framework sits in between: routing is
those expressions, and per-request overhead is what limits throughput once batching has
amortised the model.
"""

import asyncio
import contextlib
import gc
import logging
import re
import time
import zlib
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import NoReturn, TypeVar
from urllib.parse import unquote

import numpy as np
import orjson
from google.protobuf import json_format, text_format
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.metrics import MetricWrapperBase
from starlette.types import Message, Receive, Scope, Send
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_pb2,
)

from serving.batching import BatchingParameters
from serving.errors import ServingError, invalid_argument
from serving.json_tensor import (
    DEFAULT_SIGNATURE,
    INT64_RANGE,
    encode_predict_response,
    parse_classify_regress_request,
    parse_predict_request,
)
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
HTML = b"text/html"
LIBEVENT_DEFAULT_TYPE = b"text/html; charset=ISO-8859-1"  # what libevent labels a bare reply
Reply = tuple[int, bytes, bytes]  # HTTP status, body, content type

# libevent's evhttp_send_error page; its replies close the connection.
_ERROR_PAGE = "<HTML><HEAD>\n<TITLE>{0} {1}</TITLE>\n</HEAD><BODY>\n<H1>{1}</H1>\n</BODY></HTML>\n"
NOT_FOUND_PAGE: Reply = (404, _ERROR_PAGE.format(404, "Not Found").encode(), HTML)
NOT_IMPLEMENTED_PAGE: Reply = (501, _ERROR_PAGE.format(501, "Not Implemented").encode(), HTML)
# The methods net_http lets through to TF Serving (evhttp_server.cc); libevent answers
# any other (TRACE, CONNECT, ...) with its 501 page.
SERVED_METHODS = frozenset({"GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS", "PATCH"})
ORIGIN_WITH_SCHEME = re.compile(r"https?://")
MAX_GUNZIPPED_BYTES = 100 * 1024 * 1024  # net_http's ZLib::kMaxUncompressedBytes
GUNZIP_INLINE_BYTES = 256 * 1024  # larger bodies are inflated off the event loop


@dataclass(frozen=True)
class ServerSettings:
    models: list[ModelSpec]
    batching: BatchingParameters = BatchingParameters()
    poll_interval_s: float = 1.0
    monitoring_path: str | None = DEFAULT_MONITORING_PATH  # None: no metrics endpoint
    model_threads: int = 2  # model calls at a time (batches beyond wait and grow)
    # The models.config `models` came from, re-read every model_config_poll_s (0: never),
    # as --model_config_file_poll_wait_seconds does.
    model_config_file: Path | None = None
    model_config_poll_s: float = 0.0
    allow_version_labels_for_unavailable_models: bool = False


_Metric = TypeVar("_Metric", bound=MetricWrapperBase)


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
        # labels() checks and hashes its arguments on every call; the children it
        # returns are fixed, so each is looked up once. gateway/metrics.py's `child` is the
        # gateway's copy: its image holds no serving/, and this server imports no gateway.
        self._children: dict[tuple[object, ...], MetricWrapperBase] = {}

    def _child(self, metric: _Metric, *labels: str) -> _Metric:
        """`metric.labels(*labels)`, looked up once."""
        key = (id(metric), *labels)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*labels)
        return found  # type: ignore[return-value]  # the child of `metric` is of its type

    def count_request(self, model: str, status: str) -> None:
        self._child(self.requests, model, status).inc()

    def observe_latency(self, model: str, api: str, seconds: float) -> None:
        self._child(self.latency, model, api).observe(seconds)


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
        try:
            return await self._dispatch(method, path, body)
        except ServingError as error:
            return _error(error)

    async def _dispatch(self, method: str, path: str, body: bytes) -> Reply:
        """HttpRestApiHandler::ProcessRequest: parse the path, then dispatch.

        Like ParseModelInfo, a version that does not fit in 64 bits is refused before the
        method and verb are looked at; verbs and "metadata" are compared case-sensitively
        although the expressions match any case, so /v1/models/m:PREDICT is malformed.
        """
        pattern = PREDICTION_PATH if method == "POST" else STATUS_PATH if method == "GET" else None
        match = pattern.fullmatch(path) if pattern else None
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

    async def _infer(
        self, verb: str, body: bytes, name: str, version: int | None, label: str | None
    ) -> Reply:
        started = time.perf_counter()
        status = "OK"
        try:
            if verb != "predict":
                # The body is checked before the model is looked up, as for :predict.
                signature = parse_classify_regress_request(body) or DEFAULT_SIGNATURE
                _refuse_classify_regress(
                    verb, self.registry.resolve(name, version, label), signature
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
            self.metrics.count_request(name, status)
            self.metrics.observe_latency(name, verb, time.perf_counter() - started)

    def _status(self, name: str, version: int | None) -> Reply:
        """GetModelStatus. A label in the path is not looked at: every version is listed."""
        response = get_model_status_pb2.GetModelStatusResponse()
        for number, state in self.registry.version_status(name, version):
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


def _refuse_classify_regress(verb: str, servable: Servable, signature_name: str) -> NoReturn:
    """TF Serving's signature checks for :classify and :regress, then UNIMPLEMENTED.

    With its default --enable_signature_method_name_check=false, TF Serving checks the
    signature's shape (classifier.cc / regressor.cc, PreProcessClassification and
    PreProcessRegression), so a predict signature such as serving_default fails there.
    A signature that passes would need tf.Example inputs, which this server does not run.
    """
    signature = servable.signature_defs.get(signature_name)
    if signature is None:
        raise invalid_argument("No signature was found with the name: ", signature_name)
    if len(signature.inputs) != 1:
        raise invalid_argument("Expected one input Tensor.")
    described = text_format.MessageToString(signature)
    if verb == "classify":
        if len(signature.outputs) not in (1, 2):
            raise invalid_argument(
                "Expected one or two output Tensors, found ", len(signature.outputs)
            )
        if "inputs" not in signature.inputs:
            raise invalid_argument("No classification inputs found in SignatureDef: ", described)
        if "classes" not in signature.outputs and "scores" not in signature.outputs:
            raise invalid_argument(
                'Expected classification signature outputs to contain at least one of "classes"'
                ' or "scores". Signature was: ',
                described,
            )
    else:
        if len(signature.outputs) != 1:
            raise invalid_argument("Expected one output Tensor.")
        if "inputs" not in signature.inputs:
            raise invalid_argument("No regression inputs found in SignatureDef: ", described)
        if "outputs" not in signature.outputs:
            raise invalid_argument("No regression outputs found in SignatureDef: ", described)
    raise ServingError(
        "UNIMPLEMENTED",
        f"The local model server does not run the {verb} API (tf.Example inputs); TF Serving does.",
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
        # A batch is formed only when a model thread is free to run it: one formed sooner
        # would wait in the executor's queue, small, while the requests behind it could
        # have joined it.
        batching = replace(
            settings.batching,
            num_batch_threads=min(settings.batching.num_batch_threads, settings.model_threads),
        )
        registry = ModelRegistry(
            settings.models,
            batching,
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
                await _close(retired)

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
            try:  # load what the new config asks for now, not at the next poll
                retired = await asyncio.to_thread(registry.poll)
            except Exception:
                logger.exception("Polling the model base paths failed")
                continue
            await _close(retired)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._serve_lifespan(receive, send)
        elif scope["type"] == "http":
            status, body, content_type = await self._reply(scope, receive)
            headers = [
                (b"content-type", content_type),
                (b"content-length", str(len(body)).encode()),
            ]
            if content_type == HTML:
                headers.append((b"connection", b"close"))
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": body})

    async def _reply(self, scope: Scope, receive: Receive) -> Reply:
        """What TF Serving's HTTP layer does before and around its REST handler.

        net_http looks the monitoring path up without the query, its dispatcher matches
        (?i)/v1/.* against path and query, and the handler reads the whole body, inflated
        when Content-Encoding names gzip (evhttp_request.cc).
        """
        method = scope["method"]
        if method not in SERVED_METHODS:
            return NOT_IMPLEMENTED_PAGE
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
            return NOT_FOUND_PAGE
        body = await _whole_body(scope, receive)
        if method == "OPTIONS":  # a CORS preflight: no body either way
            origin = _header(scope, b"origin").decode("latin-1")
            status = 200 if ORIGIN_WITH_SCHEME.search(origin) else 400
            return status, b"", LIBEVENT_DEFAULT_TYPE
        if self.api is None:
            return _error(ServingError("UNAVAILABLE", "The server is starting."))
        return await self.api.handle(method, target, body)

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


async def _whole_body(scope: Scope, receive: Receive) -> bytes:
    """The request's body, inflated when Content-Encoding names gzip."""
    chunks = []
    while True:
        message: Message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    body = b"".join(chunks)
    if body and b"gzip" in _header(scope, b"content-encoding"):
        if len(body) > GUNZIP_INLINE_BYTES:
            return await asyncio.to_thread(gunzip, body)
        return gunzip(body)
    return body


async def _close(retired: list[Servable]) -> None:
    for servable in retired:
        await servable.close()


def _header(scope: Scope, name: bytes) -> bytes:
    """The first value of a request header, or b"" (evhttp_find_header)."""
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return b""


def gunzip(body: bytes) -> bytes:
    """A gzip body inflated as net_http does it, or b"" where net_http gives up.

    net_http trusts nothing but the size in the gzip trailer: above 100 MiB, or when the
    data is not exactly one valid gzip member of that size, the handler reads an empty
    body (and TF Serving answers "The document is empty").
    """
    size = int.from_bytes(body[-4:], "little") if len(body) > 4 else 0
    if len(body) <= 4 or size > MAX_GUNZIPPED_BYTES:
        return b""
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        data = inflater.decompress(body, size + 1)
    except zlib.error:
        return b""
    if not inflater.eof or inflater.unused_data or len(data) != size:
        return b""
    return data


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError as exc:
        logger.error("Failed to read the model config %s: %s", path, exc)
        return None


def create_app(settings: ServerSettings) -> ModelServer:
    return ModelServer(settings)
