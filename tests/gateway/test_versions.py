"""VersionResolver (gateway/versions.py) with a fake client: which version a pin resolves
to, how long answers are kept, background renewal, shared lookups and per-pin locks.

Time is a fake clock given to the resolver, so "after cache_s" needs no sleeping;
background renewals are awaited by polling the fake client's call counts, and "no renewal"
is checked once every task a resolve started has run to its end."""

import asyncio
from collections.abc import Callable, Iterator

import pytest

from gateway.errors import UpstreamUnavailable
from gateway.pins import Pin
from gateway.serving_client import LabelNotSet, VersionInfo, VersionStatus
from gateway.versions import VersionResolver

pytestmark = pytest.mark.anyio
CACHE_S = 10.0


class FakeClient:
    """model_status and version_info as TFServingClient answers them, counting calls.

    A lookup whose key is in `gates` waits for that event: "status", "version:<n>" or
    "label:<name>"."""

    model_name = "mnist"

    def __init__(self) -> None:
        self.states: dict[int, str] = {1: "AVAILABLE"}
        self.labels: dict[str, int] = {}
        self.status_calls = 0
        self.info_calls: list[tuple[int | None, str | None]] = []
        self.gates: dict[str, asyncio.Event] = {}
        self.failure: Exception | None = None
        self.cancelled = 0

    async def _lookup(self, key: str) -> None:
        gate = self.gates.get(key)
        if gate is not None:
            try:
                await gate.wait()
            except asyncio.CancelledError:
                self.cancelled += 1
                raise
        if self.failure is not None:
            raise self.failure

    async def model_status(
        self, version: int | None = None, request_id: str | None = None
    ) -> list[VersionStatus]:
        self.status_calls += 1
        await self._lookup("status")
        return [VersionStatus(v, state) for v, state in sorted(self.states.items())]

    async def version_info(
        self, version: int | None = None, label: str | None = None, request_id: str | None = None
    ) -> VersionInfo | None:
        self.info_calls.append((version, label))
        await self._lookup(f"label:{label}" if label is not None else f"version:{version}")
        if label is not None:
            if label not in self.labels:
                raise LabelNotSet(label)
            version = self.labels[label]
        if version is None or self.states.get(version) != "AVAILABLE":
            return None
        return VersionInfo(version, takes_pixels=True)


class Clock:
    """Seconds that pass only when a test moves `now`."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def fake() -> FakeClient:
    return FakeClient()


@pytest.fixture
def resolver(fake: FakeClient, clock: Clock) -> Iterator[VersionResolver]:
    yield VersionResolver(fake, CACHE_S, "canary", clock)  # type: ignore[arg-type]


async def until(condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
    """Let background tasks run until `condition` holds."""
    for _ in range(int(timeout_s / 0.005)):
        if condition():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("the background lookup never happened")


class Background:
    """The tasks started since this was made (a renewal is one): `settle` runs them all to
    their end, so what did not happen was never going to, whatever the machine's speed."""

    def __init__(self) -> None:
        self.before = asyncio.all_tasks()

    async def settle(self) -> None:
        while started := asyncio.all_tasks() - self.before:  # all_tasks: those not done
            await asyncio.gather(*started, return_exceptions=True)


async def test_newest_available_version_is_chosen(
    fake: FakeClient, resolver: VersionResolver
) -> None:
    fake.states = {1: "AVAILABLE", 2: "AVAILABLE", 3: "AVAILABLE", 4: "LOADING", 5: "END"}

    assert await resolver.resolve() == VersionInfo(3, takes_pixels=True)
    # No stable label: the newest AVAILABLE version.
    assert fake.info_calls == [(None, "stable"), (3, None)]


async def test_stable_label_wins_over_newer_versions(
    fake: FakeClient, resolver: VersionResolver
) -> None:
    fake.states = {1: "AVAILABLE", 2: "AVAILABLE", 3: "AVAILABLE"}
    fake.labels = {"stable": 1, "canary": 2}

    assert await resolver.resolve() == VersionInfo(1, takes_pixels=True)
    assert fake.status_calls == 0


async def test_stable_label_not_loaded_is_unavailable_never_another_version(
    fake: FakeClient, resolver: VersionResolver
) -> None:
    """A restarting TF Serving may load the canary before the stable version: until stable
    loads, unpinned requests wait for it rather than go to the canary."""
    fake.states = {1: "LOADING", 2: "AVAILABLE"}
    fake.labels = {"stable": 1, "canary": 2}

    with pytest.raises(UpstreamUnavailable, match="'stable' label's version is not loaded"):
        await resolver.resolve()


async def test_nothing_available_is_upstream_unavailable(
    fake: FakeClient, resolver: VersionResolver
) -> None:
    fake.states = {1: "LOADING", 2: "END"}

    with pytest.raises(UpstreamUnavailable, match="'mnist' has no available version"):
        await resolver.resolve()

    assert fake.info_calls == [(None, "stable")]


async def test_pinned_version_and_label_resolve_through_metadata(
    fake: FakeClient, resolver: VersionResolver
) -> None:
    fake.states = {1: "AVAILABLE", 2: "AVAILABLE"}
    fake.labels = {"stable": 1}

    assert (await resolver.resolve(Pin(2, None))).version == 2
    assert (await resolver.resolve(Pin(None, "stable"))).version == 1
    assert fake.status_calls == 0
    assert fake.info_calls == [(2, None), (None, "stable")]


async def test_answer_is_kept_for_cache_s(
    fake: FakeClient, resolver: VersionResolver, clock: Clock
) -> None:
    first = await resolver.resolve()
    fake.states = {1: "AVAILABLE", 2: "AVAILABLE"}
    clock.now += CACHE_S - 0.1
    background = Background()

    second = await resolver.resolve()
    await background.settle()  # a renewal, had one started, has run

    assert first == second == VersionInfo(1, takes_pixels=True)
    assert (fake.status_calls, len(fake.info_calls)) == (1, 2)


async def test_after_cache_s_kept_answer_is_served_at_once_and_renewed_once_in_background(
    fake: FakeClient, resolver: VersionResolver, clock: Clock
) -> None:
    await resolver.resolve()
    fake.states = {1: "AVAILABLE", 2: "AVAILABLE"}
    clock.now += CACHE_S
    background = Background()

    stale = await resolver.resolve()
    assert fake.status_calls == 1  # answered without waiting for a lookup
    again = await resolver.resolve()
    await background.settle()  # every renewal either resolve started has run

    assert stale.version == again.version == 1
    assert fake.status_calls == 2  # one renewal for both requests
    assert (await resolver.resolve()).version == 2
    assert fake.status_calls == 2  # the renewed answer is fresh


async def test_refresh_looks_up_again_within_cache_s(
    fake: FakeClient, resolver: VersionResolver, clock: Clock
) -> None:
    await resolver.resolve()
    fake.states = {1: "AVAILABLE", 2: "AVAILABLE"}
    clock.now += 1.0  # well within cache_s

    refreshed = await resolver.resolve(refresh=True)

    assert refreshed.version == 2
    assert fake.status_calls == 2
    assert (await resolver.resolve()).version == 2  # and the fresh answer is kept
    assert fake.status_calls == 2


async def test_concurrent_resolves_share_one_lookup(
    fake: FakeClient, resolver: VersionResolver
) -> None:
    gate = fake.gates["status"] = asyncio.Event()
    waiting = [asyncio.create_task(resolver.resolve()) for _ in range(5)]
    # The tasks run in order on the loop's next turn: the first reaches the gated lookup,
    # the other four wait behind it on the pin's lock.
    await until(lambda: fake.status_calls >= 1)

    gate.set()
    answers = await asyncio.gather(*waiting)

    assert answers == [VersionInfo(1, takes_pixels=True)] * 5
    assert (fake.status_calls, len(fake.info_calls)) == (1, 2)


async def test_unknown_label_is_unavailable_and_not_kept(
    fake: FakeClient, resolver: VersionResolver
) -> None:
    for _ in range(2):
        with pytest.raises(UpstreamUnavailable, match="The label 'nightly' of model 'mnist'"):
            await resolver.resolve(Pin(None, "nightly"))
    fake.labels = {"nightly": 1}

    assert (await resolver.resolve(Pin(None, "nightly"))).version == 1
    assert fake.info_calls == [(None, "nightly")] * 3


async def test_canary_label_absence_is_kept_and_renewed_in_background(
    fake: FakeClient, resolver: VersionResolver, clock: Clock
) -> None:
    for _ in range(3):
        with pytest.raises(UpstreamUnavailable, match="'canary'"):
            await resolver.resolve(Pin(None, "canary"))
    assert fake.info_calls == [(None, "canary")]

    fake.labels = {"canary": 1}
    clock.now += CACHE_S
    with pytest.raises(UpstreamUnavailable):  # the kept answer, while it is renewed
        await resolver.resolve(Pin(None, "canary"))
    await until(lambda: len(fake.info_calls) == 2)

    assert (await resolver.resolve(Pin(None, "canary"))).version == 1


async def test_failed_renewal_keeps_serving_the_kept_answer_and_is_tried_again(
    fake: FakeClient, resolver: VersionResolver, clock: Clock
) -> None:
    await resolver.resolve()
    clock.now += CACHE_S
    fake.failure = UpstreamUnavailable("The model server is unreachable")

    def lookups() -> int:
        return fake.info_calls.count((None, "stable"))

    assert (await resolver.resolve()).version == 1
    await until(lambda: lookups() == 2)
    fake.failure = None
    fake.states = {1: "AVAILABLE", 2: "AVAILABLE"}

    assert (await resolver.resolve()).version == 1  # still the kept answer: renewal failed
    await until(lambda: fake.status_calls == 2)
    assert (await resolver.resolve()).version == 2


async def test_slow_canary_lookup_does_not_hold_up_the_primary(
    fake: FakeClient, resolver: VersionResolver
) -> None:
    gate = fake.gates["label:canary"] = asyncio.Event()
    fake.labels = {"canary": 1}
    canary = asyncio.create_task(resolver.resolve(Pin(None, "canary")))
    await until(lambda: (None, "canary") in fake.info_calls)

    primary = await asyncio.wait_for(resolver.resolve(), timeout=5)

    assert primary.version == 1
    assert not canary.done()
    gate.set()
    assert (await canary).version == 1


async def test_close_cancels_renewals(
    fake: FakeClient, resolver: VersionResolver, clock: Clock
) -> None:
    await resolver.resolve()
    fake.gates["status"] = asyncio.Event()  # the renewal will hang until cancelled
    clock.now += CACHE_S
    await resolver.resolve()
    await until(lambda: fake.status_calls == 2)

    await asyncio.wait_for(resolver.close(), timeout=5)

    assert fake.cancelled == 1


@pytest.mark.parametrize(
    "canary_label",
    [
        pytest.param("canary", id="canary-on"),
        pytest.param(None, id="canary-off"),
    ],
)
@pytest.mark.parametrize(
    "version",
    [pytest.param(7, id="explicit-version"), pytest.param(None, id="newest")],
)
async def test_absent_version_is_not_kept(
    fake: FakeClient, clock: Clock, canary_label: str | None, version: int | None
) -> None:
    resolver = VersionResolver(fake, CACHE_S, canary_label, clock)  # type: ignore[arg-type]
    fake.states = {}

    with pytest.raises(UpstreamUnavailable):
        await resolver.resolve(Pin(version, None))
    fake.states = {7: "AVAILABLE"}

    # Loaded a moment later: found by the next request, not after cache_s.
    assert (await resolver.resolve(Pin(version, None))).version == 7
