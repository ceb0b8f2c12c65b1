"""The database port: transactions with portable SQL, and the SQLite implementation.

All queries in mhchat are written once, in SQL that SQLite and PostgreSQL both accept, with
``?`` placeholders. A backend translates placeholders where it must. One writer at a time:
write transactions are serialised by a lock, because SQLite has one writer anyway and the
ingest worker batches many events into each transaction.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Protocol

import aiosqlite

Row = tuple[Any, ...]
Params = Sequence[Any]


class Tx(Protocol):
    """One open transaction (or a read-only snapshot)."""

    async def execute(self, sql: str, params: Params = ()) -> int:
        """Run a statement; return the number of rows changed."""
        ...

    async def executemany(self, sql: str, rows: Iterable[Params]) -> None: ...

    async def fetchone(self, sql: str, params: Params = ()) -> Row | None: ...

    async def fetchall(self, sql: str, params: Params = ()) -> list[Row]: ...


class Database(Protocol):
    """A backend: SQLite (default) or PostgreSQL."""

    dialect: str
    """``sqlite`` or ``postgresql``: picks the migrations folder."""

    def write(self) -> Any:
        """``async with db.write() as tx``: one serialised write transaction."""
        ...

    def read(self) -> Any:
        """``async with db.read() as tx``: a read that does not block the writer."""
        ...

    async def run_script(self, sql: str, version_row: Params) -> None:
        """Run a migration file and record it, all in one transaction."""
        ...

    async def close(self) -> None: ...


class _SqliteTx:
    __slots__ = ("_conn",)

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn

    async def execute(self, sql: str, params: Params = ()) -> int:
        cur = await self._conn.execute(sql, params)
        count = cur.rowcount
        await cur.close()
        return count

    async def executemany(self, sql: str, rows: Iterable[Params]) -> None:
        await self._conn.executemany(sql, rows)

    async def fetchone(self, sql: str, params: Params = ()) -> Row | None:
        cur = await self._conn.execute(sql, params)
        row = await cur.fetchone()
        await cur.close()
        return tuple(row) if row is not None else None

    async def fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        cur = await self._conn.execute(sql, params)
        rows = await cur.fetchall()
        await cur.close()
        return [tuple(r) for r in rows]


class _InlineTx:
    """A write transaction whose statements run on the event loop's own thread."""

    __slots__ = ("_conn",)

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    async def execute(self, sql: str, params: Params = ()) -> int:
        cur = self._conn.execute(sql, params)
        count = cur.rowcount
        cur.close()
        return count

    async def executemany(self, sql: str, rows: Iterable[Params]) -> None:
        self._conn.executemany(sql, rows)

    async def fetchone(self, sql: str, params: Params = ()) -> Row | None:
        row = self._conn.execute(sql, params).fetchone()
        return tuple(row) if row is not None else None

    async def fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        return [tuple(r) for r in self._conn.execute(sql, params).fetchall()]


LOCK_PATIENCE = 10.0
"""Seconds a write waits for another process's write lock before it fails."""
CHECKPOINT_EVERY = 50
"""Write transactions between two WAL checkpoints (run on the reader's thread).

A checkpoint ends with an fsync of the database file, and while the kernel flushes it the
writer's own commits wait on the file system (measured: commits of 10-38 ms during a
checkpoint, 0.1 ms otherwise). Small, frequent checkpoints keep each flush short: at 1,000
posts/s the p99 decision latency was 10-23 ms with 500 transactions between checkpoints and
4-6 ms with 50."""


class SqliteDatabase:
    """SQLite in WAL mode: one writer connection, one reader connection.

    The writer's statements run on the event loop's thread. An ingest batch is some 40 short
    statements; through a worker thread each one cost a round trip (a queue, a thread switch,
    and a wait for the GIL while the loop is busy: 0.1 ms to several ms under load), which
    dominated the time to a decision. Nothing in a write transaction waits on the disk for
    long: the write lock is taken without blocking (``busy_timeout=0`` and an asynchronous
    retry, so another process holding it never stalls the loop), WAL commits with
    ``synchronous=NORMAL`` do not fsync, and the checkpoints, which do, run on the reader's
    own thread. Reads (the dashboard, exports: possibly long scans) stay on a worker thread.
    """

    dialect = "sqlite"

    def __init__(self, writer: sqlite3.Connection, reader: aiosqlite.Connection | None) -> None:
        self._writer = writer
        self._reader = reader
        self._write_lock = asyncio.Lock()
        self._read_lock = asyncio.Lock()
        self._since_checkpoint = 0
        self._checkpoint: asyncio.Task[None] | None = None

    @classmethod
    async def open(cls, path: str | Path) -> SqliteDatabase:
        target = str(path)
        if target != ":memory:":
            Path(target).parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: we issue BEGIN/COMMIT ourselves, so executescript cannot
        # commit behind our back and a migration is really one transaction.
        writer = sqlite3.connect(target, isolation_level=None)
        for pragma in (
            "PRAGMA journal_mode=WAL",
            "PRAGMA synchronous=NORMAL",
            "PRAGMA foreign_keys=ON",
            "PRAGMA busy_timeout=0",
            "PRAGMA temp_store=MEMORY",
            "PRAGMA wal_autocheckpoint=0",
        ):
            writer.execute(pragma)
        reader = None
        if target != ":memory:":
            reader = await aiosqlite.connect(target, isolation_level=None)
            await reader.execute("PRAGMA busy_timeout=10000")
            await reader.execute("PRAGMA query_only=ON")
        return cls(writer, reader)

    async def _begin(self) -> None:
        """BEGIN IMMEDIATE without blocking the loop while another process writes."""
        delay, waited = 0.001, 0.0
        while True:
            try:
                self._writer.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or waited >= LOCK_PATIENCE:
                    raise
                await asyncio.sleep(delay)
                waited += delay
                delay = min(delay * 2, 0.1)
            else:
                return

    def _rollback(self) -> None:
        if self._writer.in_transaction:
            self._writer.execute("ROLLBACK")

    @asynccontextmanager
    async def write(self) -> AsyncIterator[Tx]:
        # Statements no longer suspend the task, so a loop of transactions (a sender going
        # through its queue) would keep the event loop to itself: every transaction starts by
        # giving the other tasks their turn.
        await asyncio.sleep(0)
        async with self._write_lock:
            await self._begin()
            try:
                yield _InlineTx(self._writer)
            except BaseException:
                self._rollback()
                raise
            self._writer.execute("COMMIT")
            self._committed()

    def _committed(self) -> None:
        self._since_checkpoint += 1
        if self._reader is None or self._since_checkpoint < CHECKPOINT_EVERY:
            return
        if self._checkpoint is None or self._checkpoint.done():
            self._since_checkpoint = 0
            self._checkpoint = asyncio.create_task(self._run_checkpoint(), name="wal-checkpoint")

    async def _run_checkpoint(self) -> None:
        assert self._reader is not None
        async with self._read_lock:
            # PASSIVE: copies what no reader still needs, never waits for anyone.
            await self._reader.execute("PRAGMA wal_checkpoint(PASSIVE)")

    @asynccontextmanager
    async def read(self) -> AsyncIterator[Tx]:
        if self._reader is None:
            await asyncio.sleep(0)  # as in write(): a scheduling point per transaction
            async with self._write_lock:
                yield _InlineTx(self._writer)
            return
        async with self._read_lock:
            try:
                await self._reader.execute("BEGIN")
                yield _SqliteTx(self._reader)
            finally:
                if self._reader.in_transaction:
                    await asyncio.shield(self._reader.execute("COMMIT"))

    async def run_script(self, sql: str, version_row: Params) -> None:
        async with self._write_lock:
            # executescript would COMMIT first; run the statements one by one inside our own
            # transaction instead so a failing migration leaves no partial schema.
            await self._begin()
            try:
                for statement in split_sql(sql):
                    self._writer.execute(statement)
                self._writer.execute(
                    "INSERT INTO schema_migrations (version, name, checksum, applied_at)"
                    " VALUES (?, ?, ?, ?)",
                    version_row,
                )
            except BaseException:
                self._rollback()
                raise
            self._writer.execute("COMMIT")

    async def close(self) -> None:
        if self._checkpoint is not None:
            await asyncio.gather(self._checkpoint, return_exceptions=True)
        if self._reader is not None:
            async with self._read_lock:
                await self._reader.execute("PRAGMA wal_checkpoint(PASSIVE)")
            await self._reader.close()
        self._writer.close()


async def fetch_by_pairs(
    tx: Tx, sql: str, chat_id: str, pairs: Iterable[tuple[str, str]], *, chunk: int = 500
) -> list[Row]:
    """Rows for (platform, value) pairs: one ``IN`` list per platform and chunk.

    ``sql`` takes ``chat_id`` and ``platform`` as its first two parameters and ends with
    ``AND <value column> IN``. An OR chain of pairs would defeat the index (measured: 5 to 7 ms
    a batch for 300 pairs); an ``IN`` list per platform uses it.
    """
    by_platform: dict[str, list[str]] = {}
    for platform, value in pairs:
        by_platform.setdefault(platform, []).append(value)
    found: list[Row] = []
    for platform, values in by_platform.items():
        for start in range(0, len(values), chunk):
            part = values[start : start + chunk]
            marks = ", ".join("?" for _ in part)
            found += await tx.fetchall(f"{sql} ({marks})", (chat_id, platform, *part))
    return found


def split_sql(script: str) -> list[str]:
    """Split a migration into statements at line ends, ignoring ``--`` comment lines.

    A statement ends at the first line where SQLite's own parser sees a complete statement
    (``sqlite3.complete_statement``), so a trigger's ``BEGIN ... END;`` body stays whole.
    """
    statements: list[str] = []
    current: list[str] = []
    for line in script.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("--"):
            continue
        current.append(line)
        if not stripped.endswith(";"):
            continue
        text = "\n".join(current)
        if sqlite3.complete_statement(text):
            statements.append(text.rstrip().rstrip(";"))
            current = []
    if current:
        statements.append("\n".join(current))
    return statements
