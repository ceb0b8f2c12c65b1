"""The intake spool: webhook deliveries written to disk before they are acknowledged.

A platform that pushes (Meta's webhooks) wants a quick answer and retries what is not
answered 200. Parsing, storing and deciding a delivery takes far longer than receiving it, so
the webhook handler only checks the signature, appends the raw body here and answers; the
adapter's consumer reads the spool in large batches, publishes the events, and removes a
delivery only once its events are stored. A crash between the two leaves the delivery in the
spool, and it is processed after the restart (the store deduplicates on the platform's ids).

Writes are group-committed: the deliveries whose requests ran in one turn of the event loop
are written in one transaction at the end of that turn, so a burst costs one small
transaction per turn, not one per request. The spool is a SQLite file of its own (WAL,
``synchronous=NORMAL``, as the main store), so a long ingest transaction in the main store
never delays an acknowledgement. Its statements run on the event loop's own thread, on
purpose: an append to a WAL file is a few microseconds of page-cache writing, while a hop to
a worker thread and back costs far more under load (the thread waits for the GIL, up to the
interpreter's 5 ms switch interval, while the loop is busy).
The spool is bounded: when it holds ``capacity`` deliveries, ``put`` refuses and the
handler answers 503, which makes the platform deliver again later.

Intake comes first. Processing a delivery (parse, store, decide) costs several times what
receiving it does, so during a flood a reader that took its share at once would slow every
acknowledgement down to the speed of processing, and the platform would start to time out
and retry. ``wait`` therefore lets the readers in only when the intake pauses (no delivery
for ``quiet`` seconds), when the backlog is older than ``max_wait`` seconds, or when the
spool is half full. A live chat's deliveries come seconds apart, so there the reader starts
at once; only a flood is deferred, by at most ``max_wait``.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import structlog

log = structlog.get_logger("mhchat.spool")

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS spool ("
    " id INTEGER PRIMARY KEY,"
    " source TEXT NOT NULL,"
    " received_at TEXT NOT NULL,"
    " body BLOB NOT NULL)"
)
# No index on source: every insert would pay for it, and ``take`` reads in id order, which
# is the table's own order (one source in all but a [[chats]] deployment).
_DROP_OLD_INDEX = "DROP INDEX IF EXISTS spool_source"


class SpoolError(RuntimeError):
    """The spool could not be written: the delivery is not acknowledged."""


@dataclass(frozen=True, slots=True)
class Spooled:
    """One delivery waiting in the spool."""

    id: int
    received_at: datetime
    body: bytes


@dataclass(slots=True)
class _Pending:
    source: str
    received_at: str
    body: bytes
    done: asyncio.Future[None]


class Spool:
    """A durable, bounded queue of raw deliveries, per source (the adapter's platform)."""

    def __init__(
        self,
        path: str | Path,
        *,
        capacity: int = 100_000,
        max_wait: float = 30.0,
        quiet: float = 0.02,
    ) -> None:
        self.path = str(path)
        self.capacity = capacity
        self.max_wait = max_wait
        self.quiet = quiet
        self._puts = 0
        self._backlog_since: float | None = None
        self._conn: sqlite3.Connection | None = None
        self._pending: list[_Pending] = []
        self._flush_due = False
        self._depth: dict[str, int] = {}
        self._total = 0
        self._arrived: dict[str, asyncio.Event] = {}
        self.written = 0
        self.flushes = 0
        """Write transactions: each carries every delivery of one turn of the loop."""
        self.refused = 0
        self.write_failures = 0

    async def open(self) -> Spool:
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA busy_timeout=2000")
        # Checkpoints (which fsync) run after the reader's deletes, never inside an intake
        # flush: a flood is answered without them, and the reader runs when the flood pauses.
        conn.execute("PRAGMA wal_autocheckpoint=0")
        conn.execute(_SCHEMA)
        conn.execute(_DROP_OLD_INDEX)
        self._conn = conn
        rows = conn.execute("SELECT source, count(*) FROM spool GROUP BY source").fetchall()
        self._depth = {str(source): int(count) for source, count in rows}
        self._total = sum(self._depth.values())
        if self.depth():
            # Left from before a restart: it has waited long enough already.
            self._backlog_since = asyncio.get_running_loop().time() - self.max_wait
        return self

    def depth(self, source: str | None = None) -> int:
        """Deliveries written and not yet done (for one source, or all)."""
        if source is None:
            return self._total
        return self._depth.get(source, 0)

    async def put(self, source: str, body: bytes, received_at: datetime) -> bool:
        """Write one delivery; True once it is on disk, False when the spool is full.

        Raises ``SpoolError`` when the write failed (disk full, I/O error)."""
        if self.depth() + len(self._pending) >= self.capacity:
            self.refused += 1
            return False
        loop = asyncio.get_running_loop()
        self._puts += 1
        done: asyncio.Future[None] = loop.create_future()
        self._pending.append(_Pending(source, received_at.isoformat(), body, done))
        if not self._flush_due:
            self._flush_due = True
            loop.call_soon(self._flush)
        # A request cancelled while waiting (the client went away) cancels only its future:
        # the delivery is still written with its turn's batch.
        await done
        return True

    def _flush(self) -> None:
        self._flush_due = False
        batch, self._pending = self._pending, []
        if not batch:
            return
        try:
            self._write([(p.source, p.received_at, p.body) for p in batch])
        except Exception as exc:  # noqa: BLE001 - each waiting request answers 503
            self.write_failures += 1
            log.error("spool_write_failed", error_type=type(exc).__name__, count=len(batch))
            for p in batch:
                if not p.done.done():
                    p.done.set_exception(SpoolError(f"spool write failed: {exc}"))
                p.done.add_done_callback(_consume)
            return
        self.written += len(batch)
        self.flushes += 1
        if self._backlog_since is None:
            self._backlog_since = asyncio.get_running_loop().time()
        self._total += len(batch)
        for p in batch:
            self._depth[p.source] = self._depth.get(p.source, 0) + 1
            if not p.done.done():
                p.done.set_result(None)
        for source in {p.source for p in batch}:
            self._event(source).set()

    def _write(self, rows: list[tuple[str, str, bytes]]) -> None:
        conn = self._connection()
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.executemany(
                "INSERT INTO spool (source, received_at, body) VALUES (?, ?, ?)", rows
            )
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def _event(self, source: str) -> asyncio.Event:
        event = self._arrived.get(source)
        if event is None:
            event = self._arrived[source] = asyncio.Event()
        return event

    async def wait(self, source: str) -> None:
        """Return once the spool holds something for ``source`` and it is the reader's turn:
        the intake paused, the backlog waited ``max_wait``, or the spool is half full."""
        event = self._event(source)
        while self.depth(source) == 0:
            event.clear()
            await event.wait()
        while not self._pressing():
            # Quiet means no delivery arrived while the loop was free to take one: a reader's
            # own long batch must not count as a pause in the intake.
            before, waited = self._puts, 0.0
            while waited < self.quiet and self._puts == before and not self._pressing():
                step = min(0.05, self.quiet - waited)
                await asyncio.sleep(step)
                waited += step
            if self._puts == before:
                return

    def _pressing(self) -> bool:
        """The backlog waited ``max_wait`` or fills half the spool: read it, flood or not."""
        if self.depth() * 2 >= self.capacity:
            return True
        since = self._backlog_since
        return since is not None and asyncio.get_running_loop().time() - since >= self.max_wait

    async def take(self, source: str, limit: int) -> list[Spooled]:
        """The oldest ``limit`` deliveries of ``source``, left in the spool until ``done``."""
        rows = (
            self._connection()
            .execute(
                "SELECT id, received_at, body FROM spool WHERE source = ? ORDER BY id LIMIT ?",
                (source, limit),
            )
            .fetchall()
        )
        return [Spooled(int(i), datetime.fromisoformat(r), bytes(b)) for i, r, b in rows]

    async def done(self, source: str, ids: Sequence[int]) -> None:
        """Remove deliveries whose events are stored."""
        if not ids:
            return
        conn = self._connection()
        conn.execute("BEGIN IMMEDIATE")
        try:
            removed = 0
            for start in range(0, len(ids), 500):
                part = list(ids[start : start + 500])
                marks = ", ".join("?" for _ in part)
                cur = conn.execute(f"DELETE FROM spool WHERE id IN ({marks})", part)  # noqa: S608 - placeholders only
                removed += cur.rowcount
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
        self._depth[source] = max(0, self._depth.get(source, 0) - removed)
        self._total = max(0, self._total - removed)
        if self.depth() == 0:
            self._backlog_since = None

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise SpoolError("the spool is not open")
        return self._conn

    async def close(self) -> None:
        self._flush()
        if self._conn is not None:
            conn, self._conn = self._conn, None
            conn.close()


class SpoolPort:
    """The narrow view of the spool one adapter gets: its own source only."""

    def __init__(self, spool: Spool, source: str) -> None:
        self._spool = spool
        self._source = source

    async def put(self, body: bytes, received_at: datetime) -> bool:
        return await self._spool.put(self._source, body, received_at)

    async def take(self, limit: int) -> list[Spooled]:
        return await self._spool.take(self._source, limit)

    async def done(self, ids: Sequence[int]) -> None:
        await self._spool.done(self._source, ids)

    async def wait(self) -> None:
        await self._spool.wait(self._source)

    def depth(self) -> int:
        return self._spool.depth(self._source)


def _consume(fut: asyncio.Future[None]) -> None:
    if not fut.cancelled():
        fut.exception()
