"""The migration runner: forward-only, checksummed, one transaction per file."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from mhchat.errors import MigrationError
from mhchat.store.db import SqliteDatabase
from mhchat.store.migrate import migrate, migrations_root


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    target = tmp_path / "migrations"
    shutil.copytree(migrations_root() / "sqlite", target)
    return target


async def tables(db: SqliteDatabase) -> set[str]:
    async with db.read() as tx:
        rows = await tx.fetchall("SELECT name FROM sqlite_master WHERE type = 'table'")
    return {str(r[0]) for r in rows}


class TestMigrate:
    async def test_applies_every_file_from_empty(self, tmp_path: Path, folder: Path) -> None:
        """An empty database gets every migration, in order."""
        db = await SqliteDatabase.open(tmp_path / "a.db")
        try:
            files = sorted(folder.glob("*.sql"))  # noqa: ASYNC240 - a test's tmp folder
            report = await migrate(db, folder)
            assert report.applied == tuple(int(f.name[:4]) for f in files)
            assert {"posts", "actions", "participants", "schema_migrations"} <= await tables(db)
        finally:
            await db.close()

    async def test_second_run_is_a_no_op(self, tmp_path: Path, folder: Path) -> None:
        db = await SqliteDatabase.open(tmp_path / "a.db")
        try:
            first = await migrate(db, folder)
            second = await migrate(db, folder)
            assert second.applied == ()
            assert second.current == first.current
        finally:
            await db.close()

    async def test_edited_applied_file_is_refused(self, tmp_path: Path, folder: Path) -> None:
        db = await SqliteDatabase.open(tmp_path / "a.db")
        try:
            await migrate(db, folder)
            first = sorted(folder.glob("*.sql"))[0]  # noqa: ASYNC240 - a test's tmp folder
            first.write_text(first.read_text() + "\n-- edited\n")
            with pytest.raises(MigrationError, match="edited after it was applied"):
                await migrate(db, folder)
        finally:
            await db.close()

    async def test_failing_file_leaves_no_partial_schema(
        self, tmp_path: Path, folder: Path
    ) -> None:
        """A migration whose second statement fails leaves neither statement behind."""
        (folder / "0099_broken.sql").write_text(
            "CREATE TABLE half_made (id INTEGER);\nCREATE TABLE posts (dup INTEGER);\n"
        )
        db = await SqliteDatabase.open(tmp_path / "a.db")
        try:
            with pytest.raises(MigrationError, match="0099_broken"):
                await migrate(db, folder)
            assert "half_made" not in await tables(db)
            async with db.read() as tx:
                row = await tx.fetchone("SELECT max(version) FROM schema_migrations")
            assert row is not None
            assert row[0] < 99
        finally:
            await db.close()

    async def test_newer_database_is_refused(self, tmp_path: Path, folder: Path) -> None:
        db = await SqliteDatabase.open(tmp_path / "a.db")
        try:
            await migrate(db, folder)
            async with db.write() as tx:
                await tx.execute(
                    "INSERT INTO schema_migrations VALUES (9999, 'future', 'x', 'now')"
                )
            with pytest.raises(MigrationError, match="newer than this mhchat"):
                await migrate(db, folder)
        finally:
            await db.close()

    async def test_badly_named_file_is_explained(self, tmp_path: Path, folder: Path) -> None:
        (folder / "add_things.sql").write_text("SELECT 1;")
        db = await SqliteDatabase.open(tmp_path / "a.db")
        try:
            with pytest.raises(MigrationError, match=r"NNNN_name\.sql"):
                await migrate(db, folder)
        finally:
            await db.close()


class TestActionKeysPerChat:
    async def test_upgrade_keeps_the_ledger_and_scopes_keys_by_chat(
        self, tmp_path: Path, folder: Path
    ) -> None:
        """0004 rebuilds the ledger: rows and transitions survive; a key is unique per chat."""
        from datetime import UTC, datetime  # noqa: PLC0415

        from mhchat.actions import Publish, Purpose  # noqa: PLC0415
        from mhchat.events import PlatformName  # noqa: PLC0415
        from mhchat.ledger import Decision, Mode, record  # noqa: PLC0415

        older = tmp_path / "older"
        older.mkdir()
        for f in sorted(folder.glob("*.sql")):  # noqa: ASYNC240 - a test's tmp folder
            if int(f.name[:4]) < 4:
                shutil.copy(f, older / f.name)
        db = await SqliteDatabase.open(tmp_path / "a.db")

        def question(chat: str) -> tuple[str, Decision]:
            action = Publish(
                key="question:2026-11-25:1:x",
                platform=PlatformName("x"),
                purpose=Purpose.QUESTION,
                text=f"Q1 for {chat}",
            )
            return chat, Decision(action=action, reason="due")

        now = datetime(2026, 11, 25, 20, tzinfo=UTC)
        try:
            await migrate(db, older)
            async with db.write() as tx:
                # A row as the 0001 schema held it, written as the earlier code wrote it.
                await tx.execute(
                    "INSERT INTO actions (chat_id, key, platform, kind, purpose, payload,"
                    " state, mode, reason, created_at, updated_at) VALUES ('alpha',"
                    " 'question:2026-11-25:1:x', 'x', 'publish', 'question', '{}', 'sent',"
                    " 'auto', 'due', 't', 't')"
                )
                await tx.execute(
                    "INSERT INTO action_transitions (action_id, to_state, at)"
                    " VALUES (1, 'sent', 't')"
                )
            await migrate(db, folder)
            async with db.read() as tx:
                kept = await tx.fetchall("SELECT chat_id, key FROM actions")
                transitions = await tx.fetchall("SELECT action_id FROM action_transitions")
            assert kept == [("alpha", "question:2026-11-25:1:x")]
            assert len(transitions) == 1
            for chat in ("alpha", "beta"):
                _, decision = question(chat)
                async with db.write() as tx:
                    new = await record(
                        tx,
                        chat_id=chat,
                        decisions=[decision],
                        modes={Purpose.QUESTION: Mode.AUTO},
                        now=now,
                    )
                assert new == ([] if chat == "alpha" else ["question:2026-11-25:1:x"])
        finally:
            await db.close()
