"""TF Serving's config files, read with protobuf's text format as TF Serving reads them.

models.config says which models, versions and labels to serve (and the rollout rewrites it);
batching.config and monitoring.config are read for the local server.
"""

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from itertools import takewhile
from pathlib import Path
from typing import Any

from google.protobuf import (
    descriptor_pb2,
    descriptor_pool,
    message_factory,
    text_format,
    wrappers_pb2,
)
from tensorflow_serving.config import model_server_config_pb2

from serving.batching import BatchingParameters


@dataclass(frozen=True)
class VersionPolicy:
    """TF Serving's model_version_policy: latest N (its default is 1), all, or specific."""

    kind: str = "latest"  # "latest" | "all" | "specific"
    num_versions: int = 1
    versions: frozenset[int] = frozenset()

    def choose(self, available: list[int]) -> list[int]:
        """The versions to serve among `available` (ascending)."""
        if self.kind == "all":
            return list(available)
        if self.kind == "specific":
            return [version for version in available if version in self.versions]
        return available[-self.num_versions :] if available else []

    def describe(self) -> str:
        if self.kind == "specific":
            return "specific " + " ".join(str(v) for v in sorted(self.versions))
        return "all" if self.kind == "all" else f"latest {self.num_versions}"


@dataclass(frozen=True)
class ModelSpec:
    name: str
    base_path: Path
    policy: VersionPolicy = VersionPolicy()
    labels: dict[str, int] = field(default_factory=dict)


def parse_model_server_config(text: str) -> Any:
    """models.config's text as a ModelServerConfig message (no stubs: typed Any), or
    ValueError when it is not one with a model_config_list."""
    try:
        config = text_format.Parse(text, model_server_config_pb2.ModelServerConfig())
    except text_format.ParseError as exc:
        raise ValueError(f"models.config does not parse: {exc}") from exc
    if not config.HasField("model_config_list"):
        raise ValueError("models.config has no model_config_list")
    return config


def parse_model_config(text: str, relative_to: Path | None = None) -> list[ModelSpec]:
    """Parse a models.config (ValueError if it does not). Relative base paths resolve
    against `relative_to`."""
    config = parse_model_server_config(text)
    specs = []
    for entry in config.model_config_list.config:
        base_path = Path(entry.base_path)
        if relative_to is not None and not base_path.is_absolute():
            base_path = relative_to / base_path
        specs.append(
            ModelSpec(
                name=entry.name,
                base_path=base_path,
                policy=_policy(entry.model_version_policy),
                labels=dict(entry.version_labels),
            )
        )
    return specs


def rewritten(text: str, name: str, versions: Collection[int], labels: Mapping[str, int]) -> str:
    """`text` with model `name`'s policy set to `specific` these versions, its labels to these.

    protobuf's text format writes the whole file, so comments inside it are lost; the comment
    lines heading the file are kept, which is where serving/models.config keeps its own.
    ValueError when the text does not parse, or has no such model.
    """
    config = parse_model_server_config(text)
    entries = [e for e in config.model_config_list.config if e.name == name]
    if not entries:
        raise ValueError(f"models.config has no model named {name!r}")
    entry = entries[0]
    entry.model_version_policy.Clear()
    entry.model_version_policy.specific.versions.extend(sorted(versions))
    entry.ClearField("version_labels")
    entry.version_labels.update(labels)
    head = takewhile(lambda line: line.strip()[:1] in ("", "#"), text.splitlines(keepends=True))
    return "".join(head) + str(text_format.MessageToString(config))


class LabelError(ValueError):
    """A version label TF Serving refuses to assign (FAILED_PRECONDITION)."""


def check_version_labels(
    specs: list[ModelSpec],
    assigned: Mapping[str, Mapping[str, int]],
    available: Mapping[str, Collection[int]],
    allow_unavailable: bool,
) -> None:
    """Refuse labels as ServerCore::UpdateModelVersionLabelMap does.

    A label must point at a version that is AVAILABLE when the config is applied, which
    is before the versions the config asks for load: at start-up nothing is, so any
    label fails. --allow_version_labels_for_unavailable_models lifts this only for a
    label that is new or keeps its version; moving a label still needs its new version
    AVAILABLE, so requests to the label are never sent to a version still loading.
    LabelError names the first label refused, in TF Serving's words.
    """
    for spec in specs:
        current = assigned.get(spec.name, {})
        loaded = available.get(spec.name, ())
        for label, version in spec.labels.items():
            moved = label in current and current[label] != version
            if (moved or not allow_unavailable) and version not in loaded:
                raise LabelError(
                    f"Request to assign label to version {version} of model {spec.name}, "
                    "which is not currently available for inference"
                )


def _policy(proto: object) -> VersionPolicy:
    which = proto.WhichOneof("policy_choice")  # type: ignore[attr-defined]
    if which == "all":
        return VersionPolicy(kind="all")
    if which == "specific":
        versions = frozenset(proto.specific.versions)  # type: ignore[attr-defined]
        return VersionPolicy(kind="specific", versions=versions)
    if which == "latest":
        return VersionPolicy(num_versions=max(1, proto.latest.num_versions))  # type: ignore[attr-defined]
    return VersionPolicy()


# --- batching.config and monitoring.config -----------------------------------------------

# TF Serving's metrics path when the monitoring file enables Prometheus without one.
DEFAULT_MONITORING_PATH = "/monitoring/prometheus/metrics"
# The tensorflow-serving-api package ships neither message: they are declared here with the
# field numbers of TF Serving's session_bundle_config.proto and monitoring_config.proto, so
# text_format parses exactly what TF Serving parses.
_MESSAGES = """
name: "tf_serving_config.proto" package: "tensorflow.serving" syntax: "proto3"
dependency: "google/protobuf/wrappers.proto"
message_type {
  name: "BatchingParameters"
  field { name: "max_batch_size" number: 1
    type: TYPE_MESSAGE type_name: ".google.protobuf.Int64Value" }
  field { name: "batch_timeout_micros" number: 2
    type: TYPE_MESSAGE type_name: ".google.protobuf.Int64Value" }
  field { name: "max_enqueued_batches" number: 3
    type: TYPE_MESSAGE type_name: ".google.protobuf.Int64Value" }
  field { name: "num_batch_threads" number: 4
    type: TYPE_MESSAGE type_name: ".google.protobuf.Int64Value" }
  field { name: "thread_pool_name" number: 5
    type: TYPE_MESSAGE type_name: ".google.protobuf.StringValue" }
  field { name: "allowed_batch_sizes" number: 6 label: LABEL_REPEATED type: TYPE_INT64 }
  field { name: "pad_variable_length_inputs" number: 7 type: TYPE_BOOL }
  field { name: "enable_large_batch_splitting" number: 8
    type: TYPE_MESSAGE type_name: ".google.protobuf.BoolValue" }
  field { name: "max_execution_batch_size" number: 9
    type: TYPE_MESSAGE type_name: ".google.protobuf.Int64Value" }
}
message_type {
  name: "PrometheusConfig"
  field { name: "enable" number: 1 type: TYPE_BOOL }
  field { name: "path" number: 2 type: TYPE_STRING }
}
message_type {
  name: "MonitoringConfig"
  field { name: "prometheus_config" number: 1
    type: TYPE_MESSAGE type_name: ".tensorflow.serving.PrometheusConfig" }
}
"""
_POOL = descriptor_pool.DescriptorPool()
_POOL.AddSerializedFile(wrappers_pb2.DESCRIPTOR.serialized_pb)
_POOL.AddSerializedFile(
    text_format.Parse(_MESSAGES, descriptor_pb2.FileDescriptorProto()).SerializeToString()
)


def _parse(path: Path, message_name: str) -> object:
    message_class = message_factory.GetMessageClass(
        _POOL.FindMessageTypeByName(f"tensorflow.serving.{message_name}")
    )
    try:
        return text_format.Parse(path.read_text(), message_class())
    except text_format.ParseError as exc:
        raise ValueError(f"{path} is not a valid {message_name}: {exc}") from exc


def read_batching_parameters(path: Path) -> BatchingParameters:
    """The batching file as TF Serving reads it: its defaults for absent fields, its
    refusal (ValueError) of a file that does not parse or values it cannot run with."""
    proto: Any = _parse(path, "BatchingParameters")
    defaults = BatchingParameters()

    def value(name: str, default: float) -> float:
        return float(getattr(proto, name).value) if proto.HasField(name) else default

    splitting = bool(proto.enable_large_batch_splitting.value)
    execution = None
    if splitting:
        # GetQueueOptions: absent, it is max_batch_size as written (0 when that is absent too).
        execution = int(value("max_execution_batch_size", proto.max_batch_size.value))
    try:
        return BatchingParameters(
            max_batch_size=int(value("max_batch_size", defaults.max_batch_size)),
            batch_timeout_s=value("batch_timeout_micros", defaults.batch_timeout_s * 1e6) / 1e6,
            max_enqueued_batches=int(value("max_enqueued_batches", defaults.max_enqueued_batches)),
            num_batch_threads=int(value("num_batch_threads", defaults.num_batch_threads)),
            allowed_batch_sizes=tuple(int(size) for size in proto.allowed_batch_sizes),
            enable_large_batch_splitting=splitting,
            max_execution_batch_size=execution,
        ).checked()
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from exc


def read_monitoring_path(path: Path) -> str | None:
    """The Prometheus path if the monitoring file enables it, else None."""
    proto = _parse(path, "MonitoringConfig")
    prometheus = proto.prometheus_config  # type: ignore[attr-defined]
    if not prometheus.enable:
        return None
    return str(prometheus.path) or DEFAULT_MONITORING_PATH
