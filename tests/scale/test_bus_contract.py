"""The bus contract, run against the in-process queue and NATS JetStream alike.

Bounded intake (back-pressure, never a silent drop), stored before acknowledged, redelivery
after a failed store, and a double-published event stored once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

import pytest

from mhchat.adapters import Checkpoint
from mhchat.bus import Bus, BusFull, BusSink, Envelope, EventBus
from mhchat.bus_nats import JetStreamBus
from mhchat.config import BusSettings
from mhchat.events import PostReceived
from mhchat.ingest import IngestWorker
from mhchat.store.db import Database, SqliteDatabase
from mhchat.testing import FAKE, FakeClock, make_post

from .conftest import NATS_URL, require_nats, unique

pytestmark = pytest.mark.scale


def post_event(i: int | str) -> PostReceived:
    return PostReceived(post=make_post(str(i)))


def jetstream_settings(**overrides: Any) -> BusSettings:
    name = unique("MHCHAT_TEST")
    base = BusSettings(
        backend="nats",
        nats_url=NATS_URL,
        stream=name,
        subject_prefix=name.lower(),
        ack_wait_seconds=1.0,
        max_ack_pending=100,
        capacity=100,
    )
    return replace(base, **overrides)


BusFactory = Callable[..., Any]


@pytest.fixture(params=["memory", "nats"])
async def make_bus(request: pytest.FixtureRequest) -> AsyncIterator[BusFactory]:
    """``await make_bus(bound=N)``: a bus that holds at most N waiting one-event envelopes."""
    made: list[JetStreamBus] = []

    async def factory(bound: int = 1000, **overrides: Any) -> Bus:
        if request.param == "memory":
            return EventBus(capacity=bound)
        require_nats()
        bus = JetStreamBus(
            jetstream_settings(max_stream_messages=bound, **overrides), chat_id="default"
        )
        await bus.connect()
        made.append(bus)
        return bus

    try:
        yield factory
    finally:
        for bus in made:
            with contextlib.suppress(Exception):
                await bus.js.delete_stream(bus.settings.stream)
            await bus.aclose()


async def stored_ids(db: Database) -> list[str]:
    async with db.read() as tx:
        rows = await tx.fetchall("SELECT remote_id FROM posts ORDER BY remote_id")
    return [str(r[0]) for r in rows]


def worker(bus: Bus, db: Database, **kwargs: Any) -> IngestWorker:
    return IngestWorker(
        bus=bus, db=db, clock=FakeClock(), chat_id="default", retry_delay=0.05, **kwargs
    )


async def run_until(w: IngestWorker, done: Callable[[], Any], within: float = 15.0) -> None:
    task = asyncio.create_task(w.run())
    try:
        async with asyncio.timeout(within):
            while not await done():  # noqa: ASYNC110 - polls the database
                await asyncio.sleep(0.05)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_a_full_bus_refuses_visibly_and_takes_again_once_drained(
    make_bus: BusFactory, db: SqliteDatabase
) -> None:
    bus = await make_bus(bound=3)
    sink = BusSink(bus, FAKE)
    for i in range(3):
        await sink.publish([post_event(i)])
    with pytest.raises(BusFull):
        await bus.put(Envelope(FAKE, (post_event(3),), None), timeout=0.3)
    assert bus.stats.refused >= 1
    assert sink.offer([post_event(4)]) is None
    w = worker(bus, db)

    async def three() -> bool:
        return len(await stored_ids(db)) == 3

    await run_until(w, three)
    # Room again: the refused event can now be taken.
    await bus.put(Envelope(FAKE, (post_event(3),), None), timeout=5)

    async def four() -> bool:
        return len(await stored_ids(db)) == 4

    await run_until(w, four)
    assert await stored_ids(db) == ["0", "1", "2", "3"]


async def test_events_are_acknowledged_only_after_they_are_stored(
    make_bus: BusFactory, db: SqliteDatabase
) -> None:
    bus = await make_bus()
    sink = BusSink(bus, FAKE)
    await sink.publish(
        [post_event(i) for i in range(20)], checkpoint=Checkpoint(key="cursor", value="20")
    )
    seen_in_store: list[int] = []

    class Probe:
        """Counts what is stored at the moment each acknowledgement happens."""

        def __init__(self, inner: Any) -> None:
            self.inner = inner

        async def ack(self) -> None:
            seen_in_store.append(len(await stored_ids(db)))
            await self.inner.ack()

        async def nak(self, delay: float) -> None:
            await self.inner.nak(delay)

    class ProbingBus:
        def __getattr__(self, name: str) -> Any:
            return getattr(bus, name)

        async def get_batch(self, max_events: int) -> list[Envelope]:
            batch: list[Envelope] = await bus.get_batch(max_events)
            for env in batch:
                if env.settle is not None:
                    env.settle = Probe(env.settle)
            return batch

    w = worker(ProbingBus(), db)

    async def stored_all() -> bool:
        return len(await stored_ids(db)) == 20

    await run_until(w, stored_all)
    async with db.read() as tx:
        cursor = await tx.fetchone("SELECT value FROM adapter_state WHERE key = 'cursor'")
    assert cursor == ("20",)
    if isinstance(bus, JetStreamBus):
        # 20 events and the cursor: the k-th acknowledgement comes with at least k stored.
        assert len(seen_in_store) == 21
        assert all(n >= min(k + 1, 20) for k, n in enumerate(seen_in_store))
        await asyncio.sleep(0.2)
        assert await bus.consumer_pending() == (0, 0)
    else:
        await asyncio.wait_for(bus.join(), 2)


class FlakyDb:
    """A database whose first ``failures`` write transactions fail (disk full, lost link)."""

    def __init__(self, inner: Database, failures: int) -> None:
        self.inner = inner
        self.failures = failures
        self.dialect = inner.dialect

    @asynccontextmanager
    async def write(self) -> AsyncIterator[Any]:
        if self.failures > 0:
            self.failures -= 1
            raise OSError("database unreachable")
        async with self.inner.write() as tx:
            yield tx

    def read(self) -> Any:
        return self.inner.read()


async def test_a_failed_store_is_redelivered_and_stored_once(
    make_bus: BusFactory, db: SqliteDatabase
) -> None:
    bus = await make_bus()
    await BusSink(bus, FAKE).publish([post_event(i) for i in range(5)])
    flaky = FlakyDb(db, failures=2)
    w = worker(bus, flaky)  # type: ignore[arg-type]

    async def stored_all() -> bool:
        return len(await stored_ids(db)) == 5

    await run_until(w, stored_all)
    assert w.stats.store_errors == 2
    assert await stored_ids(db) == ["0", "1", "2", "3", "4"]
    if isinstance(bus, JetStreamBus):
        await asyncio.sleep(0.2)
        assert await bus.consumer_pending() == (0, 0)


async def test_an_event_pulled_by_a_killed_worker_is_delivered_again(
    make_bus: BusFactory, db: SqliteDatabase
) -> None:
    """JetStream: a worker that dies between pull and commit loses nothing (ack_wait)."""
    bus = await make_bus()
    if not isinstance(bus, JetStreamBus):
        # The in-process queue dies with its process; its promise is the adapter's cursor,
        # saved only with the events (covered by the store contract).
        assert isinstance(bus, EventBus)
        return
    await BusSink(bus, FAKE).publish([post_event(i) for i in range(3)])
    pulled = await bus.get_batch(10)
    assert len(pulled) == 3  # pulled, never acknowledged: the worker "died" here
    w = worker(bus, db)

    async def stored_all() -> bool:
        return len(await stored_ids(db)) == 3

    await run_until(w, stored_all)
    assert await stored_ids(db) == ["0", "1", "2"]


async def test_a_double_published_event_is_stored_once(
    make_bus: BusFactory, db: SqliteDatabase
) -> None:
    bus = await make_bus()
    sink = BusSink(bus, FAKE)
    await sink.publish([post_event(1), post_event(2)])
    await sink.publish([post_event(2), post_event(3)])  # an adapter's overlap after reconnect
    w = worker(bus, db)

    async def stored_all() -> bool:
        return len(await stored_ids(db)) == 3

    await run_until(w, stored_all)
    await asyncio.sleep(0.3)
    assert await stored_ids(db) == ["1", "2", "3"]
    assert w.stats.stored == 3
    if isinstance(bus, JetStreamBus):
        # Dropped by the stream itself (message id = the post's id), before the store.
        assert bus.stats.extra.get("duplicates") == 1
        assert w.stats.events == 3


async def take_at_least(bus: JetStreamBus, n: int, patience: float = 10.0) -> list[Envelope]:
    """Batches from the bus until ``n`` envelopes came (or ``patience`` ran out)."""
    got: list[Envelope] = []
    async with asyncio.timeout(patience):
        while len(got) < n:
            got += await bus.get_batch(10)
    return got


async def test_jetstream_hands_out_at_most_max_ack_pending(db: SqliteDatabase) -> None:
    require_nats()
    bus = JetStreamBus(
        jetstream_settings(max_ack_pending=4, ack_wait_seconds=30.0), chat_id="default"
    )
    await bus.connect()
    try:
        await BusSink(bus, FAKE).publish([post_event(i) for i in range(10)])
        # A fetch returns what the server has delivered so far: on a loaded machine the four
        # may come in more than one batch. Nothing beyond four comes before an ack.
        first = await take_at_least(bus, 4)
        assert len(first) == 4
        waiting, handed_out = await bus.consumer_pending()
        assert (waiting, handed_out) == (6, 4)
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(1.5):
                await bus.get_batch(10)
        for env in first:
            assert env.settle is not None
            await env.settle.ack()
        second = await take_at_least(bus, 4)
        assert len(second) == 4
    finally:
        with contextlib.suppress(Exception):
            await bus.js.delete_stream(bus.settings.stream)
        await bus.aclose()
