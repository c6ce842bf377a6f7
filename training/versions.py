"""Model versions on disk: positive integer folders under a base path (no TensorFlow here,
so `--if-missing` answers in milliseconds)."""

import json
from pathlib import Path

from contract import model_card_path, version_folders


def existing_versions(base: Path) -> list[int]:
    """Integer version folders under `base`, ascending; temporary folders are not versions."""
    return sorted(version_folders(base))


def next_version(base: Path) -> int:
    # TF Serving serves the largest version, so a new model must sort above all others.
    versions = existing_versions(base)
    return versions[-1] + 1 if versions else 1


def published_recipes(base: Path) -> dict[int, str]:
    """Each version's recipe (the model card's "architecture"), "unknown" without a card."""
    recipes = {}
    for version in existing_versions(base):
        card_path = model_card_path(base / str(version))
        try:
            card = json.loads(card_path.read_text())
            recipes[version] = str(card.get("architecture", "unknown"))
        except (OSError, ValueError, AttributeError):
            recipes[version] = "unknown"
    return recipes
