"""Which models to serve: TF Serving's models.config (text protobuf), or one base path."""

from dataclasses import dataclass, field
from pathlib import Path

from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

DEFAULT_MODEL_NAME = "mnist"


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
