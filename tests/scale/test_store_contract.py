"""The store contract, run against SQLite and PostgreSQL alike.

Dedupe on (chat, platform, remote id) even with two writers at once, tombstones that keep a
deleted post out, cursors saved with their events, ledger idempotency and guarded transitions,
and the migration runner's promises.
"""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mhchat.actions import Publish, Purpose
from mhchat.adapters import Checkpoint
from mhchat.errors import MigrationError
from mhchat.events import PlatformName, PostDeleted, PostReceived, RemoteId
from mhchat.ledger import Decision, Mode, State, by_state, record, transition
from mhchat.store.db import Database
from mhchat.store.migrate import migrate, migrations_root
from mhchat.store.posts import save_events
from mhchat.testing import FAKE, make_post

from .conftest import open_url

pytestmark = pytest.mark.scale

NOW = datetime(2026, 1, 7, 20, 5, tzinfo=UTC)


async def count(db: Database, sql: str, params: tuple[object, ...] = ()) -> int:
    async with db.read() as tx:
        row = await tx.fetchone(sql, params)
    assert row is not None
    return int(row[0])


async def store_posts(db: Database, ids: list[str], chat_id: str = "default") -> list[str]:
    async with db.write() as tx:
        batch = await save_events(
            tx,
            chat_id=chat_id,
            events=[PostReceived(post=make_post(i)) for i in ids],
            checkpoints=[],
            now=NOW,
        )
    return [p.remote_id for p in batch.new_posts]


async def test_a_post_is_stored_once_and_reported_new_once(store: Database) -> None:
    assert await store_posts(store, ["1", "2", "2"]) == ["1", "2"]
    assert await store_posts(store, ["2", "3"]) == ["3"]
    assert await count(store, "SELECT COUNT(*) FROM posts") == 3


async def test_a_nul_in_text_is_stored_alike_on_both_backends(store: Database) -> None:
    """PostgreSQL text cannot hold NUL, which a platform's text can: both store U+FFFD."""
    plain = make_post("n1", author="ab", text="A1 before\x00after #MHChat")
    author = dataclasses.replace(plain.author, handle="a\x00b", display_name="A\x00B")
    post = dataclasses.replace(plain, author=author)
    async with store.write() as tx:
        batch = await save_events(
            tx, chat_id="default", events=[PostReceived(post=post)], checkpoints=[], now=NOW
        )
    assert [p.remote_id for p in batch.new_posts] == ["n1"]
    async with store.read() as tx:
        row = await tx.fetchone(
            "SELECT text, author_handle, author_name FROM posts WHERE remote_id = 'n1'"
        )
        handle = await tx.fetchone("SELECT handle FROM participants WHERE author_id = 'id-ab'")
    assert row == ("A1 before\ufffdafter #MHChat", "a\ufffdb", "A\ufffdB")
    assert handle == ("a\ufffdb",)


async def test_the_same_remote_id_in_two_chats_is_two_posts(store: Database) -> None:
    async with store.write() as tx:
        await tx.execute(
            "INSERT INTO chats (chat_id, hashtag, created_at) VALUES (?, ?, ?)",
            ("other", "Other", NOW.isoformat()),
        )
    assert await store_posts(store, ["1"]) == ["1"]
    assert await store_posts(store, ["1"], chat_id="other") == ["1"]
    assert await count(store, "SELECT COUNT(*) FROM posts WHERE remote_id = ?", ("1",)) == 2


async def test_two_writers_at_once_report_each_post_new_exactly_once(store_url: str) -> None:
    """Two processes' ingest workers store overlapping batches at the same moment."""
    first, second = await open_url(store_url), await open_url(store_url)
    try:
        await migrate(first)
        async with first.write() as tx:
            await tx.execute(
                "INSERT INTO chats (chat_id, hashtag, created_at) VALUES (?, ?, ?)",
                ("default", "MHChat", NOW.isoformat()),
            )
        ids = [str(i) for i in range(400)]
        results = await asyncio.gather(
            *[
                store_posts(db, ids[start : start + 150])
                for db, start in [(first, 0), (second, 100), (first, 200), (second, 250)]
            ]
        )
        reported = [i for result in results for i in result]
        assert sorted(reported, key=int) == ids
        assert await count(first, "SELECT COUNT(*) FROM posts") == 400
    finally:
        await first.close()
        await second.close()


async def test_a_deleted_post_is_never_stored_again(store: Database) -> None:
    deleted = PostDeleted(platform=FAKE, remote_id=RemoteId("9"), deleted_at=NOW)
    async with store.write() as tx:
        await save_events(tx, chat_id="default", events=[deleted], checkpoints=[], now=NOW)
    assert await store_posts(store, ["9", "10"]) == ["10"]
    # A post and its deletion in the same batch end deleted.
    async with store.write() as tx:
        batch = await save_events(
            tx,
            chat_id="default",
            events=[
                PostReceived(post=make_post("11")),
                PostDeleted(platform=FAKE, remote_id=RemoteId("11"), deleted_at=NOW),
            ],
            checkpoints=[],
            now=NOW,
        )
    assert batch.new_posts == []
    assert await count(store, "SELECT COUNT(*) FROM posts WHERE remote_id IN ('9', '11')") == 0
    assert await count(store, "SELECT COUNT(*) FROM tombstones") == 2


async def test_a_cursor_is_saved_with_its_events_and_replaced(store: Database) -> None:
    for value in ("c1", "c2"):
        async with store.write() as tx:
            await save_events(
                tx,
                chat_id="default",
                events=[PostReceived(post=make_post(value))],
                checkpoints=[(FAKE, Checkpoint(key="cursor", value=value))],
                now=NOW,
            )
    async with store.read() as tx:
        rows = await tx.fetchall(
            "SELECT key, value FROM adapter_state WHERE chat_id = ? AND platform = ?",
            ("default", FAKE),
        )
    assert rows == [("cursor", "c2")]


async def test_a_failed_transaction_keeps_neither_events_nor_cursor(store: Database) -> None:
    with pytest.raises(RuntimeError):  # noqa: PT012 - the failure is inside the transaction
        async with store.write() as tx:
            await save_events(
                tx,
                chat_id="default",
                events=[PostReceived(post=make_post("x1"))],
                checkpoints=[(FAKE, Checkpoint(key="cursor", value="x1"))],
                now=NOW,
            )
            raise RuntimeError("disk full")
    assert await count(store, "SELECT COUNT(*) FROM posts") == 0
    assert await count(store, "SELECT COUNT(*) FROM adapter_state") == 0


def publish(key: str) -> Decision:
    return Decision(
        action=Publish(
            key=key, platform=PlatformName("fake"), purpose=Purpose.QUESTION, text="Q1"
        ),
        reason="test",
    )


async def test_the_ledger_records_a_key_once_and_guards_transitions(store: Database) -> None:
    modes = {Purpose.QUESTION: Mode.AUTO}
    async with store.write() as tx:
        first = await record(
            tx, chat_id="default", decisions=[publish("q1")], modes=modes, now=NOW
        )
    async with store.write() as tx:
        again = await record(
            tx, chat_id="default", decisions=[publish("q1"), publish("q2")], modes=modes, now=NOW
        )
    assert (first, again) == (["q1"], ["q2"])
    async with store.write() as tx:
        rows = await by_state(tx, "default", [State.PENDING])
        q1 = next(r for r in rows if r.key == "q1")
        assert await transition(tx, q1.id, to=State.SENDING, now=NOW, expect=[State.PENDING])
        # A second actor expecting pending finds it taken.
        assert not await transition(tx, q1.id, to=State.SENDING, now=NOW, expect=[State.PENDING])
    assert await count(store, "SELECT COUNT(*) FROM actions") == 2
    assert (
        await count(store, "SELECT COUNT(*) FROM action_transitions WHERE action_id = ?", (q1.id,))
        == 2
    )


async def test_migrations_apply_rerun_and_reject_edits(store_url: str, tmp_path: Path) -> None:
    db = await open_url(store_url)
    try:
        folder = tmp_path / "migrations"
        shutil.copytree(migrations_root() / db.dialect, folder)
        report = await migrate(db, folder)
        assert report.applied == tuple(range(1, len(list(folder.glob("*.sql"))) + 1))
        assert (await migrate(db, folder)).applied == ()
        first = sorted(folder.glob("*.sql"))[0]
        first.write_text(first.read_text() + "\n-- edited\n")
        with pytest.raises(MigrationError, match="edited"):
            await migrate(db, folder)
    finally:
        await db.close()


async def test_a_failing_migration_leaves_no_partial_schema(
    store_url: str, tmp_path: Path
) -> None:
    db = await open_url(store_url)
    try:
        folder = tmp_path / "migrations"
        folder.mkdir()
        (folder / "0001_good.sql").write_text("CREATE TABLE good (id INTEGER PRIMARY KEY);\n")
        (folder / "0002_bad.sql").write_text(
            "CREATE TABLE half (id INTEGER PRIMARY KEY);\nCREATE TABLE broken (;\n"
        )
        with pytest.raises(MigrationError, match="0002_bad"):
            await migrate(db, folder)
        async with db.read() as tx:
            assert await tx.fetchall("SELECT version FROM schema_migrations") == [(1,)]
            await tx.fetchone("SELECT COUNT(*) FROM good")
        with pytest.raises(Exception):  # noqa: B017, PT011 - each driver names it differently
            async with db.read() as tx:
                await tx.fetchone("SELECT COUNT(*) FROM half")
        # A database newer than the code is refused.
        (folder / "0002_bad.sql").unlink()
        async with db.write() as tx:
            await tx.execute(
                "INSERT INTO schema_migrations (version, name, checksum, applied_at)"
                " VALUES (?, ?, ?, ?)",
                (7, "future", "x", NOW.isoformat()),
            )
        with pytest.raises(MigrationError, match="newer"):
            await migrate(db, folder)
    finally:
        await db.close()


async def test_two_processes_migrating_at_once_apply_each_file_once(pg_url: str) -> None:
    """PostgreSQL only: SQLite is the one-process shape, PostgreSQL the many-process one."""
    dbs = [await open_url(pg_url) for _ in range(3)]
    try:
        reports = await asyncio.gather(*[migrate(db) for db in dbs])
        applied = sorted(v for r in reports for v in r.applied)
        assert applied == sorted(set(applied))
        assert {r.current for r in reports} == {max(applied)}
    finally:
        for db in dbs:
            await db.close()


async def test_many_keyed_updates_apply_like_one_by_one(store: Database) -> None:
    await store_posts(store, ["u1", "u2", "u3"])
    update = (
        "UPDATE posts SET thread_root = ?, question_n = ? WHERE chat_id = ? AND platform = ?"
        " AND remote_id = ?"
    )
    async with store.write() as tx:
        await tx.executemany(
            update,
            [("u1", 1, "default", FAKE, "u1"), (None, 2, "default", FAKE, "u2")],
        )
        # A key twice in one call: the last row wins, as one statement after another.
        await tx.executemany(
            update,
            [("first", 5, "default", FAKE, "u3"), ("last", 6, "default", FAKE, "u3")],
        )
    async with store.read() as tx:
        rows = await tx.fetchall(
            "SELECT remote_id, thread_root, question_n FROM posts ORDER BY remote_id"
        )
    assert rows == [("u1", "u1", 1), ("u2", None, 2), ("u3", "last", 6)]
