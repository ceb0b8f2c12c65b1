"""The ingest benchmark's SQL clock: it times statements and commits, and changes nothing else."""

from __future__ import annotations

from pathlib import Path

import pytest
from bench.sql_clock import SqlClock, TimedDatabase, label

from mhchat.store.db import SqliteDatabase


def test_labels_name_the_statement_kind_and_its_table() -> None:
    assert label("INSERT INTO posts (a, b) VALUES (?, ?)") == "INSERT posts"
    assert label("UPDATE posts SET a = ? WHERE id = ?") == "UPDATE posts"
    assert label("SELECT platform,\n remote_id FROM posts WHERE id > ?") == "SELECT posts"
    assert label("DELETE FROM tombstones WHERE x = ?") == "DELETE tombstones"
    assert label("RELEASE SAVEPOINT handler") == "RELEASE SAVEPOINT"


async def test_statements_and_the_commit_are_timed(tmp_path: Path) -> None:
    inner = await SqliteDatabase.open(tmp_path / "t.db")
    clock = SqlClock()
    db = TimedDatabase(inner, clock)
    async with db.write() as tx:
        await tx.execute("CREATE TABLE t (n INTEGER)")
        await tx.executemany("INSERT INTO t (n) VALUES (?)", ((i,) for i in range(1000)))
        assert await tx.fetchone("SELECT count(*) FROM t") == (1000,)
    async with db.read() as tx:
        assert await tx.fetchall("SELECT max(n) FROM t") == [(999,)]
    await db.close()
    assert set(clock.by_statement) == {"CREATE TABLE", "INSERT t", "SELECT t", "COMMIT"}
    assert clock.seconds == pytest.approx(sum(clock.by_statement.values()))
    assert clock.seconds > 0
    assert clock.heaviest(1)[0][0] in clock.by_statement


async def test_a_failing_transaction_still_rolls_back(tmp_path: Path) -> None:
    inner = await SqliteDatabase.open(tmp_path / "t.db")
    db = TimedDatabase(inner, SqlClock())
    async with db.write() as tx:
        await tx.execute("CREATE TABLE t (n INTEGER)")

    async def insert_then_fail() -> None:
        async with db.write() as tx:
            await tx.execute("INSERT INTO t (n) VALUES (1)")
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        await insert_then_fail()
    async with db.read() as tx:
        assert await tx.fetchone("SELECT count(*) FROM t") == (0,)
    await db.close()
