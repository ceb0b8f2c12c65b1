"""Fixtures shared by every test directory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from mhchat.store.chats import ensure_chat
from mhchat.store.db import SqliteDatabase
from mhchat.store.migrate import migrate
from mhchat.testing import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[SqliteDatabase]:
    """A migrated SQLite database in a temporary folder."""
    database = await SqliteDatabase.open(tmp_path / "mhchat.db")
    await migrate(database)
    await ensure_chat(database, "default", "MHChat", FakeClock().now())
    try:
        yield database
    finally:
        await database.close()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session
