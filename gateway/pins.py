"""Which model version a request asks for: its own pin (query or header), else the gateway's."""

from typing import NamedTuple

from starlette.datastructures import Headers, QueryParams

from gateway.errors import BadRequestParameters
from gateway.parameters import LABEL, LABEL_HEADER, VERSION, VERSION_HEADER


class Pin(NamedTuple):
    """A version, a label, or neither (the newest, or the stable label's version)."""

    version: int | None
    label: str | None
    requested: bool = False  # pinned by the request itself; only requests without are canaries


def request_pin(query: QueryParams, headers: Headers, configured: Pin) -> Pin:
    """The pin of a request: ?version= or ?label=, then the X-Model-Version and
    X-Model-Label headers, then the gateway's configured pin."""
    # Neither can be falsy when sent: versions are positive, labels not empty.
    version = VERSION.read(query, headers) or VERSION_HEADER.read(query, headers)
    label = LABEL.read(query, headers) or LABEL_HEADER.read(query, headers)
    if version is not None and label is not None:
        raise BadRequestParameters("Pin a model version or a label, not both.")
    if version is None and label is None:
        return configured
    return Pin(version, label, requested=True)
