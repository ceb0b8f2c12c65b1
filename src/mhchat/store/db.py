"""The database port: transactions with portable SQL, and the SQLite implementation.

All queries in mhchat are written once, in SQL that SQLite and PostgreSQL both accept, with
``?`` placeholders. A backend translates placeholders where it must. One writer at a time:
write transactions are serialised by a lock, because SQLite has one writer anyway and the
ingest worker batches many events into each transaction.
"""

from __future__ import annotations

import asyncio
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


class SqliteDatabase:
    """SQLite in WAL mode: one writer connection, one reader connection."""

    dialect = "sqlite"

    def __init__(self, writer: aiosqlite.Connection, reader: aiosqlite.Connection) -> None:
        self._writer = writer
        self._reader = reader
        self._write_lock = asyncio.Lock()
        self._read_lock = asyncio.Lock()

    @classmethod
    async def open(cls, path: str | Path) -> SqliteDatabase:
        target = str(path)
        if target != ":memory:":
            Path(target).parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: we issue BEGIN/COMMIT ourselves, so executescript cannot
        # commit behind our back and a migration is really one transaction.
        writer = await aiosqlite.connect(target, isolation_level=None)
        for pragma in (
            "PRAGMA journal_mode=WAL",
            "PRAGMA synchronous=NORMAL",
            "PRAGMA foreign_keys=ON",
            "PRAGMA busy_timeout=10000",
            "PRAGMA temp_store=MEMORY",
        ):
            await writer.execute(pragma)
        reader = writer
        if target != ":memory:":
            reader = await aiosqlite.connect(target, isolation_level=None)
            await reader.execute("PRAGMA busy_timeout=10000")
            await reader.execute("PRAGMA query_only=ON")
        return cls(writer, reader)

    @asynccontextmanager
    async def write(self) -> AsyncIterator[Tx]:
        async with self._write_lock:
            try:
                await self._writer.execute("BEGIN IMMEDIATE")
                yield _SqliteTx(self._writer)
            except BaseException:
                # Cancellation can land after BEGIN ran in aiosqlite's thread: roll back
                # whatever is open, shielded so the connection is never left mid-transaction.
                if self._writer.in_transaction:
                    await asyncio.shield(self._writer.execute("ROLLBACK"))
                raise
            else:
                await asyncio.shield(self._writer.execute("COMMIT"))

    @asynccontextmanager
    async def read(self) -> AsyncIterator[Tx]:
        if self._reader is self._writer:
            async with self._write_lock:
                yield _SqliteTx(self._reader)
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
            try:
                await self._writer.execute("BEGIN IMMEDIATE")
                for statement in split_sql(sql):
                    await self._writer.execute(statement)
                await self._writer.execute(
                    "INSERT INTO schema_migrations (version, name, checksum, applied_at)"
                    " VALUES (?, ?, ?, ?)",
                    version_row,
                )
            except BaseException:
                if self._writer.in_transaction:
                    await asyncio.shield(self._writer.execute("ROLLBACK"))
                raise
            else:
                await self._writer.execute("COMMIT")

    async def close(self) -> None:
        if self._reader is not self._writer:
            await self._reader.close()
        await self._writer.close()


def split_sql(script: str) -> list[str]:
    """Split a migration into statements on ``;`` at line ends, ignoring ``--`` comments.

    Migrations are written one statement per ``;``-terminated block; triggers are not used.
    """
    statements: list[str] = []
    current: list[str] = []
    for line in script.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("--"):
            continue
        current.append(line)
        if stripped.endswith(";"):
            statements.append("\n".join(current).rstrip().rstrip(";"))
            current = []
    if current:
        statements.append("\n".join(current))
    return statements
