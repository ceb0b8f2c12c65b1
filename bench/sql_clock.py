"""The time an ingest run spends inside SQL statements, and the ceiling that time sets.

``SqlClock`` wraps the pipeline's database: every statement of every write transaction, and
its COMMIT, is timed where it runs (the event loop's thread). Dividing the posts stored by that
time gives the rate the pipeline could reach if parsing, triage, threads and decisions cost
nothing; its ratio to raw ``executemany`` is the most the ingest benchmark can show with the
statements the pipeline runs today. The overhead is two clock reads a statement (some thirty
statements a batch of up to 2,000 posts), not a cost per post.
"""

from __future__ import annotations

import re
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any

from mhchat.store.db import Params, Row, SqliteDatabase, Tx

_VERB_AND_TABLE = re.compile(
    r"^\s*(INSERT INTO|UPDATE|DELETE FROM|SELECT\b.*?\bFROM)\s+(\w+)", re.S
)


def label(sql: str) -> str:
    """``INSERT posts``, ``SELECT participants``: a statement's kind and its table."""
    found = _VERB_AND_TABLE.match(sql)
    if found is None:
        return " ".join(sql.split()[:2])
    return f"{found.group(1).split()[0]} {found.group(2)}"


class SqlClock:
    """Seconds spent in SQL, in total and by statement kind and table."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.by_statement: dict[str, float] = defaultdict(float)

    def add(self, sql: str, seconds: float) -> None:
        self.seconds += seconds
        self.by_statement[label(sql)] += seconds

    def heaviest(self, n: int) -> list[tuple[str, float]]:
        return sorted(self.by_statement.items(), key=lambda item: -item[1])[:n]


class _TimedTx:
    __slots__ = ("_clock", "_tx")

    def __init__(self, tx: Tx, clock: SqlClock) -> None:
        self._tx = tx
        self._clock = clock

    async def execute(self, sql: str, params: Params = ()) -> int:
        started = time.perf_counter()
        try:
            return await self._tx.execute(sql, params)
        finally:
            self._clock.add(sql, time.perf_counter() - started)

    async def executemany(self, sql: str, rows: Iterable[Params]) -> None:
        # The rows are built by the caller before the statement runs: not SQL time.
        prepared = list(rows)
        started = time.perf_counter()
        try:
            await self._tx.executemany(sql, prepared)
        finally:
            self._clock.add(sql, time.perf_counter() - started)

    async def fetchone(self, sql: str, params: Params = ()) -> Row | None:
        started = time.perf_counter()
        try:
            return await self._tx.fetchone(sql, params)
        finally:
            self._clock.add(sql, time.perf_counter() - started)

    async def fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        started = time.perf_counter()
        try:
            return await self._tx.fetchall(sql, params)
        finally:
            self._clock.add(sql, time.perf_counter() - started)


class TimedDatabase:
    """A ``SqliteDatabase`` whose write transactions are timed by ``clock``."""

    dialect = "sqlite"

    def __init__(self, db: SqliteDatabase, clock: SqlClock) -> None:
        self._db = db
        self.clock = clock

    @asynccontextmanager
    async def write(self) -> AsyncIterator[Tx]:
        manager = self._db.write()
        tx = await manager.__aenter__()
        try:
            yield _TimedTx(tx, self.clock)
        except BaseException as exc:
            if not await manager.__aexit__(type(exc), exc, exc.__traceback__):
                raise
        else:
            started = time.perf_counter()
            await manager.__aexit__(None, None, None)
            self.clock.add("COMMIT", time.perf_counter() - started)

    def read(self) -> Any:
        return self._db.read()

    async def run_script(self, sql: str, version_row: Params) -> None:
        await self._db.run_script(sql, version_row)

    async def close(self) -> None:
        await self._db.close()
