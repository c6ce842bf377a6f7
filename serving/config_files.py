"""TF Serving's batching and monitoring config files (text protobuf), read the same way.

The tensorflow-serving-api package ships neither message, so their descriptors are built
here from the field numbers in TF Serving's session_bundle_config.proto and
monitoring_config.proto; text_format then parses exactly what TF Serving parses.
"""

from pathlib import Path
from typing import Any

from google.protobuf import (
    descriptor_pb2,
    descriptor_pool,
    message_factory,
    text_format,
    wrappers_pb2,
)

from serving.batching import BatchingParameters

# TF Serving's metrics path when the monitoring file enables Prometheus without one.
DEFAULT_MONITORING_PATH = "/monitoring/prometheus/metrics"
_FIELD = descriptor_pb2.FieldDescriptorProto


def _build_pool() -> descriptor_pool.DescriptorPool:
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(
        descriptor_pb2.FileDescriptorProto.FromString(
            wrappers_pb2.DESCRIPTOR.serialized_pb
        ).SerializeToString()
    )
    file = descriptor_pb2.FileDescriptorProto(
        name="local_serving_config.proto",
        package="tensorflow.serving",
        syntax="proto3",
        dependency=["google/protobuf/wrappers.proto"],
    )

    def add(message: descriptor_pb2.DescriptorProto, name: str, number: int, kind: str) -> None:
        field = message.field.add(name=name, number=number, label=_FIELD.LABEL_OPTIONAL)
        if kind.startswith("."):
            field.type, field.type_name = _FIELD.TYPE_MESSAGE, kind
        elif kind == "repeated int64":
            field.type, field.label = _FIELD.TYPE_INT64, _FIELD.LABEL_REPEATED
        else:
            field.type = {"bool": _FIELD.TYPE_BOOL, "string": _FIELD.TYPE_STRING}[kind]

    batching = file.message_type.add(name="BatchingParameters")
    for name, number, kind in [
        ("max_batch_size", 1, ".google.protobuf.Int64Value"),
        ("batch_timeout_micros", 2, ".google.protobuf.Int64Value"),
        ("max_enqueued_batches", 3, ".google.protobuf.Int64Value"),
        ("num_batch_threads", 4, ".google.protobuf.Int64Value"),
        ("thread_pool_name", 5, ".google.protobuf.StringValue"),
        ("allowed_batch_sizes", 6, "repeated int64"),
        ("pad_variable_length_inputs", 7, "bool"),
        ("enable_large_batch_splitting", 8, ".google.protobuf.BoolValue"),
        ("max_execution_batch_size", 9, ".google.protobuf.Int64Value"),
    ]:
        add(batching, name, number, kind)
    prometheus = file.message_type.add(name="PrometheusConfig")
    add(prometheus, "enable", 1, "bool")
    add(prometheus, "path", 2, "string")
    monitoring = file.message_type.add(name="MonitoringConfig")
    add(monitoring, "prometheus_config", 1, ".tensorflow.serving.PrometheusConfig")
    pool.Add(file)
    return pool


_POOL = _build_pool()


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
    refusal of values it cannot run with (BatchingParameters.checked).

    Raises:
        ValueError: the file does not parse, or TF Serving would refuse it.
    """
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
