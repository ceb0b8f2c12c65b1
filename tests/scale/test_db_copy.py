"""``mhchat db copy``: an SQLite database moved into PostgreSQL, counts verified."""

from __future__ import annotations

import argparse
import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mhchat.actions import Publish, Purpose
from mhchat.cli import main
from mhchat.commands import db as db_command
from mhchat.events import PlatformName, PostReceived
from mhchat.ledger import Decision, Mode, State, record, transition
from mhchat.store.chats import ensure_chat
from mhchat.store.db import SqliteDatabase
from mhchat.store.migrate import migrate
from mhchat.store.postgres import PostgresDatabase
from mhchat.store.posts import save_events
from mhchat.testing import make_post

pytestmark = pytest.mark.scale

NOW = datetime(2026, 1, 7, 20, 5, tzinfo=UTC)


async def filled_sqlite(path: Path, posts: int) -> str:
    db = await SqliteDatabase.open(path)
    try:
        await migrate(db)
        await ensure_chat(db, "default", "MHChat", NOW)
        async with db.write() as tx:
            await save_events(
                tx,
                chat_id="default",
                events=[PostReceived(post=make_post(str(i))) for i in range(posts)],
                checkpoints=[],
                now=NOW,
            )
            await record(
                tx,
                chat_id="default",
                decisions=[
                    Decision(
                        action=Publish(
                            key=f"q{i}",
                            platform=PlatformName("fake"),
                            purpose=Purpose.QUESTION,
                            text=f"Q{i}",
                        ),
                        reason="due",
                    )
                    for i in range(5)
                ],
                modes={Purpose.QUESTION: Mode.AUTO},
                now=NOW,
            )
            await transition(tx, 1, to=State.SENT, now=NOW, detail="sent")
            await tx.execute(
                "INSERT INTO safety_flags (chat_id, platform, remote_id, category, reason, score,"
                " created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                ("default", "fake", "3", "crisis", "words", 1, NOW.isoformat(), NOW.isoformat()),
            )
            await tx.executemany(
                "INSERT INTO welcomes (chat_id, platform, author_id, session_id, remote_id,"
                " decided_at) VALUES (?, ?, ?, ?, ?, ?)",
                [("default", "fake", f"a{i}", "s1", str(i), NOW.isoformat()) for i in range(3)],
            )
            await tx.executemany(
                "INSERT INTO session_reposts (chat_id, session_id, platform, author_id,"
                " remote_id, round, decided_at) VALUES (?, ?, ?, ?, ?, 1, ?)",
                [("default", "s1", "fake", f"a{i}", str(i), NOW.isoformat()) for i in range(2)],
            )
    finally:
        await db.close()
    return f"sqlite:///{path}"


async def test_copy_moves_every_row_and_keeps_ids_usable(tmp_path: Path, pg_url: str) -> None:
    source = await filled_sqlite(tmp_path / "old.db", posts=4500)
    counts = await db_command.copy_database(source, pg_url)
    by_table = {c.table: c for c in counts}
    assert all(c.ok for c in counts)
    assert by_table["posts"].target == 4500
    assert by_table["actions"].target == 5
    assert by_table["action_transitions"].target == 6
    assert by_table["safety_flags"].target == 1
    assert by_table["welcomes"].target == 3
    target = await PostgresDatabase.open(pg_url)
    try:
        async with target.read() as tx:
            tallies = await tx.fetchall(
                "SELECT session_id, welcomes, reposts FROM session_tallies"
            )
        # Copied as they were, not counted again by the triggers as the rows arrived.
        assert tallies == [("s1", 3, 2)]
        # And the triggers count again once the copy is done.
        async with target.write() as tx:
            await tx.execute(
                "INSERT INTO welcomes (chat_id, platform, author_id, session_id, remote_id,"
                " decided_at) VALUES (?, ?, ?, ?, ?, ?)",
                ("default", "fake", "late", "s1", "99", NOW.isoformat()),
            )
            row = await tx.fetchone("SELECT welcomes FROM session_tallies WHERE session_id = 's1'")
        assert row == (4,)
        # The identity sequence moved past the copied ids: new rows get fresh ones.
        async with target.write() as tx:
            batch = await save_events(
                tx,
                chat_id="default",
                events=[PostReceived(post=make_post("new"))],
                checkpoints=[],
                now=NOW,
            )
            row = await tx.fetchone("SELECT id FROM posts WHERE remote_id = 'new'")
        assert [p.remote_id for p in batch.new_posts] == ["new"]
        assert row is not None
        assert row[0] > 4500
    finally:
        await target.close()


async def test_copy_refuses_a_database_that_is_not_empty(tmp_path: Path, pg_url: str) -> None:
    source = await filled_sqlite(tmp_path / "old.db", posts=3)
    await db_command.copy_database(source, pg_url)
    with pytest.raises(db_command.CopyError, match="already has rows"):
        await db_command.copy_database(source, pg_url)


def test_the_command_prints_counts_and_fails_on_bad_urls(
    tmp_path: Path, pg_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    parser = argparse.ArgumentParser()
    db_command.add_parser(parser.add_subparsers())
    source = asyncio.run(filled_sqlite(tmp_path / "old.db", posts=10))
    args = parser.parse_args(["db", "copy", "--from", source, "--to", pg_url])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "posts" in out
    assert "every table's count matches" in out
    bad = parser.parse_args(["db", "copy", "--from", "postgresql://x/y", "--to", pg_url])
    assert bad.func(bad) == 1
    assert "must be an SQLite file URL" in capsys.readouterr().err


def test_mhchat_migrate_works_on_postgresql(
    tmp_path: Path, pg_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "mhchat.toml"
    config.write_text(f'[database]\nurl = "{pg_url}"\n', encoding="utf-8")
    assert main(["migrate", "-c", str(config)]) == 0
    assert "Applied migrations 0001" in capsys.readouterr().out
    assert main(["migrate", "-c", str(config)]) == 0
    assert "Nothing to do" in capsys.readouterr().out
