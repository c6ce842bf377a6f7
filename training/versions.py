"""Model versions on disk: positive integer folders under a base path (no TensorFlow here,
so `--if-missing` answers in milliseconds)."""

from pathlib import Path


def existing_versions(base: Path) -> list[int]:
    """Integer version folders under `base`, ascending; temporary folders are not versions."""
    if not base.is_dir():
        return []
    return sorted(
        int(child.name)
        for child in base.iterdir()
        if child.is_dir() and child.name.isdigit() and int(child.name) > 0
    )


def next_version(base: Path) -> int:
    # TF Serving serves the largest version, so a new model must sort above all others.
    versions = existing_versions(base)
    return versions[-1] + 1 if versions else 1
