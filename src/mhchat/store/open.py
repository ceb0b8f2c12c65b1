"""Open the database a URL names."""

from __future__ import annotations

from mhchat.config import DatabaseSettings
from mhchat.store.db import Database, SqliteDatabase


async def open_database(settings: DatabaseSettings) -> Database:
    path = settings.sqlite_path
    if path is not None:
        return await SqliteDatabase.open(path)
    from mhchat.store.postgres import PostgresDatabase  # noqa: PLC0415 - optional extra

    return await PostgresDatabase.open(settings.url)
