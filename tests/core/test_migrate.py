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
