"""The SQLite writer runs on the loop's thread, so it must never make the loop wait."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from mhchat.store import db as db_module
from mhchat.store.db import SqliteDatabase


async def test_another_process_holding_the_write_lock_does_not_stall_the_loop(
    tmp_path: Path,
) -> None:
    path = tmp_path / "t.db"
    db = await SqliteDatabase.open(path)
    async with db.write() as tx:
        await tx.execute("CREATE TABLE t (x INTEGER)")
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # a stuck disk, or `mhchat db` in another process
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.01)

    running = asyncio.create_task(ticker())

    async def write() -> None:
        async with db.write() as tx:
            await tx.execute("INSERT INTO t VALUES (1)")

    writing = asyncio.create_task(write())
    await asyncio.sleep(0.3)
    assert not writing.done()
    assert ticks >= 15, f"the loop stalled while the write waited ({ticks} ticks)"
    other.execute("ROLLBACK")
    await asyncio.wait_for(writing, 2.0)
    running.cancel()
    async with db.read() as tx:
        assert await tx.fetchone("SELECT count(*) FROM t") == (1,)
    other.close()
    await db.close()


async def test_a_lock_held_past_the_patience_fails_the_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db_module, "LOCK_PATIENCE", 0.2)
    path = tmp_path / "t.db"
    db = await SqliteDatabase.open(path)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")

    async def create() -> None:
        async with db.write() as tx:
            await tx.execute("CREATE TABLE t (x INTEGER)")

    with pytest.raises(sqlite3.OperationalError, match="locked"):
        await create()
    other.execute("ROLLBACK")
    other.close()
    async with db.write() as tx:  # the writer is usable again
        await tx.execute("CREATE TABLE t (x INTEGER)")
    await db.close()


async def test_a_failing_transaction_is_rolled_back_whole(tmp_path: Path) -> None:
    db = await SqliteDatabase.open(tmp_path / "t.db")
    async with db.write() as tx:
        await tx.execute("CREATE TABLE t (x INTEGER PRIMARY KEY)")

    async def twice() -> None:
        async with db.write() as tx:
            await tx.execute("INSERT INTO t VALUES (1)")
            await tx.execute("INSERT INTO t VALUES (1)")

    with pytest.raises(sqlite3.IntegrityError):
        await twice()
    async with db.read() as tx:
        assert await tx.fetchone("SELECT count(*) FROM t") == (0,)
    await db.close()


async def test_the_wal_is_checkpointed_off_the_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db_module, "CHECKPOINT_EVERY", 20)
    path = tmp_path / "t.db"
    db = await SqliteDatabase.open(path)
    async with db.write() as tx:
        await tx.execute("CREATE TABLE t (x BLOB)")
    for _ in range(19):
        async with db.write() as tx:
            await tx.execute("INSERT INTO t VALUES (?)", (b"x" * 4000,))
    await asyncio.sleep(0.2)
    # 20 transactions: one checkpoint ran, so the database file holds the rows.
    assert path.stat().st_size > 19 * 4000
    await db.close()


async def test_a_loop_of_write_transactions_lets_other_tasks_run(tmp_path: Path) -> None:
    db = await SqliteDatabase.open(tmp_path / "t.db")
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    running = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    for _ in range(200):
        async with db.write() as tx:
            await tx.fetchone("SELECT 1")
    running.cancel()
    # Each transaction is a turn of the loop, as when every statement went to a thread.
    assert ticks >= 150
    await db.close()
