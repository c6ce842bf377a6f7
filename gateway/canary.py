"""The weighted canary: which requests try the canary label first (GATEWAY_CANARY_PERCENT)."""

import math
from collections.abc import Callable
from dataclasses import dataclass, field

# The `track` label of the upstream metrics: where a request was sent, and why.
TRACK_PRIMARY = "primary"  # no pin of its own: the configured version or label, else the newest
TRACK_CANARY = "canary"  # drawn for the canary label
TRACK_PINNED = "pinned"  # pinned by the request itself (query or header): never a canary
# A removed canary label fails every canary draw; one log line a minute is enough to see it.
FALLBACK_LOG_INTERVAL_S = 60.0


@dataclass(slots=True)
class CanarySplit:
    """Sends `percent` of the requests without a pin of their own to `label`.

    `draw` returns uniform numbers in [0, 1) and `clock` seconds (both given to create_app;
    tests pass a seeded generator and a fake clock).
    """

    percent: float
    label: str
    draw: Callable[[], float]
    clock: Callable[[], float]
    _last_log: float = field(default=-math.inf, repr=False)

    @property
    def enabled(self) -> bool:
        return self.percent > 0

    def picks_canary(self) -> bool:
        return self.percent > 0 and self.draw() * 100 < self.percent

    def should_log_fallback(self) -> bool:
        now = self.clock()
        if now - self._last_log < FALLBACK_LOG_INTERVAL_S:
            return False
        self._last_log = now
        return True
