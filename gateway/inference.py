"""Classifying normalised digits upstream: the canary draw, the version a pin resolves to,
one retry when that version was swapped out meanwhile, and the upstream metrics."""

import logging
import time
from dataclasses import dataclass

import numpy as np

from gateway.canary import TRACK_CANARY, TRACK_PINNED, TRACK_PRIMARY, CanarySplit
from gateway.errors import BadRequestParameters, GatewayError, UpstreamUnavailable
from gateway.metrics import GatewayMetrics
from gateway.pins import Pin
from gateway.serving_client import ModelOutput, TFServingClient, VersionInfo, VersionNotFound
from gateway.versions import VersionResolver

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Classified:
    outputs: list[ModelOutput]  # one per image
    model_version: int


class Classifier:
    def __init__(
        self,
        client: TFServingClient,
        resolver: VersionResolver,
        canary: CanarySplit,
        metrics: GatewayMetrics,
    ) -> None:
        self._client = client
        self._resolver = resolver
        self._canary = canary
        self._metrics = metrics

    async def classify(self, images: np.ndarray, pin: Pin, request_id: str) -> Classified:
        """Ask the canary (for its share of unpinned requests), else or on failure the pin.

        A canary failure of any kind is counted and the request served by the primary, so a
        bad canary never fails a user; only the primary's own errors reach them.
        """
        canary = self._canary
        if not pin.requested and canary.picks_canary():
            try:
                return await self._timed(images, Pin(None, canary.label), TRACK_CANARY, request_id)
            except GatewayError as exc:
                self._metrics.child(self._metrics.canary_fallbacks, exc.kind).inc()
                if canary.should_log_fallback():
                    logger.warning(
                        "Canary label %r failed (%s: %s); the primary serves instead "
                        "(logged once a minute, counted in gateway_canary_fallbacks_total).",
                        canary.label,
                        exc.kind,
                        exc.detail,
                    )
        track = TRACK_PINNED if pin.requested else TRACK_PRIMARY
        return await self._timed(images, pin, track, request_id)

    async def _timed(self, images: np.ndarray, pin: Pin, track: str, request_id: str) -> Classified:
        started = time.perf_counter()
        # Versions sent by callers never become label values (any number can be sent);
        # configured ones and those TF Serving named can.
        version = pin.version if track == TRACK_PRIMARY else None
        try:
            target = await self._resolve(pin, request_id)
            version = target.version
            try:
                outputs = await self._client.predict(images, target, request_id)
            except VersionNotFound:
                # Swapped out since it was looked up: look again, once.
                target = await self._resolve(pin, request_id, refresh=True)
                version = target.version
                try:
                    outputs = await self._client.predict(images, target, request_id)
                except VersionNotFound as exc:
                    raise UpstreamUnavailable(
                        "The model is being reloaded; try again shortly."
                    ) from exc
        except GatewayError as exc:
            self._observe(exc.kind, str(version) if version else "unknown", track, started)
            raise
        self._observe("ok", str(target.version), track, started)
        return Classified(outputs, target.version)

    def _observe(self, outcome: str, version: str, track: str, started: float) -> None:
        upstream = self._metrics.child(self._metrics.upstream, outcome, version, track)
        upstream.observe(time.perf_counter() - started)

    async def _resolve(self, pin: Pin, request_id: str, refresh: bool = False) -> VersionInfo:
        try:
            return await self._resolver.resolve(pin, refresh=refresh, request_id=request_id)
        except UpstreamUnavailable as exc:
            if pin.requested and pin.version is not None:
                # A version the caller asked for: their parameter, not our outage.
                raise BadRequestParameters(
                    f"Model version {pin.version} is not available; "
                    "see GET /model for the versions being served."
                ) from exc
            raise
