"""Prometheus metrics of the gateway, in a registry per app so tests stay independent.

With several worker processes (`python -m gateway --workers N`), prometheus_client's
multiprocess mode keeps each worker's values in PROMETHEUS_MULTIPROC_DIR and a scrape of
any worker reports the sum over all of them.
"""

import os
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from gateway.config import MULTIPROCESS_DIR_VARIABLE

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class GatewayMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "gateway_requests",
            "HTTP requests by route, method and status.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "gateway_request_duration_seconds",
            "Time from request to response, by route.",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.preprocess = Histogram(
            "gateway_preprocess_duration_seconds",
            "Decoding and MNIST normalisation time per image.",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.upstream = Histogram(
            "gateway_upstream_duration_seconds",
            "TF Serving :predict call time (version lookup included), by outcome, model "
            "version and track (primary, canary or pinned by the request).",
            ["outcome", "model_version", "track"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.canary_fallbacks = Counter(
            "gateway_canary_fallbacks",
            "Requests the canary failed (by error kind) and the primary served instead.",
            ["reason"],
            registry=self.registry,
        )
        self.feedback = Counter(
            "gateway_feedback",
            "Stored feedback by the digit predicted (none: not sent) and the digit given.",
            ["predicted_digit", "given_digit"],
            registry=self.registry,
        )
        self.errors = Counter(
            "gateway_errors",
            "Failed requests by kind (invalid_image, upstream_timeout, ...).",
            ["kind"],
            registry=self.registry,
        )
        self.digits = Counter(
            "gateway_predicted_digit",
            "Predicted digits by model version: watch for drift.",
            ["digit", "model_version"],
            registry=self.registry,
        )
        self.confidence = Histogram(
            "gateway_prediction_confidence",
            "Confidence of answered predictions by model version.",
            ["model_version"],
            buckets=(0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 0.99, 0.999, 1.0),
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "gateway_in_flight_requests",
            "Prediction and feedback requests being handled now.",
            registry=self.registry,
            multiprocess_mode="livesum",
        )
        # `labels()` builds and looks up its key under a lock on every call; the label sets
        # are few, so each child is looked up once (a hot-path observation costs ~3 us).
        self._children: dict[tuple[Any, ...], Any] = {}

    def child(self, metric: Any, *labels: str) -> Any:
        """`metric.labels(*labels)`, looked up once."""
        key = (id(metric), *labels)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*labels)
        return found

    def exposition(self) -> bytes:
        """The text format of every worker's metrics (or of this process's, when alone)."""
        if not os.environ.get(MULTIPROCESS_DIR_VARIABLE):
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)


ERROR_KINDS = "error_kinds"  # the key in a request's ASGI state


def note_error(state: dict[str, Any], kind: str) -> None:
    """Note an error of this request (or of one file of a batch). The middleware is the one
    writer of `gateway_errors`: it counts the noted kinds when the answer has been sent."""
    state.setdefault(ERROR_KINDS, []).append(kind)


def worker_stopped() -> None:
    """Drop this worker's live gauges from the shared figures."""
    if os.environ.get(MULTIPROCESS_DIR_VARIABLE):
        multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]
