"""Open the database a URL names."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from mhchat.config import MASK, DatabaseSettings, shown_url
from mhchat.errors import DatabaseUnavailable
from mhchat.store.db import Database, SqliteDatabase

if TYPE_CHECKING:
    from mhchat.store.postgres import PostgresDatabase


def _reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "the connection timed out"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


async def open_database(settings: DatabaseSettings, *, create: bool = True) -> Database:
    """Open the database, or raise DatabaseUnavailable saying why in plain words.

    With ``create=False`` (commands that only read) a SQLite file that is not there is
    refused: opening it would leave an empty database, and its folders, behind.
    """
    path = settings.sqlite_path
    if path is not None:
        if not create and path != ":memory:" and not await asyncio.to_thread(Path(path).is_file):
            raise DatabaseUnavailable(f"there is no database at {path}; check [database] url")
        try:
            return await SqliteDatabase.open(path)
        except (OSError, sqlite3.Error) as exc:
            raise DatabaseUnavailable(
                f"the SQLite database {path} cannot be opened: {_reason(exc)}"
            ) from None
    return await open_postgres(settings.url)


async def open_postgres(url: str) -> PostgresDatabase:
    """Connect to PostgreSQL, or raise DatabaseUnavailable with the password masked."""
    import asyncpg  # noqa: PLC0415 - optional extra

    from mhchat.store.postgres import PostgresDatabase  # noqa: PLC0415 - optional extra

    try:
        return await PostgresDatabase.open(url)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        reason = _reason(exc)
        password = urlsplit(url).password
        if password:
            reason = reason.replace(password, MASK)
        raise DatabaseUnavailable(f"cannot connect to {shown_url(url)}: {reason}") from None
