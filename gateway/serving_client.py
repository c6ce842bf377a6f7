"""The gateway's only way to TF Serving: its REST API over one shared httpx client.

Every request is sent to an explicit `/versions/N` path, so the version reported to users
is the one that answered. The newest AVAILABLE version (or the pinned label's) is cached
for a second; if it is unloaded meanwhile, the client looks again and retries once.
The canary label is resolved under a lock of its own and its absence is cached too: a slow
or missing canary never holds up the primary's lookups.
"""

import asyncio
import logging
import time
from dataclasses import dataclass

import httpx
import numpy as np
import orjson

from contract import OUTPUT_PROBABILITIES
from gateway.errors import (
    BadRequestParameters,
    GatewayError,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnavailable,
)

logger = logging.getLogger(__name__)
REQUEST_ID_HEADER = "X-Request-ID"
# TF Serving's INVALID_ARGUMENT (400) for a label it does not know (server_core.cc).
UNKNOWN_LABEL = "Unrecognized servable version label"


@dataclass(frozen=True)
class VersionStatus:
    version: int
    state: str
    error_message: str = ""


@dataclass(frozen=True)
class PredictResult:
    probabilities: np.ndarray  # float32 [n, 10]
    model_version: int


class _NotFound(Exception):
    """TF Serving answered 404 (the model or version is not loaded) or 400 for an unknown
    label."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class TFServingClient:
    """Speaks contract 2 to one model; translates every failure into a gateway error."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        model_name: str,
        version_cache_s: float = 1.0,
        canary_label: str | None = None,
    ):
        self._http = http
        # Requests are built here rather than by `http.request`, whose URL merging and
        # header handling cost more than the rest of the call (docs/benchmarks.md).
        self._base_url = str(http.base_url).rstrip("/")
        self._timeout = http.timeout.as_dict()
        self.model_name = model_name
        self._cache_s = version_cache_s
        # label -> (version, when looked up); version None: the label had no version then.
        self._cached: dict[str | None, tuple[int | None, float]] = {}
        self._refresh_lock = asyncio.Lock()
        self._canary_label = canary_label
        self._canary_lock = asyncio.Lock()

    async def _request(
        self, method: str, path: str, request_id: str | None = None, content: bytes | None = None
    ) -> object:
        headers = {"Content-Type": "application/json"} if content is not None else {}
        if request_id:
            headers[REQUEST_ID_HEADER] = request_id
        request = httpx.Request(
            method,
            self._base_url + path,
            content=content,
            headers=headers,
            extensions={"timeout": self._timeout},
        )
        try:
            try:
                response = await self._http.send(request)
            except (httpx.ConnectTimeout, httpx.ConnectError, httpx.RemoteProtocolError):
                # A pooled keep-alive connection the server closed a moment ago fails like
                # this; inference is safe to repeat, so try once more on a new connection.
                response = await self._http.send(request)
        except httpx.ConnectTimeout as exc:
            raise self._unreachable(exc) from exc
        except httpx.TimeoutException as exc:
            logger.warning("TF Serving timed out on %s %s", method, path, exc_info=True)
            raise UpstreamTimeout(
                "The model server did not answer in time; try again shortly."
            ) from exc
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from exc
        try:
            body = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            body = None
        error = body.get("error") if isinstance(body, dict) else None
        if response.status_code == 404 or (
            response.status_code == 400 and str(error).startswith(UNKNOWN_LABEL)
        ):
            # Not an error of the server: a version or label that is not there (now).
            raise _NotFound(str(error or "not found"))
        if response.status_code == 503:
            raise UpstreamUnavailable(f"The model server is not ready: {error or 'unavailable'}.")
        if response.status_code >= 400 or body is None:
            logger.error(
                "TF Serving answered %s to %s %s: %s", response.status_code, method, path, error
            )
            raise UpstreamError(
                f"The model server answered with an error ({response.status_code}): "
                f"{error or 'no JSON body'}."
            )
        return body

    def _unreachable(self, exc: Exception) -> UpstreamUnavailable:
        logger.warning("TF Serving unreachable: %s", exc)
        return UpstreamUnavailable("The model server is unreachable; try again shortly.")

    def _model_path(self, version: int | None = None, label: str | None = None) -> str:
        path = f"/v1/models/{self.model_name}"
        if version is not None:
            return f"{path}/versions/{version}"
        if label is not None:
            return f"{path}/labels/{label}"
        return path

    async def model_status(
        self, version: int | None = None, request_id: str | None = None
    ) -> list[VersionStatus]:
        """GET the model's version status; NOT_FOUND becomes an empty list."""
        try:
            body = await self._request("GET", self._model_path(version), request_id)
        except _NotFound:
            return []
        try:
            assert isinstance(body, dict)
            return [
                VersionStatus(
                    int(entry["version"]),
                    str(entry["state"]),
                    str(entry.get("status", {}).get("error_message", "")),
                )
                for entry in body["model_version_status"]
            ]
        except (AssertionError, KeyError, TypeError, ValueError, AttributeError) as exc:
            raise UpstreamError(
                f"The model server's status answer does not have the expected shape ({exc!r})."
            ) from exc

    async def label_version(self, label: str, request_id: str | None = None) -> int | None:
        """The AVAILABLE version a label points at, or None.

        TF Serving's status API ignores labels (it lists every version), so the label is
        resolved the way its metadata API does: that answers only for a loaded version.
        """
        path = f"{self._model_path(label=label)}/metadata"
        try:
            body = await self._request("GET", path, request_id)
        except _NotFound:  # an unknown label, or its version is not loaded
            return None
        try:
            assert isinstance(body, dict)
            return int(body["model_spec"]["version"])
        except (AssertionError, KeyError, TypeError, ValueError) as exc:
            raise UpstreamError(
                f"The model server's metadata answer does not have the expected shape ({exc!r})."
            ) from exc

    async def serving_version(
        self, label: str | None = None, request_id: str | None = None, refresh: bool = False
    ) -> int:
        """The version requests go to: the newest AVAILABLE one, or the label's.

        Raises:
            UpstreamUnavailable: no version is AVAILABLE (for the label).
        """
        cached = self._cached.get(label)
        if cached and not refresh and time.monotonic() - cached[1] < self._cache_s:
            return self._version_or_raise(label, cached[0])
        is_canary = label is not None and label == self._canary_label
        async with self._canary_lock if is_canary else self._refresh_lock:
            cached = self._cached.get(label)
            if cached and time.monotonic() - cached[1] < self._cache_s and not refresh:
                return self._version_or_raise(label, cached[0])
            if label is None:
                statuses = await self.model_status(request_id=request_id)
                available = [s.version for s in statuses if s.state == "AVAILABLE"]
                version = max(available) if available else None
            else:
                version = await self.label_version(label, request_id)
            if version is not None or is_canary:
                # A canary label may be absent for days: remember that as well, so the
                # canary's share of requests does not each ask TF Serving again. Labels
                # from requests are not remembered when absent: any name can be sent.
                self._cached[label] = (version, time.monotonic())
            else:
                self._cached.pop(label, None)
            return self._version_or_raise(label, version)

    def _version_or_raise(self, label: str | None, version: int | None) -> int:
        if version is None:
            what = f"label {label!r} of model" if label else "model"
            raise UpstreamUnavailable(
                f"The {what} {self.model_name!r} has no available version yet; try again shortly."
            )
        return version

    async def predict(
        self,
        images: np.ndarray,
        *,
        version: int | None = None,
        label: str | None = None,
        request_id: str | None = None,
    ) -> PredictResult:
        """Classify [n, 28, 28] float32 images in one upstream call."""
        body = orjson.dumps(
            {"instances": images[..., None].astype(np.float32)},
            option=orjson.OPT_SERIALIZE_NUMPY,
        )
        if version is not None:
            try:
                return await self._predict_at(version, body, request_id)
            except _NotFound as exc:
                raise BadRequestParameters(
                    f"Model version {version} is not available ({exc.message}); "
                    "see GET /model for the versions being served."
                ) from exc
        chosen = await self.serving_version(label, request_id)
        try:
            try:
                return await self._predict_at(chosen, body, request_id)
            except _NotFound:
                # The version was swapped out since we looked: look again, once.
                chosen = await self.serving_version(label, request_id, refresh=True)
                try:
                    return await self._predict_at(chosen, body, request_id)
                except _NotFound as exc:
                    raise UpstreamUnavailable(
                        f"The model is being reloaded ({exc.message}); try again shortly."
                    ) from exc
        except GatewayError as exc:
            # TF Serving named this version, so it may label metrics (a version sent by a
            # caller may not: any number can be sent).
            exc.model_version = chosen
            raise

    async def _predict_at(self, version: int, body: bytes, request_id: str | None) -> PredictResult:
        answer = await self._request(
            "POST", f"{self._model_path(version)}:predict", request_id, content=body
        )
        try:
            assert isinstance(answer, dict)
            rows = answer["predictions"]
            probabilities = np.asarray(
                [row[OUTPUT_PROBABILITIES] if isinstance(row, dict) else row for row in rows],
                dtype=np.float32,
            )
            if probabilities.ndim != 2 or probabilities.shape[1] != 10:
                raise ValueError(f"probabilities of shape {probabilities.shape}")
        except (AssertionError, KeyError, TypeError, ValueError) as exc:
            raise UpstreamError(
                f"The model server's answer does not have the expected shape ({exc})."
            ) from exc
        return PredictResult(probabilities, version)
