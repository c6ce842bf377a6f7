"""Feedback storage: each corrected digit becomes `<id>.png` + `<id>.json` in GATEWAY_FEEDBACK_DIR.

Both files are written under a hidden temporary name in the same folder and renamed into
place, the PNG first: a reader never sees half a file, and every `<id>.json` has its PNG.
The folder holds at most GATEWAY_FEEDBACK_MAX_ITEMS items: gateway processes sharing it
count and write under one lock on the folder. The layout is read by training
(`--feedback-dir`); docs/canary-and-feedback.md describes it.
"""

import fcntl
import logging
import os
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import orjson

from gateway.errors import FeedbackStoreFull, StorageUnavailable
from gateway.preprocessing import encode_png

logger = logging.getLogger(__name__)
FILE_MODE = 0o644  # training may run as another user of the same volume


@dataclass(frozen=True, slots=True)
class FeedbackItem:
    """One line of metadata, as stored in `<id>.json`."""

    id: str
    label: int
    predicted_digit: int | None
    model_version: str | None
    created_at: str
    request_id: str
    image: str  # the file name of the digit beside it: "<id>.png"


class FeedbackStore:
    def __init__(self, folder: Path, max_items: int) -> None:
        self.folder = folder
        self.max_items = max_items
        # (the folder's mtime, its items) when last counted: the count stands until the
        # folder changes, so a full store refuses without listing it each time.
        self._counted: tuple[int, int] | None = None

    def prepare(self) -> None:
        """Create the folder if needed; fail at startup, not at the first feedback.

        Raises:
            RuntimeError: the folder cannot be created or written, naming the setting.
        """
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            writable = os.access(self.folder, os.W_OK | os.X_OK)
            problem = "" if writable else "is not writable by this process"
        except OSError as exc:
            problem = f"cannot be created ({exc})"
        if problem:
            raise RuntimeError(
                f"GATEWAY_FEEDBACK_DIR={str(self.folder)!r} {problem}; "
                "point it at a writable folder or unset it to turn feedback off."
            )

    def save(
        self,
        digit: np.ndarray,
        *,
        label: int,
        predicted_digit: int | None,
        model_version: str | None,
        request_id: str,
    ) -> FeedbackItem:
        """Store a normalised [28, 28] digit and its metadata; blocking (run it in a thread).

        Raises:
            FeedbackStoreFull: the folder holds `max_items` items; nothing is written.
            StorageUnavailable: the files could not be written; nothing is left behind.
        """
        try:
            folder = os.open(self.folder, os.O_RDONLY | os.O_DIRECTORY)
        except OSError as exc:
            raise self._unavailable() from exc
        try:
            fcntl.flock(folder, fcntl.LOCK_EX)  # released when the descriptor closes
            items = self._items(folder)
            if items >= self.max_items:
                raise FeedbackStoreFull(
                    f"The feedback store is full: it holds its limit of {self.max_items} "
                    "corrections and stores no more until they are collected for training. "
                    "Predictions are not affected."
                )
            item_id = uuid.uuid4().hex
            now = datetime.now(UTC).isoformat(timespec="milliseconds")
            item = FeedbackItem(
                id=item_id,
                label=label,
                predicted_digit=predicted_digit,
                model_version=model_version,
                created_at=now.replace("+00:00", "Z"),
                request_id=request_id,
                image=f"{item_id}.png",
            )
            self._write(digit, item)
            self._counted = (os.fstat(folder).st_mtime_ns, items + 1)
            return item
        finally:
            os.close(folder)

    def _items(self, folder: int) -> int:
        changed = os.fstat(folder).st_mtime_ns
        if self._counted is None or self._counted[0] != changed:
            with os.scandir(self.folder) as entries:
                count = sum(e.name.endswith(".json") and e.name[0] != "." for e in entries)
            self._counted = (changed, count)
        return self._counted[1]

    def _write(self, digit: np.ndarray, item: FeedbackItem) -> None:
        image_path = self.folder / item.image
        try:
            self._write_atomically(image_path, encode_png(digit))
            try:
                self._write_atomically(
                    self.folder / f"{item.id}.json",
                    orjson.dumps(asdict(item), option=orjson.OPT_APPEND_NEWLINE),
                )
            except OSError:
                image_path.unlink(missing_ok=True)
                raise
        except OSError as exc:
            raise self._unavailable() from exc

    def _unavailable(self) -> StorageUnavailable:
        logger.error("Could not store feedback in %s", self.folder, exc_info=True)
        return StorageUnavailable("The feedback could not be stored right now; try again later.")

    @staticmethod
    def _write_atomically(path: Path, data: bytes) -> None:
        """Write `data` under a hidden name beside `path`, then rename it into place; the file
        is created with FILE_MODE (the gateway image cannot import serving/rollout's writer)."""
        temporary = path.with_name(f".{path.name}.tmp")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
        try:
            with os.fdopen(descriptor, "wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, path)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
