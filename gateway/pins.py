"""Which model version a request asks for: its own pin (query or header), else the gateway's."""

import re
from typing import NamedTuple

from starlette.datastructures import Headers, QueryParams

from contract import VERSION_LABEL_PATTERN
from gateway.errors import BadRequestParameters

_LABEL = re.compile(VERSION_LABEL_PATTERN)


class Pin(NamedTuple):
    """A version, a label, or neither (the newest)."""

    version: int | None
    label: str | None
    requested: bool = False  # pinned by the request itself; only requests without are canaries


def request_pin(query: QueryParams, headers: Headers, configured: Pin) -> Pin:
    """The pin of a request: ?version= or ?label=, then the X-Model-Version and
    X-Model-Label headers, then the gateway's configured pin."""
    version = _version(query.get("version"), "version")
    if version is None:
        version = _version(headers.get("x-model-version"), "X-Model-Version")
    label = query.get("label")
    if label is None:
        label = headers.get("x-model-label")
    if label is not None and not _LABEL.fullmatch(label):
        # The label becomes part of the upstream URL: only plain names get through.
        raise BadRequestParameters(
            f"The label must be 1-64 letters, digits, '_' or '-', not {label[:70]!r}."
        )
    if version is not None and label is not None:
        raise BadRequestParameters("Pin a model version or a label, not both.")
    if version is None and label is None:
        return configured
    return Pin(version, label, requested=True)


def _version(text: str | None, name: str) -> int | None:
    if text is None:
        return None
    if not (text.isascii() and text.isdigit()) or int(text) < 1 or len(text) > 19:
        raise BadRequestParameters(f"{name} must be a positive integer, not {text[:30]!r}.")
    return int(text)
