"""What the model servers report, through TF Serving's REST status and metadata APIs.

The rollout trusts these answers, not the file it wrote: a server may not have re-read the
file yet, or may have refused it.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx


class ServerError(Exception):
    """A model server did not answer, or answered something unexpected."""


@dataclass(frozen=True)
class VersionState:
    """One version as a model server reports it; state "" when it knows nothing of it."""

    state: str
    error: str = ""

    def describe(self) -> str:
        text = self.state or "unknown to the server"
        return f"{text} ({self.error})" if self.error else text


NOT_LOADED = VersionState("")


class ModelServers:
    """TF Serving's REST status and metadata APIs on every process to check (one per URL)."""

    def __init__(self, urls: Sequence[str], model_name: str, client: httpx.Client) -> None:
        self.urls = [url.rstrip("/") for url in urls]
        self.model_name = model_name
        self._client = client

    def _get(self, url: str, path: str, ok: tuple[int, ...] | None = (200, 404)) -> tuple[int, Any]:
        """The status and JSON body; ServerError unless the status is one of `ok` (None: any)."""
        try:
            response = self._client.get(f"{url}/v1/models/{self.model_name}{path}")
            body = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise ServerError(f"{url} did not answer: {exc}") from exc
        if not isinstance(body, dict):
            raise ServerError(f"{url} answered {response.status_code} with {body!r}")
        if ok is not None and response.status_code not in ok:
            raise ServerError(f"{url} answered {response.status_code}: {body.get('error', body)}")
        return response.status_code, body

    def states(self, url: str) -> dict[int, VersionState]:
        """Every version the server knows of (GET /v1/models/NAME)."""
        status, body = self._get(url, "")
        if status == 404:
            return {}
        return {
            int(entry["version"]): _version_state(entry)
            for entry in body.get("model_version_status", [])
        }

    def state(self, url: str, version: int) -> VersionState:
        """One version's state (GET /v1/models/NAME/versions/N); NOT_LOADED when unknown."""
        status, body = self._get(url, f"/versions/{version}")
        if status == 404:
            return NOT_LOADED
        entries = body.get("model_version_status", [])
        return _version_state(entries[0]) if entries else NOT_LOADED

    def label_target(self, url: str, label: str) -> int | str:
        """The version a label resolves to on that server, or the server's error sentence.

        The status API ignores labels; the metadata API resolves them.
        """
        status, body = self._get(url, f"/labels/{label}/metadata", ok=None)
        if status != 200:
            return str(body.get("error", f"HTTP {status}"))
        return int(body["model_spec"]["version"])


def _version_state(entry: dict[str, Any]) -> VersionState:
    status = entry.get("status", {})
    failed = status.get("error_code", "OK") != "OK"
    return VersionState(str(entry["state"]), str(status.get("error_message", "")) if failed else "")
