"""``mhchat db copy``: move an existing SQLite database into PostgreSQL.

The target is migrated to the same schema first and must be empty. Every table is copied in
one PostgreSQL transaction (a failure leaves the target as it was), with a progress bar per
table, ids kept as they are and the id sequences moved past them; then the row counts of both
sides are compared table by table and shown.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from mhchat.config import DatabaseSettings
from mhchat.errors import DatabaseUnavailable, MigrationError
from mhchat.store.db import SqliteDatabase
from mhchat.store.migrate import applied_migrations, migrate
from mhchat.store.open import open_postgres

CHUNK = 2000
FIRST = ("chats", "actions")
"""Tables others refer to (foreign keys) go first."""
SKIP = frozenset({"schema_migrations", "leases"})


class CopyError(Exception):
    """The copy cannot be done; the message says why in plain words."""


@dataclass(frozen=True, slots=True)
class TableCount:
    table: str
    source: int
    target: int

    @property
    def ok(self) -> bool:
        return self.source == self.target


def add_parser(subparsers: Any) -> None:
    db = subparsers.add_parser("db", help="database tools (copy SQLite into PostgreSQL)")
    sub = db.add_subparsers(dest="db_command", metavar="TOOL")
    copy = sub.add_parser(
        "copy",
        help="copy an SQLite database into an empty PostgreSQL database, with verified counts",
    )
    copy.add_argument("--from", dest="source", required=True, help="sqlite:///path/to/mhchat.db")
    copy.add_argument("--to", dest="target", required=True, help="postgresql://user@host/db")
    copy.set_defaults(func=_copy_command)
    db.set_defaults(func=lambda _args: (db.print_help(), 0)[1])


def _copy_command(args: argparse.Namespace) -> int:
    console = Console(stderr=False)
    errors = Console(stderr=True, highlight=False)
    try:
        counts = asyncio.run(copy_database(args.source, args.target, console=console))
    except (CopyError, MigrationError, DatabaseUnavailable) as exc:
        errors.print(f"mhchat cannot copy the database: {exc}", markup=False, soft_wrap=True)
        return 1
    table = Table(title="Rows copied")
    table.add_column("table")
    table.add_column("SQLite", justify="right")
    table.add_column("PostgreSQL", justify="right")
    table.add_column("")
    for c in counts:
        table.add_row(c.table, str(c.source), str(c.target), "ok" if c.ok else "DIFFERENT")
    console.print(table)
    if not all(c.ok for c in counts):
        errors.print("The counts differ: the copy is not complete.")
        return 1
    console.print(f"Copied {sum(c.source for c in counts)} rows; every table's count matches.")
    return 0


def _ordered(tables: Sequence[str]) -> list[str]:
    first = [t for t in FIRST if t in tables]
    return first + sorted(t for t in tables if t not in FIRST)


async def copy_database(
    source_url: str, target_url: str, *, console: Console | None = None
) -> list[TableCount]:
    """Copy every table; return the verified counts."""
    source_path = DatabaseSettings(url=source_url).sqlite_path
    if source_path is None or source_path == ":memory:":
        raise CopyError("--from must be an SQLite file URL such as sqlite:///var/mhchat.db")
    if not target_url.startswith(("postgresql://", "postgres://")):
        raise CopyError("--to must be a PostgreSQL URL such as postgresql://mhchat@db/mhchat")
    # Opening a SQLite path that is not there would create an empty database (and its
    # folders) only to copy nothing out of it.
    if not await asyncio.to_thread(Path(source_path).is_file):
        raise CopyError(f"there is no SQLite database at {source_path}")
    # The target first: a refused connection must not leave the source's worker thread
    # running, which would keep the process alive after the error.
    target = await open_postgres(target_url)
    source: SqliteDatabase | None = None
    try:
        source = await SqliteDatabase.open(source_path)
        applied = await applied_migrations(source)
        report = await migrate(target)
        if max(applied, default=0) != report.current:
            raise CopyError(
                f"the SQLite database is at schema version {max(applied, default=0)} and this"
                f" mhchat at {report.current}: run `mhchat migrate` on it first"
            )
        async with source.read() as tx:
            names = [
                str(r[0])
                for r in await tx.fetchall(
                    "SELECT name FROM sqlite_master WHERE type = 'table'"
                    " AND name NOT LIKE 'sqlite_%'"
                )
            ]
        tables = _ordered([n for n in names if n not in SKIP])
        async with target.pool.acquire() as conn:
            for table in tables:
                if await conn.fetchval(f'SELECT EXISTS (SELECT 1 FROM "{table}")'):  # noqa: S608
                    raise CopyError(
                        f"the PostgreSQL database already has rows in {table}: copy into an"
                        " empty database"
                    )
            async with conn.transaction():
                # Rows go across as they are, the derived session tallies included: the
                # triggers that keep those tallies would count the copied rows a second time.
                for table in tables:
                    await conn.execute(f'ALTER TABLE "{table}" DISABLE TRIGGER USER')
                with _progress(console) as progress:
                    for table in tables:
                        await _copy_table(source, conn, table, progress)
                for table in tables:
                    await conn.execute(f'ALTER TABLE "{table}" ENABLE TRIGGER USER')
                for table in tables:
                    await _move_sequence(conn, table)
        return await _counts(source, target, tables)
    finally:
        if source is not None:
            await source.close()
        await target.close()


def _progress(console: Console | None) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=console,
        transient=False,
    )


async def _copy_table(source: SqliteDatabase, conn: Any, table: str, progress: Progress) -> None:
    async with source.read() as tx:
        info = await tx.fetchall(f'PRAGMA table_info("{table}")')
        total_row = await tx.fetchone(f'SELECT COUNT(*) FROM "{table}"')  # noqa: S608
    columns = [str(r[1]) for r in info]
    total = int(total_row[0]) if total_row else 0
    types = {
        str(r[0]): str(r[1])
        for r in await conn.fetch(
            "SELECT column_name, data_type FROM information_schema.columns"
            " WHERE table_schema = current_schema() AND table_name = $1",
            table,
        )
    }
    missing = [c for c in columns if c not in types]
    if missing:
        raise CopyError(f"PostgreSQL's {table} has no column {', '.join(missing)}")
    convert = [_converter(types[c]) for c in columns]
    task = progress.add_task(table, total=total)
    names = ", ".join(f'"{c}"' for c in columns)
    offset = 0
    while True:
        # rowid order: stable, and cheap on SQLite's b-tree.
        async with source.read() as tx:
            rows = await tx.fetchall(
                f'SELECT {names} FROM "{table}" ORDER BY rowid LIMIT ? OFFSET ?',  # noqa: S608
                (CHUNK, offset),
            )
        if not rows:
            break
        records = [tuple(f(v) for f, v in zip(convert, row, strict=True)) for row in rows]
        await conn.copy_records_to_table(table, records=records, columns=columns)
        offset += len(rows)
        progress.update(task, completed=offset)


def _converter(data_type: str) -> Any:
    def keep(value: Any) -> Any:
        return value

    if data_type in ("integer", "bigint", "smallint"):
        return lambda v: None if v is None else int(v)
    if data_type in ("double precision", "real", "numeric"):
        return lambda v: None if v is None else float(v)
    if data_type == "text":
        return lambda v: None if v is None else str(v)
    return keep


async def _move_sequence(conn: Any, table: str) -> None:
    """Identity columns must hand out ids above the copied ones."""
    has_id = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM information_schema.columns WHERE table_schema ="
        " current_schema() AND table_name = $1 AND column_name = 'id')",
        table,
    )
    if not has_id:
        return
    sequence = await conn.fetchval("SELECT pg_get_serial_sequence($1, 'id')", table)
    if sequence is None:
        return
    top = await conn.fetchval(f'SELECT max(id) FROM "{table}"')  # noqa: S608
    if top is not None:
        await conn.execute("SELECT setval($1, $2)", sequence, int(top))


async def _counts(source: SqliteDatabase, target: Any, tables: Sequence[str]) -> list[TableCount]:
    result: list[TableCount] = []
    for table in tables:
        async with source.read() as tx:
            s = await tx.fetchone(f'SELECT COUNT(*) FROM "{table}"')  # noqa: S608
        async with target.read() as tx:
            t = await tx.fetchone(f'SELECT COUNT(*) FROM "{table}"')  # noqa: S608
        result.append(TableCount(table, int(s[0]) if s else -1, int(t[0]) if t else -1))
    return result
