"""The PostgreSQL implementation of the database port (asyncpg).

The code base writes its SQL once, with ``?`` placeholders; this module rewrites them to
PostgreSQL's ``$1, $2...`` (outside string literals) and caches the result. Writes from one
process are serialised by a lock, as on SQLite, because the decision handlers were written for
one writer per chat; several processes share the database through leases (``mhchat.leases``),
so the duties that must be single still are. Reads use the pool and never wait for the writer.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from functools import lru_cache
from typing import Any

import asyncpg

from mhchat.store.db import Params, Row, Tx

# Any constant works: it only has to be the same in every mhchat process on one database.
MIGRATION_LOCK_KEY = 0x6D686368  # "mhch"


@lru_cache(maxsize=4096)
def to_dollar(sql: str) -> str:
    """Rewrite ``?`` placeholders to ``$n``, leaving quoted text and identifiers alone."""
    out: list[str] = []
    n = 0
    quote: str | None = None
    for ch in sql:
        if quote is not None:
            if ch == quote:
                quote = None
            out.append(ch)
        elif ch in ("'", '"'):
            quote = ch
            out.append(ch)
        elif ch == "?":
            n += 1
            out.append(f"${n}")
        else:
            out.append(ch)
    return "".join(out)


def _count(status: str) -> int:
    """Rows changed, from a command tag such as ``UPDATE 3`` or ``INSERT 0 1``."""
    last = status.rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() else 0


_KEYED_UPDATE = re.compile(
    r"^\s*UPDATE\s+(?P<table>[a-z_]+)\s+SET\s+(?P<sets>(?:[a-z_]+\s*=\s*\?\s*,\s*)*"
    r"[a-z_]+\s*=\s*\?)\s+WHERE\s+(?P<keys>(?:[a-z_]+\s*=\s*\?\s+AND\s+)*"
    r"[a-z_]+\s*=\s*\?)\s*$",
    re.IGNORECASE,
)
_ARRAY_TYPES = {
    "text": "text",
    "integer": "int4",
    "bigint": "int8",
    "double precision": "float8",
}
_COLUMN_TYPES: dict[str, dict[str, str]] = {}
"""Column types per table, read once per process (migrations only add columns at start)."""


class PostgresTx:
    __slots__ = ("_conn",)
    dialect = "postgresql"

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    async def execute(self, sql: str, params: Params = ()) -> int:
        status = await self._conn.execute(to_dollar(sql), *params)
        return _count(str(status))

    async def executemany(self, sql: str, rows: Iterable[Params]) -> None:
        batch = [tuple(r) for r in rows]
        if not batch:
            return
        keyed = _KEYED_UPDATE.match(sql) if len(batch) > 1 else None
        if keyed is not None and await self._bulk_update(keyed, batch):
            return
        await self._conn.executemany(to_dollar(sql), batch)

    async def _bulk_update(self, keyed: re.Match[str], batch: list[tuple[Any, ...]]) -> bool:
        """``UPDATE t SET a = ?, ... WHERE k = ? AND ...`` for many rows as one statement.

        Row by row, each update is planned and run on its own; ``UPDATE ... FROM unnest(...)``
        does the batch in one. Only when no key repeats (else the last row must win, which a
        join does not promise) and every column is of a known type.
        """
        table = keyed["table"]
        sets = [c.strip().split("=")[0].strip() for c in keyed["sets"].split(",")]
        keys = [c.strip().split("=")[0].strip() for c in keyed["keys"].split(" AND ")]
        columns = [*sets, *keys]
        if len(columns) != len(batch[0]):
            return False
        if len({row[len(sets) :] for row in batch}) != len(batch):
            return False
        types = await self._column_types(table)
        if any(types.get(c) not in _ARRAY_TYPES for c in columns):
            return False
        arrays = [list(col) for col in zip(*batch, strict=True)]
        names = ", ".join(f"c{i}" for i in range(len(columns)))
        casts = ", ".join(f"${i + 1}::{_ARRAY_TYPES[types[c]]}[]" for i, c in enumerate(columns))
        assignments = ", ".join(f"{c} = v.c{i}" for i, c in enumerate(sets))
        matches = " AND ".join(f"t.{c} = v.c{len(sets) + i}" for i, c in enumerate(keys))
        await self._conn.execute(
            f"UPDATE {table} AS t SET {assignments} FROM unnest({casts}) AS v({names})"  # noqa: S608 - identifiers from our own SQL
            f" WHERE {matches}",
            *arrays,
        )
        return True

    async def _column_types(self, table: str) -> dict[str, str]:
        found = _COLUMN_TYPES.get(table)
        if found is None:
            rows = await self._conn.fetch(
                "SELECT column_name, data_type FROM information_schema.columns"
                " WHERE table_schema = current_schema() AND table_name = $1",
                table,
            )
            found = {str(r[0]): str(r[1]) for r in rows}
            _COLUMN_TYPES[table] = found
        return found

    async def fetchone(self, sql: str, params: Params = ()) -> Row | None:
        record = await self._conn.fetchrow(to_dollar(sql), *params)
        return tuple(record) if record is not None else None

    async def fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        records = await self._conn.fetch(to_dollar(sql), *params)
        return [tuple(r) for r in records]

    @property
    def connection(self) -> asyncpg.Connection:
        """The raw connection, for the few statements that need PostgreSQL's own types."""
        return self._conn


class PostgresDatabase:
    """A pool of asyncpg connections; one write transaction at a time per process."""

    dialect = "postgresql"

    def __init__(self, pool: asyncpg.Pool, url: str) -> None:
        self._pool = pool
        self.url = url
        self._write_lock = asyncio.Lock()

    @classmethod
    async def open(
        cls, url: str, *, min_size: int = 2, max_size: int = 10, connect_timeout: float = 10.0
    ) -> PostgresDatabase:
        dsn = "postgresql://" + url.split("://", 1)[1] if url.startswith("postgres://") else url
        pool = await asyncpg.create_pool(
            dsn,
            min_size=min_size,
            max_size=max_size,
            timeout=connect_timeout,
            command_timeout=60,
            # Statements are prepared per connection; a schema change by a migration in
            # another process must not leave stale plans behind.
            max_cached_statement_lifetime=300,
            # A prepared statement's generic plan is fixed from the statistics of its first
            # runs, when the tables may be nearly empty (a sequential scan looks cheapest);
            # as the chat's tables grow that plan would stay. Plan each run for the table as
            # it is now.
            server_settings={"plan_cache_mode": "force_custom_plan"},
        )
        return cls(pool, dsn)

    @property
    def pool(self) -> asyncpg.Pool:
        """The connection pool, for tools that need PostgreSQL itself (``mhchat db copy``)."""
        return self._pool

    @asynccontextmanager
    async def write(self) -> AsyncIterator[Tx]:
        async with self._write_lock, self._pool.acquire() as conn, conn.transaction():
            yield PostgresTx(conn)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[Tx]:
        async with self._pool.acquire() as conn, conn.transaction(readonly=True):
            yield PostgresTx(conn)

    @asynccontextmanager
    async def migration_lock(self) -> AsyncIterator[None]:
        """Hold a session advisory lock so two processes starting at once migrate in turn."""
        async with self._pool.acquire() as conn:
            await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_KEY)
            try:
                yield
            finally:
                await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_KEY)

    async def run_script(self, sql: str, version_row: Params) -> None:
        async with self._write_lock, self._pool.acquire() as conn, conn.transaction():
            # The simple query protocol runs the whole file; DDL is transactional in
            # PostgreSQL, so a failing file leaves nothing behind.
            await conn.execute(sql)
            await conn.execute(
                "INSERT INTO schema_migrations (version, name, checksum, applied_at)"
                " VALUES ($1, $2, $3, $4)",
                *version_row,
            )

    async def close(self) -> None:
        await self._pool.close()

    def terminate(self) -> None:
        """Drop every connection at once (tests use it to cut a process off the database)."""
        self._pool.terminate()


def is_postgres(tx: Any) -> bool:
    return isinstance(tx, PostgresTx)


# posts columns in INSERT_POST order, with their PostgreSQL array types for unnest.
_POST_TYPES = ("text",) * 20 + ("int4",) * 4 + ("text",)


async def insert_posts_returning(
    tx: PostgresTx, columns: str, rows: list[tuple[object, ...]]
) -> set[tuple[str, str]]:
    """Insert rows into ``posts``; return (platform, remote_id) of the rows really added.

    One statement for the whole batch: ``unnest`` turns column arrays back into rows, and
    ``ON CONFLICT DO NOTHING RETURNING`` names exactly the rows this transaction inserted, even
    while another process inserts the same posts (the ``max(id)`` trick of the single SQLite
    writer is not safe here: concurrent transactions interleave their ids).
    """
    if not rows:
        return set()
    names = [c.strip() for c in columns.split(",")]
    assert len(names) == len(_POST_TYPES) == len(rows[0])
    arrays = [list(col) for col in zip(*rows, strict=True)]
    casts = ", ".join(f"${i + 1}::{t}[]" for i, t in enumerate(_POST_TYPES))
    sql = (
        f"INSERT INTO posts ({columns}) SELECT * FROM unnest({casts})"  # noqa: S608 - constants
        " ON CONFLICT (chat_id, platform, remote_id) DO NOTHING RETURNING platform, remote_id"
    )
    records = await tx.connection.fetch(sql, *arrays)
    return {(str(r[0]), str(r[1])) for r in records}
