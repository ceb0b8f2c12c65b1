"""Fixtures for the scale-out tests: real PostgreSQL and NATS JetStream on 127.0.0.1.

These tests never skip. When a server is down they fail with a message that says how to start
it (``scripts/services`` does it before the test run). Every test gets its own database and its
own JetStream stream names, and removes them afterwards.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import asyncpg
import nats
import pytest
from nats.aio.client import Client as NatsClient

from mhchat.store.chats import ensure_chat
from mhchat.store.db import Database, SqliteDatabase
from mhchat.store.migrate import migrate
from mhchat.store.postgres import PostgresDatabase
from mhchat.testing import FakeClock

PG_HOST = os.environ.get("MHCHAT_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("MHCHAT_TEST_PG_PORT", "5432"))
NATS_URL = os.environ.get("MHCHAT_TEST_NATS_URL", "nats://127.0.0.1:4222")
ADMIN_URL = f"postgresql://postgres@{PG_HOST}:{PG_PORT}/postgres"


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def require_postgres() -> None:
    if not _port_open(PG_HOST, PG_PORT):
        pytest.fail(
            f"PostgreSQL is not answering on {PG_HOST}:{PG_PORT}. The scale tests need it:"
            " run scripts/services (it starts PostgreSQL and NATS) and try again.",
            pytrace=False,
        )


def require_nats() -> None:
    host, port = NATS_URL.removeprefix("nats://").split(":")
    if not _port_open(host, int(port)):
        pytest.fail(
            f"NATS JetStream is not answering on {NATS_URL}. The scale tests need it:"
            " run scripts/services (it starts PostgreSQL and NATS) and try again.",
            pytrace=False,
        )


def unique(prefix: str) -> str:
    return f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:10]}"


class PgDatabases:
    """Creates throwaway databases and drops them at the end of the test."""

    def __init__(self) -> None:
        self.created: list[str] = []

    async def create(self) -> str:
        require_postgres()
        name = unique("mhchat_test")
        conn = await asyncpg.connect(ADMIN_URL)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        self.created.append(name)
        return f"postgresql://postgres@{PG_HOST}:{PG_PORT}/{name}"

    async def drop_all(self) -> None:
        if not self.created:
            return
        conn = await asyncpg.connect(ADMIN_URL)
        try:
            for name in self.created:
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


@pytest.fixture
async def pg_databases() -> AsyncIterator[PgDatabases]:
    dbs = PgDatabases()
    try:
        yield dbs
    finally:
        await dbs.drop_all()


@pytest.fixture
async def pg_url(pg_databases: PgDatabases) -> str:
    return await pg_databases.create()


BackendOpener = Callable[[], "AsyncIterator[Database]"]


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def store_url(backend: str, tmp_path: Path, pg_databases: PgDatabases) -> str:
    """A fresh, empty database of the parametrised backend, as a URL."""
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'mhchat.db'}"
    return await pg_databases.create()


async def open_url(url: str) -> Database:
    if url.startswith("sqlite:///"):
        return await SqliteDatabase.open(url.removeprefix("sqlite:///"))
    return await PostgresDatabase.open(url)


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Database]:
    """A migrated database of the parametrised backend, with the default chat."""
    database = await open_url(store_url)
    await migrate(database)
    await ensure_chat(database, "default", "MHChat", FakeClock().now())
    try:
        yield database
    finally:
        await database.close()


@pytest.fixture
async def nats_client() -> AsyncIterator[NatsClient]:
    require_nats()
    nc = await nats.connect(NATS_URL, connect_timeout=2, max_reconnect_attempts=0)
    try:
        yield nc
    finally:
        await nc.close()
