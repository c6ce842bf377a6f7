"""Which models to serve: TF Serving's models.config (text protobuf), or one base path."""

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2


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


@dataclass(frozen=True)
class ModelSpec:
    name: str
    base_path: Path
    policy: VersionPolicy = VersionPolicy()
    labels: dict[str, int] = field(default_factory=dict)


def parse_model_config(text: str, relative_to: Path | None = None) -> list[ModelSpec]:
    """Parse a models.config. Relative base paths resolve against `relative_to`.

    Raises:
        ValueError: the text is not a ModelServerConfig with a model_config_list.
    """
    try:
        config = text_format.Parse(text, model_server_config_pb2.ModelServerConfig())
    except text_format.ParseError as exc:
        raise ValueError(f"models.config does not parse: {exc}") from exc
    if not config.HasField("model_config_list"):
        raise ValueError("models.config has no model_config_list")
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

    Raises:
        LabelError: with TF Serving's message, naming the first label refused.
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
