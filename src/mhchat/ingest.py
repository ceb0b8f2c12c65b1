"""The ingest worker: drains the bus in batches, stores each batch in one transaction, and
runs the decision handlers inside that same transaction.

dedupe -> store -> handlers (threads, policies -> ledger) -> commit -> acknowledge -> observers

Each handler runs under its own SAVEPOINT: a handler that raises is rolled back alone and
reported to the error hook, while the stored events and the other handlers' work commit; it is
then given the batch again one post or event at a time, so that one post it cannot take does
not cost the others their triage. A batch the store itself refuses (text no database can
hold) is stored envelope by envelope and event by event: only what fails alone is set aside.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import structlog

from mhchat.adapters import Checkpoint
from mhchat.bus import Bus, Envelope
from mhchat.clock import Clock
from mhchat.events import Event
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
    refused_events: int = 0
    """Events the store refused even alone (set aside and logged; the rest were stored)."""
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
        if await self._attempt(envelopes):
            return
        # The store refused something in the batch itself (text no database can hold, a number
        # beyond its integers): retrying the batch would fail for ever and hold back every
        # platform behind it. Store the envelopes one by one, and the events of a refused
        # envelope one by one; what the store refuses alone is set aside, counted and logged.
        for envelope in envelopes:
            if len(envelopes) > 1 and await self._attempt([envelope]):
                continue
            for event in envelope.events:
                single = Envelope(platform=envelope.platform, events=[event], checkpoint=None)
                if len(envelope.events) == 1 or not await self._attempt([single]):
                    self._refuse(envelope.platform, event)
            # Its cursor, its acknowledgement, and whoever waits for it to be stored.
            await self._attempt(
                [
                    Envelope(
                        platform=envelope.platform,
                        events=[],
                        checkpoint=envelope.checkpoint,
                        stored=envelope.stored,
                        settle=envelope.settle,
                    )
                ]
            )

    async def _attempt(self, envelopes: list[Envelope]) -> bool:
        """Process, retrying what may pass later; False when the store refuses the content.

        A store failure (disk full, locked database, lost connection) must not lose events:
        keep the batch and retry with a growing delay; the adapters are held back by the full
        queue. A durable bus is handed the batch back for redelivery instead.
        """
        delay = self.retry_delay
        while True:
            try:
                await self.process(envelopes)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the worker must survive store errors
                self.stats.store_errors += 1
                self.error_hook("ingest.store", exc)
                if refused_content(exc):
                    return False
                if envelopes and all(env.settle is not None for env in envelopes):
                    await self._settle(envelopes, ack=False, delay=delay)
                    return True
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
            else:
                return True

    def _refuse(self, platform: str, event: Event) -> None:
        self.stats.refused_events += 1
        post = getattr(event, "post", None)
        log.error(
            "event_refused_by_store",
            platform=platform,
            kind=type(event).__name__,
            remote_id=getattr(post, "remote_id", None) or getattr(event, "remote_id", None),
        )

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
        failure = await self._try_handler(tx, handler, batch)
        if failure is None:
            return
        self.stats.handler_errors += 1
        self.error_hook(f"handler.{handler.name}", failure)
        parts = batch.parts()
        if len(parts) < 2:
            return
        # One post the handler cannot take must not cost the others of its batch their triage
        # (a crisis post among them would get no flag): take them one at a time.
        failed = 0
        for part in parts:
            failure = await self._try_handler(tx, handler, part)
            if failure is not None:
                failed += 1
                self.stats.handler_errors += 1
                self.error_hook(f"handler.{handler.name}", failure)
        log.warning(
            "handler_took_batch_by_parts", handler=handler.name, parts=len(parts), failed=failed
        )

    async def _try_handler(
        self, tx: Tx, handler: BatchHandler, batch: StoredBatch
    ) -> Exception | None:
        """Run one handler under its own savepoint; what it raised, after rolling it back."""
        await tx.execute("SAVEPOINT handler")
        try:
            await handler.handle(tx, batch)
        except Exception as exc:  # noqa: BLE001 - one failing handler must not stop the others
            await tx.execute("ROLLBACK TO SAVEPOINT handler")
            await tx.execute("RELEASE SAVEPOINT handler")
            return exc
        await tx.execute("RELEASE SAVEPOINT handler")
        return None


_REFUSED_CONTENT = (
    UnicodeError,  # text no UTF-8 can hold (a lone surrogate)
    OverflowError,  # a number beyond the database's integers
    sqlite3.DataError,
    sqlite3.IntegrityError,
    sqlite3.InterfaceError,  # a value of a type SQLite cannot bind
)


def refused_content(exc: BaseException) -> bool:
    """Whether the store refused what it was given (so the same batch can never pass), rather
    than failed to write (disk, lock, connection: worth retrying). Only errors that name the
    data count: a failure of the database or of the code is retried, never set aside."""
    if isinstance(exc, _REFUSED_CONTENT):
        return True
    # PostgreSQL (asyncpg): class 22 is a data exception, 23 an integrity violation.
    return str(getattr(exc, "sqlstate", "") or "").startswith(("22", "23"))
