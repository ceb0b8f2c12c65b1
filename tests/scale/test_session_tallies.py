"""Session tallies (welcomes and reposts spent per session and platform), on both backends.

The budget checks read ``session_tallies`` instead of counting the session's rows. The
database keeps the tallies (triggers), so they must equal the rows after any insert, a
duplicate insert that does nothing, a "forget me", and on a database that had rows before the
migration that made them.
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mhchat.facilitation.deletions import forget_person
from mhchat.store.chats import ensure_chat
from mhchat.store.db import Database, split_sql
from mhchat.store.migrate import migrate, migrations_root
from mhchat.testing import FakeClock

from .conftest import open_url

pytestmark = pytest.mark.scale

NOW = datetime(2026, 11, 25, 20, 30, tzinfo=UTC)
S1, S2 = "2026-11-25", "2026-12-02"


async def welcome(db: Database, platform: str, author: str, session: str) -> None:
    async with db.write() as tx:
        await tx.executemany(
            "INSERT INTO welcomes (chat_id, platform, author_id, session_id, remote_id,"
            " decided_at) VALUES (?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (chat_id, platform, author_id) DO NOTHING",
            [("default", platform, author, session, f"w-{author}", NOW.isoformat())],
        )


async def repost(db: Database, platform: str, author: str, session: str, post: str) -> None:
    async with db.write() as tx:
        await tx.executemany(
            "INSERT INTO session_reposts (chat_id, session_id, platform, author_id, remote_id,"
            " round, decided_at) VALUES (?, ?, ?, ?, ?, 1, ?)"
            " ON CONFLICT (chat_id, platform, remote_id) DO NOTHING",
            [("default", session, platform, author, post, NOW.isoformat())],
        )


async def tallies(db: Database) -> dict[tuple[str, str], tuple[int, int]]:
    async with db.read() as tx:
        rows = await tx.fetchall(
            "SELECT session_id, platform, welcomes, reposts FROM session_tallies"
            " WHERE chat_id = ? AND (welcomes > 0 OR reposts > 0)",
            ("default",),
        )
    return {(str(r[0]), str(r[1])): (int(r[2]), int(r[3])) for r in rows}


async def counted(db: Database) -> dict[tuple[str, str], tuple[int, int]]:
    """What the tallies must say: the rows, counted."""
    out: dict[tuple[str, str], list[int]] = {}
    async with db.read() as tx:
        for i, table in enumerate(("welcomes", "session_reposts")):
            rows = await tx.fetchall(
                f"SELECT session_id, platform, COUNT(*) FROM {table}"
                " WHERE chat_id = ? GROUP BY session_id, platform",
                ("default",),
            )
            for r in rows:
                out.setdefault((str(r[0]), str(r[1])), [0, 0])[i] = int(r[2])
    return {k: (v[0], v[1]) for k, v in out.items()}


async def test_tallies_follow_inserts_duplicates_and_forget_me(store: Database) -> None:
    await welcome(store, "x", "ann", S1)
    await welcome(store, "x", "bob", S1)
    await welcome(store, "x", "ann", S2)  # ann was welcomed once, ever: nothing inserted
    await welcome(store, "bluesky", "cat", S2)
    await repost(store, "x", "ann", S1, "p1")
    await repost(store, "x", "ann", S1, "p2")
    await repost(store, "x", "ann", S1, "p2")  # the same post twice: nothing inserted
    await repost(store, "x", "bob", S1, "p3")
    await repost(store, "bluesky", "cat", S2, "p4")
    assert await tallies(store) == {
        (S1, "x"): (2, 3),
        (S2, "bluesky"): (1, 1),
    }
    assert await tallies(store) == await counted(store)

    async with store.write() as tx:
        await forget_person(tx, chat_id="default", platform="x", author_id="ann", now=NOW)
    assert await tallies(store) == {
        (S1, "x"): (1, 1),
        (S2, "bluesky"): (1, 1),
    }
    assert await tallies(store) == await counted(store)


async def test_the_migration_counts_what_was_spent_before_it(
    store_url: str, tmp_path: Path
) -> None:
    db = await open_url(store_url)
    try:
        before = tmp_path / "before"
        shutil.copytree(migrations_root() / db.dialect, before)
        for path in before.glob("*.sql"):
            if int(path.name[:4]) >= 6:
                path.unlink()
        await migrate(db, before)
        await ensure_chat(db, "default", "MHChat", FakeClock().now())
        for i in range(5):
            await welcome(db, "facebook", f"a{i}", S1)
            await repost(db, "facebook", f"a{i}", S1, f"p{i}")
        await repost(db, "facebook", "a0", S2, "p-late")
        report = await migrate(db)
        assert 6 in report.applied
        assert await tallies(db) == {(S1, "facebook"): (5, 5), (S2, "facebook"): (0, 1)}
        # And the triggers keep counting after it.
        await welcome(db, "facebook", "new", S2)
        assert await tallies(db) == await counted(db)
    finally:
        await db.close()


def test_a_trigger_body_is_one_statement() -> None:
    script = (
        "-- a comment; with a semicolon\n"
        "CREATE TABLE t (a INTEGER);\n"
        "CREATE TRIGGER t_ins AFTER INSERT ON t\n"
        "BEGIN\n"
        "    UPDATE t SET a = a + 1 WHERE a = NEW.a;\n"
        "    DELETE FROM t WHERE a < 0;\n"
        "END;\n"
        "INSERT INTO t VALUES ('x;y');\n"
    )
    statements = split_sql(script)
    assert len(statements) == 3
    assert statements[1].startswith("CREATE TRIGGER")
    assert statements[1].endswith("END")
    assert statements[2] == "INSERT INTO t VALUES ('x;y')"
