"""The gateway's only way to TF Serving: its REST API (contract 2), over gateway.upstream's
`Send`. Each method is one call; which version to call is decided in `gateway.versions`.

Failures become gateway errors: unreachable -> 503, timeout -> 504, an error answer -> 502.
What is *not there* (a version that is not loaded, a label that is not set) is not an error
of the server, and each method says how it reports it.
"""

import base64
import logging
from dataclasses import dataclass

import aiohttp
import numpy as np
import orjson

from contract import (
    NUM_CLASSES,
    OUTPUT_CONFIDENCE,
    OUTPUT_DIGIT,
    OUTPUT_PROBABILITIES,
    OUTPUT_REFUSAL,
    SIGNATURE_PIXELS,
)
from gateway.errors import UpstreamError, UpstreamTimeout, UpstreamUnavailable
from gateway.middleware import REQUEST_ID_HEADER
from gateway.upstream import Send

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class VersionStatus:
    version: int
    state: str
    error_message: str = ""


@dataclass(frozen=True, slots=True)
class VersionInfo:
    """A loaded version and whether it takes raw pixels (exported before that: it does not)."""

    version: int
    takes_pixels: bool


@dataclass(frozen=True, slots=True)
class ModelOutput:
    """One digit's outputs as the model computed them."""

    digit: int
    confidence: float
    probabilities: list[float]


class VersionNotFound(Exception):
    """TF Serving has no such version loaded (404): never loaded, or unloaded since."""


class LabelNotSet(Exception):
    """The model's config sets no such version label (TF Serving: 400, "Unrecognized
    servable version label")."""


def pixels_body(images: np.ndarray) -> bytes:
    """A :predict body for [n, 28, 28] digits in [0, 1]: 784 bytes each, base64, the compact
    form the `predict_pixels` signature takes (a tenth of the JSON floats' size)."""
    pixels = np.rint(images * 255.0).astype(np.uint8)
    instances = [{"b64": base64.b64encode(row.tobytes()).decode()} for row in pixels]
    return orjson.dumps({"signature_name": SIGNATURE_PIXELS, "instances": instances})


def floats_body(images: np.ndarray) -> bytes:
    """A :predict body for [n, 28, 28] digits for `serving_default`, which every version has."""
    return orjson.dumps({"instances": images[..., None]}, option=orjson.OPT_SERIALIZE_NUMPY)


class TFServingClient:
    """Speaks contract 2 to one model over `send` (an aiohttp session in service)."""

    def __init__(self, send: Send, base_url: str, model_name: str) -> None:
        self._send = send
        self._model_url = f"{base_url.rstrip('/')}/v1/models/{model_name}"
        self.model_name = model_name

    async def _call(
        self, method: str, path: str, request_id: str | None, content: bytes | None = None
    ) -> tuple[int, object]:
        """One call: its HTTP status and its JSON body (None when it is not JSON)."""
        headers = {"Content-Type": "application/json"} if content is not None else {}
        if request_id:
            headers[REQUEST_ID_HEADER.decode()] = request_id
        url = self._model_url + path
        try:
            try:
                status, answer = await self._send(method, url, headers, content)
            except RETRIED:
                # A pooled keep-alive connection the server closed a moment ago fails like
                # this; every call here is safe to repeat, so try once more on a new one.
                status, answer = await self._send(method, url, headers, content)
        except aiohttp.ConnectionTimeoutError as exc:
            raise _unreachable(exc) from exc
        except TimeoutError as exc:
            logger.warning("TF Serving timed out on %s %s", method, path, exc_info=True)
            raise UpstreamTimeout(
                "The model server did not answer in time; try again shortly."
            ) from exc
        except aiohttp.ClientError as exc:
            raise _unreachable(exc) from exc
        try:
            return status, orjson.loads(answer)
        except orjson.JSONDecodeError:
            return status, None

    def _failed(self, status: int, body: object, what: str) -> Exception:
        """The gateway error for an answer that is neither a success nor "not there"."""
        error = body.get("error") if isinstance(body, dict) else None
        if status == 503:  # not ready, or its batch queue is full
            return UpstreamUnavailable(
                f"The model server is unavailable or at capacity: {error or 'no JSON body'}."
            )
        logger.error("TF Serving answered %s to %s: %s", status, what, error)
        return UpstreamError(
            f"The model server answered with an error ({status}): {error or 'no JSON body'}."
        )

    async def model_status(
        self, version: int | None = None, request_id: str | None = None
    ) -> list[VersionStatus]:
        """Every version's state, or the one version's; [] when TF Serving knows none."""
        path = f"/versions/{version}" if version is not None else ""
        status, body = await self._call("GET", path, request_id)
        if status == 404:
            return []
        if status != 200 or not isinstance(body, dict):
            raise self._failed(status, body, "a status request")
        try:
            return [
                VersionStatus(
                    int(entry["version"]),
                    str(entry["state"]),
                    str(entry.get("status", {}).get("error_message", "")),
                )
                for entry in body["model_version_status"]
            ]
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise _unexpected("status", exc) from exc

    async def version_info(
        self, version: int | None = None, label: str | None = None, request_id: str | None = None
    ) -> VersionInfo | None:
        """The loaded version a number or label names, from its metadata; None when the
        version (or the label's version) is not loaded. TF Serving's status API ignores
        labels (it lists every version); its metadata API answers only for a loaded version:
        404 when none is, 400 when the label is not set.

        Raises:
            LabelNotSet: the label is not set at all.
        """
        path = f"/versions/{version}" if version is not None else f"/labels/{label}"
        status, body = await self._call("GET", f"{path}/metadata", request_id)
        if status == 404:
            return None
        if status == 400 and label is not None:
            raise LabelNotSet(label)
        if status != 200 or not isinstance(body, dict):
            raise self._failed(status, body, "a metadata request")
        try:
            signatures = body["metadata"]["signature_def"]["signature_def"]
            return VersionInfo(int(body["model_spec"]["version"]), SIGNATURE_PIXELS in signatures)
        except (KeyError, TypeError, ValueError) as exc:
            raise _unexpected("metadata", exc) from exc

    async def predict(
        self, images: np.ndarray, target: VersionInfo, request_id: str | None = None
    ) -> list[ModelOutput]:
        """Classify [n, 28, 28] digits in [0, 1] on one version, in one call.

        Raises:
            VersionNotFound: the version is not loaded (any more).
        """
        body = pixels_body(images) if target.takes_pixels else floats_body(images)
        status, answer = await self._call(
            "POST", f"/versions/{target.version}:predict", request_id, body
        )
        if status == 404:
            raise VersionNotFound(target.version)
        if status != 200 or not isinstance(answer, dict):
            raise self._failed(status, answer, f"a :predict on version {target.version}")
        try:
            return model_outputs(answer, len(images))
        except (KeyError, TypeError, ValueError) as exc:
            raise _unexpected("predict", exc) from exc


def model_outputs(answer: dict[str, object], rows: int) -> list[ModelOutput]:
    """The digits of a :predict answer in TF Serving's row format.

    The model's own digit and confidence are used, not computed again from the
    probabilities: the model is the one place that decides (its digit is the argmax)."""
    predictions = answer["predictions"]
    if not isinstance(predictions, list) or len(predictions) != rows:
        raise ValueError(f"not a list of {rows} predictions")
    outputs = []
    for row in predictions:
        if isinstance(row, dict) and row.get(OUTPUT_REFUSAL):  # older models have none
            raise ValueError(f"the model refused a digit the gateway read: {row[OUTPUT_REFUSAL]}")
        digit = row[OUTPUT_DIGIT]
        confidence = row[OUTPUT_CONFIDENCE]
        probabilities = row[OUTPUT_PROBABILITIES]
        if (
            type(digit) is not int
            or not 0 <= digit < NUM_CLASSES
            or not isinstance(confidence, float | int)
            or not isinstance(probabilities, list)
            or len(probabilities) != NUM_CLASSES
            or not all(isinstance(p, float | int) for p in probabilities)
        ):
            raise ValueError(
                f"a prediction without a digit, a confidence and {NUM_CLASSES} probabilities"
            )
        outputs.append(ModelOutput(digit, float(confidence), probabilities))
    return outputs


RETRIED = (
    aiohttp.ClientConnectorError,
    aiohttp.ConnectionTimeoutError,
    aiohttp.ServerDisconnectedError,
)


def _unreachable(exc: Exception) -> UpstreamUnavailable:
    logger.warning("TF Serving unreachable: %s", exc)
    return UpstreamUnavailable("The model server is unreachable; try again shortly.")


def _unexpected(answer: str, exc: Exception) -> UpstreamError:
    return UpstreamError(
        f"The model server's {answer} answer does not have the expected shape ({exc!r})."
    )
