"""The thread look-ups use an index for every key column: never a scan of the chat's posts."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from mhchat.facilitation.link_store import SqlLinks
from mhchat.store.db import Params, Row, SqliteDatabase, Tx
from mhchat.store.migrate import migrate


class Recording:
    """A Tx that notes every query it runs, with its parameters."""

    def __init__(self, tx: Tx) -> None:
        self.tx = tx
        self.queries: list[tuple[str, Params]] = []

    async def execute(self, sql: str, params: Params = ()) -> int:
        return await self.tx.execute(sql, params)

    async def executemany(self, sql: str, rows: Iterable[Params]) -> None:
        await self.tx.executemany(sql, rows)

    async def fetchone(self, sql: str, params: Params = ()) -> Row | None:
        self.queries.append((sql, params))
        return await self.tx.fetchone(sql, params)

    async def fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        self.queries.append((sql, params))
        return await self.tx.fetchall(sql, params)


async def test_get_and_dependents_search_by_index(tmp_path: Path) -> None:
    db = await SqliteDatabase.open(tmp_path / "plans.db")
    await migrate(db)
    plans: list[str] = []
    async with db.write() as tx:
        recording = Recording(tx)
        links = SqlLinks(recording, "default")
        keys = {("x", "1"), ("x", "2"), ("bluesky", "at://a")}
        await links.get(keys)
        await links.dependents(keys)
        assert len(recording.queries) == 4
        for sql, params in recording.queries:
            rows: list[Any] = await tx.fetchall("EXPLAIN QUERY PLAN " + sql, params)
            plans += [str(r[3]) for r in rows]
    await db.close()
    assert not [p for p in plans if p.startswith("SCAN")], plans
    searches = [p for p in plans if p.startswith("SEARCH posts")]
    assert all("platform=? AND" in p for p in searches), searches
    for column in ("remote_id", "parent_id", "quoted_id", "thread_root"):
        assert any(f"{column}=?" in p for p in searches), (column, searches)
