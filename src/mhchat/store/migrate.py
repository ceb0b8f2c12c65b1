"""Forward-only SQL migrations with checksums.

Files are ``migrations/<dialect>/NNNN_name.sql``. Each runs in its own transaction together with
the row that records it, so a failing file leaves no partial schema. The runner refuses to go on
when an applied file was edited (checksum differs) or when the database is newer than the code.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from mhchat.errors import MigrationError
from mhchat.store.db import Database

_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")

_CREATE_TABLE = (
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    " version INTEGER PRIMARY KEY, name TEXT NOT NULL, checksum TEXT NOT NULL,"
    " applied_at TEXT NOT NULL)"
)


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class MigrationReport:
    applied: tuple[int, ...]
    current: int


def migrations_root() -> Path:
    """Where the .sql files are: inside the installed package, or at the checkout's root."""
    packaged = Path(__file__).resolve().parent.parent / "migrations"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[3] / "migrations"


def load_migrations(folder: Path) -> list[Migration]:
    found: list[Migration] = []
    for path in sorted(folder.glob("*.sql")):
        match = _NAME.match(path.name)
        if match is None:
            raise MigrationError(
                f"{path.name}: migration files must be named NNNN_name.sql (e.g. 0003_flags.sql)"
            )
        found.append(Migration(int(match[1]), match[2], path.read_text(encoding="utf-8")))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"two migration files share a number in {folder}")
    return found


async def applied_migrations(db: Database) -> dict[int, tuple[str, str]]:
    async with db.write() as tx:
        await tx.execute(_CREATE_TABLE)
    async with db.read() as tx:
        rows = await tx.fetchall("SELECT version, name, checksum FROM schema_migrations")
    return {int(r[0]): (str(r[1]), str(r[2])) for r in rows}


async def migrate(db: Database, folder: Path | None = None) -> MigrationReport:
    """Bring the schema up to date; raise ``MigrationError`` when it is unsafe to.

    A backend shared by several processes offers ``migration_lock()`` (PostgreSQL: an advisory
    lock) so that two instances starting together apply each file once, in turn.
    """
    lock = getattr(db, "migration_lock", None)
    if lock is None:
        return await _migrate(db, folder)
    async with lock():
        return await _migrate(db, folder)


async def _migrate(db: Database, folder: Path | None) -> MigrationReport:
    files = load_migrations(folder or migrations_root() / db.dialect)
    applied = await applied_migrations(db)
    known = {m.version: m for m in files}
    newest_known = max(known, default=0)
    for version, (name, checksum) in sorted(applied.items()):
        migration = known.get(version)
        if migration is None:
            if version > newest_known:
                raise MigrationError(
                    f"the database is at schema version {max(applied)}, newer than this mhchat"
                    f" knows ({newest_known}); upgrade mhchat or use a matching database"
                )
            raise MigrationError(f"applied migration {version:04d}_{name} is missing from disk")
        if migration.checksum != checksum:
            raise MigrationError(
                f"migration {version:04d}_{name}.sql was edited after it was applied;"
                " applied migrations must never change: add a new migration instead"
            )
    done: list[int] = []
    for migration in files:
        if migration.version in applied:
            continue
        try:
            await db.run_script(
                migration.sql,
                (
                    migration.version,
                    migration.name,
                    migration.checksum,
                    datetime.now(UTC).isoformat(),
                ),
            )
        except MigrationError:
            raise
        except Exception as exc:
            raise MigrationError(
                f"migration {migration.version:04d}_{migration.name}.sql failed and was rolled"
                f" back: {exc}"
            ) from exc
        done.append(migration.version)
    return MigrationReport(applied=tuple(done), current=max([*applied, *done], default=0))
