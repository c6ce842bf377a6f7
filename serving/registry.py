"""The versions of each model: found by polling the base path, loaded, swapped, reported.

Like TF Serving's availability-preserving policy, a new version is loaded and warmed up
before the version it replaces is unloaded, and a version that fails to load is reported
in the model's status while the previous version keeps serving.
"""

import asyncio
import itertools
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import error_codes_pb2, meta_graph_pb2, saved_model_pb2

from contract import version_folders
from serving.batching import Batcher, BatchingParameters, Tensors
from serving.errors import ServingError, invalid_argument, not_found
from serving.tf_serving_config import LabelError, ModelSpec, check_version_labels

logger = logging.getLogger(__name__)
SERVE_TAG = "serve"


@dataclass(frozen=True)
class VersionStatus:
    """One row of GetModelStatus: TF Serving's ModelVersionStatus."""

    state: str  # START | LOADING | AVAILABLE | UNLOADING | END
    error_code: str = "OK"
    error_message: str = ""


@dataclass(frozen=True)
class InputSpec:
    """A signature input as requests are checked against it, in plain Python."""

    dtype: str  # TF dtype name: "float32", "int64", "string", ...
    shape: tuple[int | None, ...] | None  # None: any rank

    def accepts(self, shape: tuple[int, ...]) -> bool:
        if self.shape is None:
            return True
        return len(shape) == len(self.shape) and all(
            want is None or want == got for want, got in zip(self.shape, shape, strict=True)
        )


def _input_spec(spec: tf.TensorSpec) -> InputSpec:
    dims = None if spec.shape.rank is None else tuple(spec.shape.as_list())
    return InputSpec(spec.dtype.name, dims)


def read_signature_defs(path: Path) -> dict[str, meta_graph_pb2.SignatureDef]:
    """The SignatureDef map of the "serve" MetaGraph, as the metadata API reports it."""
    saved_model = saved_model_pb2.SavedModel()
    saved_model.ParseFromString((path / "saved_model.pb").read_bytes())
    for meta_graph in saved_model.meta_graphs:
        if SERVE_TAG in meta_graph.meta_info_def.tags:
            return dict(meta_graph.signature_def)
    raise ValueError(f"{path} has no MetaGraph tagged '{SERVE_TAG}'")


SignatureCall = Callable[[Tensors], dict[str, tf.Tensor]]


def _signature_call(function: tf.types.experimental.ConcreteFunction) -> SignatureCall:
    """A loaded signature as a call on numpy inputs, without the Python layers around it.

    ConcreteFunction.__call__ binds and checks keyword arguments, looks for gradient tapes
    and distribution strategies and rewrites error messages before it runs the function:
    about 0.3 ms a call, as much as a small batch's arithmetic. A serving call needs none
    of that: the inputs are checked against the signature already. This runs the same
    function op on the same tensors (inputs, then the captured variables) with the same
    call options (the context's config_proto and executor type), as Context.call_function
    does once those layers are done, and packs the outputs with the function's own
    pack_output: the same answer to the bit. Where TensorFlow's internals are not as
    expected, it is the public call.
    """

    def public_call(inputs: Tensors) -> dict[str, tf.Tensor]:
        return function(**{name: tf.constant(value) for name, value in inputs.items()})  # type: ignore[no-any-return]

    try:
        from tensorflow.python.eager import context, execute
        from tensorflow.python.framework import ops

        function_name = function._inference_function.name
        function_type = function.function_type
        input_names = list(function_type.parameters)
        captured = list(function.captured_inputs)
        output_count = len(function_type.flat_outputs)
        declared = function.inputs
        if len(declared) != len(input_names) + len(captured) or set(input_names) != set(
            function.structured_input_signature[1]
        ):
            return public_call
        pack_output = function_type.pack_output
        eager_context = context.context()
        eager_tensor = ops.EagerTensor
        run = execute.execute
        name = function_name.decode() if isinstance(function_name, bytes) else function_name
    except (AttributeError, ImportError, TypeError):  # another TensorFlow's internals
        return public_call

    def flat_call(inputs: Tensors) -> dict[str, tf.Tensor]:
        device = eager_context.device_name
        tensors = [eager_tensor(inputs[key], device, None) for key in input_names]
        tensors += captured
        options = eager_context.function_call_options.as_attrs()
        attrs = tuple(itertools.chain.from_iterable(options.items()))
        flat = run(name, num_outputs=output_count, inputs=tensors, attrs=attrs, ctx=eager_context)
        return pack_output(flat)  # type: ignore[no-any-return]

    return flat_call


WARMUP_FILE = Path("assets.extra") / "tf_serving_warmup_requests"
MAX_WARMUP_RECORDS = 1000  # TF Serving's WarmupConsts::kMaxNumRecords


def _warmup_requests(path: Path) -> list[tuple[str, Tensors]]:
    """The predict requests of a version's warm-up records: (signature, inputs)."""
    records = path / WARMUP_FILE
    if not records.is_file():
        return []
    from tensorflow_serving.apis import prediction_log_pb2

    requests = []
    for record in tf.data.TFRecordDataset(str(records)).take(MAX_WARMUP_RECORDS):
        log = prediction_log_pb2.PredictionLog.FromString(record.numpy())
        if log.WhichOneof("log_type") != "predict_log":
            continue  # classify, regress...: APIs this server does not run
        request = log.predict_log.request
        signature = request.model_spec.signature_name or "serving_default"
        inputs = {name: tf.make_ndarray(proto) for name, proto in request.inputs.items()}
        requests.append((signature, inputs))
    return requests


class Servable:
    """One loaded version of a model and a batcher per signature."""

    def __init__(
        self,
        name: str,
        version: int,
        path: Path,
        batching: BatchingParameters | None,
        executor: Executor | None,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        self.name = name
        self.version = version
        self._path = path
        self.signature_defs = read_signature_defs(path)
        self._loaded = tf.saved_model.load(str(path), tags=[SERVE_TAG])
        self.signatures = dict(self._loaded.signatures)
        self._calls = {key: _signature_call(function) for key, function in self.signatures.items()}
        self.inputs: dict[str, dict[str, InputSpec]] = {
            key: {
                name: _input_spec(spec)
                for name, spec in function.structured_input_signature[1].items()
            }
            for key, function in self.signatures.items()
        }
        # What the JSON parser needs per request, computed once per loaded version.
        self.input_dtypes = {
            key: {name: spec.dtype for name, spec in specs.items()}
            for key, specs in self.inputs.items()
        }
        self._batching = batching
        self._executor = executor
        self._on_batch = on_batch
        self._batchers: dict[str, Batcher] = {}
        self._closed = False

    def warm_up(self) -> None:
        """Run each signature once so the first real request is not the slow one (the
        first call of a signature builds its graph: tens of milliseconds).

        The version's TF Serving warm-up records are replayed, as --enable_model_warmup
        does, and a failing one fails the load as it does there; numeric signatures they
        leave out are run on zeros.
        """
        warmed = set()
        for key, inputs in _warmup_requests(self._path):
            specs = self.inputs.get(key)
            if specs is not None and set(inputs) == set(specs):
                self.run(key, inputs)
                warmed.add(key)
        for key, specs in self.inputs.items():
            if key in warmed:
                continue
            if all(spec.dtype != "string" and spec.shape for spec in specs.values()):
                example = {
                    name: np.zeros([1, *(dim or 1 for dim in spec.shape[1:])], spec.dtype)  # type: ignore[index]
                    for name, spec in specs.items()
                }
                self.run(key, example)

    def run(self, signature: str, inputs: Tensors) -> Tensors:
        """Call the signature directly (blocking), converting to and from numpy."""
        try:
            outputs = self._calls[signature](inputs)
        except tf.errors.OpError as exc:
            # OpError codes are absl status codes; TF Serving reports them by name.
            raise ServingError(error_codes_pb2.Code.Name(exc.error_code), exc.message) from exc
        return {name: tensor.numpy() for name, tensor in outputs.items()}

    async def predict(self, signature: str, inputs: Tensors) -> Tensors:
        """Run at once without batching, as TF Serving runs a request on its own thread;
        with batching, through the signature's queue."""
        # Closed: a request that resolved this version just before it was unloaded.
        if self._batching is None or self._executor is None or self._closed:
            return self.run(signature, inputs)
        batcher = self._batchers.get(signature)
        if batcher is None:
            batcher = self._batchers[signature] = Batcher(
                lambda batch: self.run(signature, batch),
                self._batching,
                self._executor,
                self._on_batch,
            )
        return await batcher.submit(inputs)

    async def close(self) -> None:
        """Serve what is queued; later requests run unbatched."""
        self._closed = True
        await asyncio.gather(*(batcher.close() for batcher in self._batchers.values()))


def _servable_request(name: str, version: int | None) -> str:
    """How TF Serving's ServableRequest::DebugString names what was asked for."""
    return f"Specific({name}, {version})" if version is not None else f"Latest({name})"


class ModelVersions:
    """The loaded versions, labels and status of one model name."""

    def __init__(self, spec: ModelSpec) -> None:
        self.spec = spec
        self.configured = True  # False once a reloaded config drops the model
        self.available: dict[int, Servable] = {}
        self.status: dict[int, VersionStatus] = {}
        self.failed_paths: set[Path] = set()

    def resolve(self, version: int | None, label: str | None) -> Servable:
        """The servable for a request, as TF Serving's ServerCore resolves a ModelSpec."""
        if label is not None:
            if label not in self.spec.labels or not self.configured:
                raise invalid_argument("Unrecognized servable version label: ", label)
            version = self.spec.labels[label]
        latest = max(self.available, default=-1)  # -1: none to serve
        servable = self.available.get(latest if version is None else version)
        if servable is None:
            raise not_found(
                "Servable not found for request: ", _servable_request(self.spec.name, version)
            )
        return servable


class ModelRegistry:
    """Every served model; `poll()` brings them in line with what is on disk."""

    def __init__(
        self,
        specs: list[ModelSpec],
        batching: BatchingParameters | None,
        executor: Executor | None,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        self.models = {spec.name: ModelVersions(spec) for spec in specs}
        self._batching = batching
        self._executor = executor
        self._on_batch = on_batch
        self._lock = threading.Lock()

    def resolve(self, name: str, version: int | None, label: str | None) -> Servable:
        model = self.models.get(name)
        if model is None:
            if label is not None:  # labels are looked up before the servable
                raise invalid_argument("Unrecognized servable version label: ", label)
            raise not_found("Servable not found for request: ", _servable_request(name, version))
        return model.resolve(version, label)

    def version_status(self, name: str, version: int | None) -> list[tuple[int, VersionStatus]]:
        """GetModelStatus: every known version, or one; NOT_FOUND as TF Serving words it.

        It takes no label: GetModelStatusImpl ignores the label of a request, so
        /labels/<any>/ lists every version.
        """
        model = self.models.get(name)
        statuses = dict(model.status) if model else {}
        if version is not None:
            if version not in statuses:
                raise not_found("Could not find version ", version, " of model ", name)
            return [(version, statuses[version])]
        if not statuses:
            raise not_found("Could not find any versions of model ", name)
        return sorted(statuses.items())

    def reconfigure(self, specs: list[ModelSpec], allow_unavailable_labels: bool) -> None:
        """Take a re-read models.config, as ServerCore::ReloadConfig does.

        Labels are checked against what is AVAILABLE now, before any version the new
        config asks for is loaded; a refused label (FAILED_PRECONDITION) leaves the old
        config in force. Versions load and unload at the next poll().
        """
        with self._lock:
            configured = {name: m for name, m in self.models.items() if m.configured}
            try:
                check_version_labels(
                    specs,
                    assigned={name: m.spec.labels for name, m in configured.items()},
                    available={name: set(m.available) for name, m in self.models.items()},
                    allow_unavailable=allow_unavailable_labels,
                )
            except LabelError as exc:
                raise ServingError("FAILED_PRECONDITION", str(exc)) from None
            wanted = {spec.name for spec in specs}
            for name, model in self.models.items():
                model.configured = name in wanted
            for spec in specs:
                if spec.name in self.models:
                    self.models[spec.name].spec = spec
                else:
                    self.models[spec.name] = ModelVersions(spec)

    def poll(self) -> list[Servable]:
        """Load new versions, then retire replaced ones. Blocking: run it in a thread.

        Returns the servables taken out of service; the caller closes them.
        """
        retired: list[Servable] = []
        with self._lock:
            for model in self.models.values():
                retired.extend(self._sync(model))
        return retired

    def _sync(self, model: ModelVersions) -> list[Servable]:
        if not model.configured:
            return self._retire(model, set(model.available))
        on_disk = version_folders(model.spec.base_path)
        candidates = sorted(v for v, path in on_disk.items() if path not in model.failed_paths)
        wanted = model.spec.policy.choose(candidates)
        for version in wanted:
            if version not in model.available:
                self._load(model, version, on_disk[version])
        serving = [version for version in wanted if version in model.available]
        if not serving:
            return []  # nothing new could load: keep what serves now
        return self._retire(model, set(model.available) - set(serving))

    def _retire(self, model: ModelVersions, versions: set[int]) -> list[Servable]:
        retired = []
        for version in sorted(versions):
            model.status[version] = VersionStatus("UNLOADING")
            retired.append(model.available.pop(version))
            model.status[version] = VersionStatus("END")
            logger.info("Unloaded %s version %d", model.spec.name, version)
        return retired

    def _load(self, model: ModelVersions, version: int, path: Path) -> None:
        model.status[version] = VersionStatus("LOADING")
        try:
            servable = Servable(
                model.spec.name, version, path, self._batching, self._executor, self._on_batch
            )
            servable.warm_up()
        except Exception as exc:  # any failure to load is reported, never fatal
            model.failed_paths.add(path)
            model.status[version] = VersionStatus("END", "UNKNOWN", f"Failed to load {path}: {exc}")
            logger.error(
                "Could not load %s version %d from %s: %s", model.spec.name, version, path, exc
            )
            return
        model.available[version] = servable
        model.status[version] = VersionStatus("AVAILABLE")
        logger.info("Serving %s version %d from %s", model.spec.name, version, path)
