"""The ingest worker: drains the bus in batches, stores each batch in one transaction, and
runs the decision handlers inside that same transaction.

dedupe -> store -> handlers (threads, policies -> ledger) -> commit -> acknowledge -> observers

Each handler runs under its own SAVEPOINT: a handler that raises is rolled back alone and
reported to the error hook, while the stored events and the other handlers' work commit.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import structlog

from mhchat.adapters import Checkpoint
from mhchat.bus import Bus, Envelope
from mhchat.clock import Clock
from mhchat.store.db import Database, Tx
from mhchat.store.posts import StoredBatch, save_events

log = structlog.get_logger("mhchat.ingest")


class BatchHandler(Protocol):
    """Decides what to do about newly stored events, in the ingest transaction."""

    name: str

    async def handle(self, tx: Tx, batch: StoredBatch) -> None: ...


Observer = Callable[[StoredBatch], Awaitable[None] | None]
"""Called after commit (live view, metrics). Must be quick; errors go to the error hook."""

ErrorHook = Callable[[str, BaseException], None]


@dataclass(slots=True)
class IngestStats:
    batches: int = 0
    events: int = 0
    stored: int = 0
    duplicates: int = 0
    handler_errors: int = 0
    store_errors: int = 0
    last_batch_seconds: float = 0.0


def default_error_hook(where: str, exc: BaseException) -> None:
    log.error("handler_failed", where=where, error_type=type(exc).__name__, exc_info=exc)


class IngestWorker:
    """One worker task; the only writer of inbound events."""

    def __init__(
        self,
        *,
        bus: Bus,
        db: Database,
        clock: Clock,
        chat_id: str,
        handlers: Sequence[BatchHandler] = (),
        observers: Sequence[Observer] = (),
        error_hook: ErrorHook = default_error_hook,
        max_batch: int = 500,
        keep_raw: bool = False,
        retry_delay: float = 0.5,
    ) -> None:
        self.bus = bus
        self.db = db
        self.clock = clock
        self.chat_id = chat_id
        self.handlers = list(handlers)
        self.observers = list(observers)
        self.error_hook = error_hook
        self.max_batch = max_batch
        self.keep_raw = keep_raw
        self.retry_delay = retry_delay
        self.stats = IngestStats()

    async def run(self) -> None:
        """Process batches until cancelled."""
        while True:
            batch = await self.bus.get_batch(self.max_batch)
            try:
                await self._process_with_retry(batch)
            finally:
                self.bus.task_done(len(batch))

    async def drain(self) -> None:
        """Process whatever is queued now, then return (used at shutdown and in tests)."""
        while True:
            items = self.bus.drain_nowait()
            if not items:
                return
            for start in range(0, len(items), 64):
                chunk = items[start : start + 64]
                try:
                    await self._process_with_retry(chunk)
                finally:
                    self.bus.task_done(len(chunk))

    async def _process_with_retry(self, envelopes: list[Envelope]) -> None:
        # A store failure (disk full, locked database) must not lose events: keep the batch
        # and retry with a growing delay; the adapters are held back by the full queue.
        delay = self.retry_delay
        while True:
            try:
                await self.process(envelopes)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the worker must survive store errors
                self.stats.store_errors += 1
                self.error_hook("ingest.store", exc)
                if envelopes and all(env.settle is not None for env in envelopes):
                    # A durable bus keeps the events: hand them back for redelivery.
                    await self._settle(envelopes, ack=False, delay=delay)
                    return
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
            else:
                return

    async def process(self, envelopes: list[Envelope]) -> StoredBatch:
        started = time.perf_counter()
        events = [e for env in envelopes for e in env.events]
        checkpoints: list[tuple[str, Checkpoint]] = [
            (env.platform, env.checkpoint) for env in envelopes if env.checkpoint is not None
        ]
        now = self.clock.now()
        async with self.db.write() as tx:
            batch = await save_events(
                tx,
                chat_id=self.chat_id,
                events=events,
                checkpoints=checkpoints,
                now=now,
                keep_raw=self.keep_raw,
            )
            if not batch.empty:
                for handler in self.handlers:
                    await self._run_handler(tx, handler, batch)
        self.stats.batches += 1
        self.stats.events += len(events)
        self.stats.stored += len(batch.new_posts)
        self.stats.duplicates += batch.duplicates
        self.stats.last_batch_seconds = time.perf_counter() - started
        for env in envelopes:
            if env.stored is not None and not env.stored.done():
                env.stored.set_result(None)
        # Acknowledge to a durable bus only now that the batch is committed.
        await self._settle(envelopes, ack=True)
        for observer in self.observers:
            try:
                result = observer(batch)
                if result is not None:
                    await result
            except Exception as exc:  # noqa: BLE001 - an observer must not stop ingest
                self.error_hook("ingest.observer", exc)
        return batch

    async def _settle(self, envelopes: list[Envelope], *, ack: bool, delay: float = 0.0) -> None:
        for env in envelopes:
            if env.settle is None:
                continue
            try:
                await (env.settle.ack() if ack else env.settle.nak(delay))
            except Exception as exc:  # noqa: BLE001 - an unacked event is redelivered, deduped
                self.error_hook("ingest.ack", exc)

    async def _run_handler(self, tx: Tx, handler: BatchHandler, batch: StoredBatch) -> None:
        await tx.execute("SAVEPOINT handler")
        try:
            await handler.handle(tx, batch)
        except Exception as exc:  # noqa: BLE001 - one failing handler must not stop the others
            await tx.execute("ROLLBACK TO SAVEPOINT handler")
            await tx.execute("RELEASE SAVEPOINT handler")
            self.stats.handler_errors += 1
            self.error_hook(f"handler.{handler.name}", exc)
        else:
            await tx.execute("RELEASE SAVEPOINT handler")
