"""Corrections users sent through the gateway's POST /feedback, as training data.

The gateway stores each one as `<id>.png` (the normalised 28x28 digit, uint8, white on
black) and `<id>.json` (its `label`, 0-9). Identical images count once (their most common
label wins; a tie is dropped), a fixed share is held out by id so it stays out of training
from one run to the next, and the rest is repeated FEEDBACK_WEIGHT times: a few hundred
corrections among 100,000 digits would otherwise teach nothing.
"""

import hashlib
import json
import logging
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from contract import IMAGE_SIZE, NUM_CLASSES

logger = logging.getLogger(__name__)
FEEDBACK_WEIGHT = 10
HOLDOUT_SHARE = 0.2


@dataclass(frozen=True)
class Feedback:
    x_train: np.ndarray  # uint8 [n, 28, 28]
    y_train: np.ndarray
    x_holdout: np.ndarray
    y_holdout: np.ndarray
    items: int  # usable items read
    duplicates: int  # items dropped as repeats of an image already counted
    skipped: int  # unreadable or malformed items


def _held_out(item_id: str) -> bool:
    """A stable draw per item: the same corrections stay held out on every run."""
    digest = hashlib.sha256(item_id.encode()).digest()
    return int.from_bytes(digest[:4], "big") / 2**32 < HOLDOUT_SHARE


def _read_item(meta_path: Path) -> tuple[str, np.ndarray, int]:
    meta = json.loads(meta_path.read_text())
    label = meta["label"]
    if not isinstance(label, int) or isinstance(label, bool) or not 0 <= label < NUM_CLASSES:
        raise ValueError(f"label {label!r} is not a digit")
    image_name = meta.get("image") or f"{meta_path.stem}.png"
    with Image.open(meta_path.parent / Path(image_name).name) as image:
        pixels = np.asarray(image.convert("L"), dtype=np.uint8)
    if pixels.shape != (IMAGE_SIZE, IMAGE_SIZE):
        raise ValueError(f"image of shape {pixels.shape}, not 28x28")
    return str(meta.get("id") or meta_path.stem), pixels, label


def load_feedback(folder: Path) -> Feedback:
    """Every `<id>.json` with its PNG under `folder`; bad items are skipped and logged."""
    votes: dict[bytes, Counter[int]] = defaultdict(Counter)
    pixels_of: dict[bytes, np.ndarray] = {}
    id_of: dict[bytes, str] = {}
    items = skipped = 0
    for meta_path in sorted(folder.glob("*.json")):
        if meta_path.name.startswith("."):
            continue
        try:
            item_id, pixels, label = _read_item(meta_path)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            logger.warning("Skipping feedback item %s: %s", meta_path.name, exc)
            skipped += 1
            continue
        items += 1
        key = pixels.tobytes()
        votes[key][label] += 1
        pixels_of.setdefault(key, pixels)
        id_of.setdefault(key, item_id)
    chosen: dict[str, list[tuple[np.ndarray, int]]] = {"train": [], "holdout": []}
    for key, counter in votes.items():
        ranked = counter.most_common(2)
        if len(ranked) == 2 and ranked[0][1] == ranked[1][1]:
            continue  # users disagree on this image: teach nothing from it
        split = "holdout" if _held_out(id_of[key]) else "train"
        chosen[split].append((pixels_of[key], ranked[0][0]))

    def arrays(pairs: list[tuple[np.ndarray, int]]) -> tuple[np.ndarray, np.ndarray]:
        if not pairs:
            return np.zeros((0, IMAGE_SIZE, IMAGE_SIZE), np.uint8), np.zeros(0, np.int64)
        return np.stack([p for p, _ in pairs]), np.array([y for _, y in pairs], np.int64)

    x_train, y_train = arrays(chosen["train"])
    x_holdout, y_holdout = arrays(chosen["holdout"])
    duplicates = items - len(votes)
    return Feedback(x_train, y_train, x_holdout, y_holdout, items, duplicates, skipped)
