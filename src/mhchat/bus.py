"""The in-process event bus: a bounded intake queue between adapters and the ingest worker.

Back-pressure is explicit: ``publish`` waits while the queue is full, ``offer`` refuses (a
webhook then answers 503 so the platform redelivers). Nothing is dropped silently; the number
of refusals is a visible counter.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from mhchat.adapters import Checkpoint
from mhchat.events import Event, PlatformName


class BusFull(Exception):
    """The bus could not take the events in time."""


class BusClosed(Exception):
    """The bus is shutting down and takes no more events."""


class Settle(Protocol):
    """How an envelope from a durable bus is acknowledged once stored, or handed back."""

    async def ack(self) -> None: ...

    async def nak(self, delay: float) -> None: ...


@dataclass(slots=True)
class Envelope:
    """Events from one adapter call, with the cursor that covers them."""

    platform: PlatformName
    events: Sequence[Event]
    checkpoint: Checkpoint | None
    stored: asyncio.Future[None] | None = None
    settle: Settle | None = None
    """Set by a durable bus (JetStream): acknowledged after commit, redelivered on failure."""


@dataclass(slots=True)
class BusStats:
    enqueued: int = 0
    refused: int = 0
    waited: int = 0
    depth_peak: int = 0
    extra: dict[str, int] = field(default_factory=dict)


class Bus(Protocol):
    """What the ingest worker, the sinks and /readyz need of a bus (in-process or JetStream)."""

    capacity: int
    stats: BusStats

    @property
    def depth(self) -> int: ...

    @property
    def full(self) -> bool: ...

    @property
    def closed(self) -> bool: ...

    def close(self) -> None: ...

    async def put(self, envelope: Envelope, timeout: float | None = None) -> None: ...

    def put_nowait(self, envelope: Envelope) -> bool: ...

    async def get_batch(self, max_events: int) -> list[Envelope]: ...

    def task_done(self, n: int) -> None: ...

    async def join(self) -> None: ...

    def drain_nowait(self) -> list[Envelope]: ...


class EventBus:
    """Bounded queue of envelopes. ``capacity`` counts envelopes, not events."""

    def __init__(self, capacity: int = 1000) -> None:
        self._queue: asyncio.Queue[Envelope] = asyncio.Queue(maxsize=capacity)
        self.capacity = capacity
        self.stats = BusStats()
        self._closed = False

    @property
    def depth(self) -> int:
        return self._queue.qsize()

    @property
    def full(self) -> bool:
        return self._queue.full()

    def close(self) -> None:
        """Stop taking new events; what is queued is still drained."""
        self._closed = True

    @property
    def closed(self) -> bool:
        return self._closed

    def _note(self) -> None:
        self.stats.enqueued += 1
        self.stats.depth_peak = max(self.stats.depth_peak, self._queue.qsize())

    async def put(self, envelope: Envelope, timeout: float | None = None) -> None:
        if self._closed:
            raise BusClosed("mhchat is shutting down")
        if not self._queue.full():
            # The common case: no wait, so no timeout scope (building one costs more than
            # the put itself).
            self._queue.put_nowait(envelope)
            self._note()
            return
        self.stats.waited += 1
        try:
            async with asyncio.timeout(timeout):
                await self._queue.put(envelope)
        except TimeoutError as exc:
            self.stats.refused += 1
            raise BusFull("the event queue stayed full") from exc
        self._note()

    def put_nowait(self, envelope: Envelope) -> bool:
        if self._closed or self._queue.full():
            self.stats.refused += 1
            return False
        self._queue.put_nowait(envelope)
        self._note()
        return True

    async def get_batch(self, max_events: int) -> list[Envelope]:
        """Wait for one envelope, then take what else is ready, up to ``max_events``."""
        first = await self._queue.get()
        batch = [first]
        count = len(first.events)
        while count < max_events and not self._queue.empty():
            env = self._queue.get_nowait()
            batch.append(env)
            count += len(env.events)
        return batch

    def task_done(self, n: int) -> None:
        for _ in range(n):
            self._queue.task_done()

    async def join(self) -> None:
        """Wait until every enqueued envelope has been processed (stored or failed)."""
        await self._queue.join()

    def drain_nowait(self) -> list[Envelope]:
        items: list[Envelope] = []
        while not self._queue.empty():
            items.append(self._queue.get_nowait())
        return items


class BusSink:
    """The ``EventSink`` port handed to one adapter."""

    def __init__(self, bus: Bus, platform: PlatformName) -> None:
        self._bus = bus
        self._platform = platform

    async def publish(
        self, events: Sequence[Event], *, checkpoint: Checkpoint | None = None
    ) -> None:
        await self._bus.put(Envelope(self._platform, tuple(events), checkpoint))

    async def publish_and_wait(
        self,
        events: Sequence[Event],
        *,
        checkpoint: Checkpoint | None = None,
        timeout: float | None = None,
    ) -> None:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        await self._bus.put(Envelope(self._platform, tuple(events), checkpoint, fut), timeout)
        async with asyncio.timeout(timeout):
            await asyncio.shield(fut)

    def offer(
        self, events: Sequence[Event], *, checkpoint: Checkpoint | None = None
    ) -> asyncio.Future[None] | None:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if not self._bus.put_nowait(Envelope(self._platform, tuple(events), checkpoint, fut)):
            return None
        return fut
