"""Which loaded version a request goes to: the one resolver behind /predict, /model and
/readyz.

A pin names a version, a label or neither: then the version labelled `stable` when the model
has that label, so a canary loaded beside it gets no unpinned traffic before a label names
it, else the newest AVAILABLE version. Answers are kept for `cache_s`; after that the kept
answer still serves while one background lookup renews it, so no request waits for a status
call once the first has been made. A version unloaded in between answers :predict with 404,
and the caller asks again with `refresh=True`. Each pin has its own lock: a slow or missing
canary label never holds up the primary's lookups.
"""

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from contract import STABLE_LABEL
from gateway.errors import GatewayError, UpstreamUnavailable
from gateway.pins import Pin
from gateway.serving_client import LabelNotSet, TFServingClient, VersionInfo

logger = logging.getLogger(__name__)
NEWEST = Pin(None, None)  # no version, no label: the stable label's version, else the newest
# Callers may pin any number: only versions found loaded are kept, and only this many.
MAX_KEPT_PINS = 64


@dataclass(frozen=True, slots=True)
class Lookup:
    """What a pin resolved to (None: nothing loaded for it then), and when it was looked up."""

    found: VersionInfo | None
    at: float


class VersionResolver:
    def __init__(
        self,
        client: TFServingClient,
        cache_s: float,
        canary_label: str | None,
        clock: Callable[[], float],
    ) -> None:
        self._client = client
        self._cache_s = cache_s
        self._canary_label = canary_label
        self._clock = clock
        # Keyed by the pin without `requested`: the same version, whoever pinned it.
        self._kept: dict[Pin, Lookup] = {}
        self._locks: dict[Pin, asyncio.Lock] = {}
        self._renewals: dict[Pin, asyncio.Task[None]] = {}

    async def resolve(
        self, pin: Pin = NEWEST, *, refresh: bool = False, request_id: str | None = None
    ) -> VersionInfo:
        """The loaded version a pin names now.

        Raises:
            UpstreamUnavailable: nothing is loaded for the pin.
        """
        key = pin._replace(requested=False) if pin.requested else pin
        kept = self._kept.get(key)
        if kept is not None and not refresh:
            if self._clock() - kept.at >= self._cache_s and key not in self._renewals:
                self._renewals[key] = asyncio.create_task(self._renew(key))
            return self._found(kept.found, key)
        asked = self._clock()
        async with self._locks.setdefault(key, asyncio.Lock()):
            kept = self._kept.get(key)
            if kept is not None and kept.at >= asked:  # looked up while this one waited
                return self._found(kept.found, key)
            info = await self._look_up(key, request_id)
        return self._found(info, key)

    async def _look_up(self, key: Pin, request_id: str | None) -> VersionInfo | None:
        version, label, _ = key
        try:
            if version is None and label is None:
                info = await self._stable_or_newest(request_id)
            else:
                info = await self._client.version_info(version, label, request_id)
        except LabelNotSet:
            info = None
        if info is not None or (label is not None and label == self._canary_label):
            # A canary label may be absent for days: that is kept as well, so the canary's
            # share of requests does not each ask TF Serving again. Other pins from
            # requests are not kept when absent: any number or name can be sent.
            if len(self._kept) >= MAX_KEPT_PINS and key not in self._kept:
                self._kept.clear()
            self._kept[key] = Lookup(info, self._clock())
        else:
            self._kept.pop(key, None)
        return info

    async def _stable_or_newest(self, request_id: str | None) -> VersionInfo | None:
        """The stable label's version (None while it is not loaded: never another one in
        its place), or with no such label the newest AVAILABLE version."""
        try:
            return await self._client.version_info(None, STABLE_LABEL, request_id)
        except LabelNotSet:
            pass
        statuses = await self._client.model_status(request_id=request_id)
        available = [s.version for s in statuses if s.state == "AVAILABLE"]
        if not available:
            return None
        return await self._client.version_info(max(available), request_id=request_id)

    async def _renew(self, key: Pin) -> None:
        try:
            async with self._locks.setdefault(key, asyncio.Lock()):
                await self._look_up(key, None)
        except GatewayError as exc:  # the next request after this one tries again
            logger.info("Renewing the version of pin %s failed: %s", key, exc.detail)
        finally:
            del self._renewals[key]

    def _found(self, info: VersionInfo | None, pin: Pin) -> VersionInfo:
        if info is not None:
            return info
        name = self._client.model_name
        if pin.version is not None:
            what = f"Model version {pin.version} of {name!r} is not available"
        elif pin.label is not None:
            what = f"The label {pin.label!r} of model {name!r} has no available version"
        else:
            what = (
                f"The model {name!r} has no available version (or its {STABLE_LABEL!r} "
                "label's version is not loaded)"
            )
        raise UpstreamUnavailable(f"{what} yet; try again shortly.")

    async def close(self) -> None:
        renewals = list(self._renewals.values())
        for task in renewals:
            task.cancel()
        await asyncio.gather(*renewals, return_exceptions=True)
