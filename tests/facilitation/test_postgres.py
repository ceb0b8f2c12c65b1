"""The scripted session on PostgreSQL: the facilitation SQL is portable, same results."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from mhchat.store.migrate import migrate
from mhchat.store.postgres import PostgresDatabase

from . import test_scripted_session as scripted
from .conftest import Harness

pytestmark = pytest.mark.scale

PG_HOST = os.environ.get("MHCHAT_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("MHCHAT_TEST_PG_PORT", "5432"))
ADMIN_URL = f"postgresql://postgres@{PG_HOST}:{PG_PORT}/postgres"


def _require_postgres() -> None:
    try:
        with socket.create_connection((PG_HOST, PG_PORT), timeout=1.0):
            return
    except OSError:
        pytest.fail(
            f"PostgreSQL is not answering on {PG_HOST}:{PG_PORT}: run scripts/services"
            " (it starts PostgreSQL) and try again.",
            pytrace=False,
        )


@pytest.fixture
async def pg() -> AsyncIterator[PostgresDatabase]:
    _require_postgres()
    name = f"mhchat_fac_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(ADMIN_URL)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    db = await PostgresDatabase.open(f"postgresql://postgres@{PG_HOST}:{PG_PORT}/{name}")
    try:
        await migrate(db)
        yield db
    finally:
        await db.close()
        admin = await asyncpg.connect(ADMIN_URL)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


async def test_scripted_session_on_postgresql(
    pg: PostgresDatabase, capsys: pytest.CaptureFixture[str]
) -> None:
    played: tuple[Harness, scripted.Script] = await scripted.play(pg)
    checks = scripted.TestScriptedSession()
    await checks.test_size(played)
    await checks.test_everyone_once_before_anyone_twice_while_budget_lasts(played, capsys)
    await checks.test_no_post_reposted_twice_and_none_unsafe_or_own(played)
    await checks.test_each_first_timer_welcomed_exactly_once(played)
    await checks.test_every_crisis_post_in_the_safety_queue_with_signposting(played)
    await checks.test_questions_and_threads_grouped_including_out_of_order(played)
    await checks.test_figures_for_the_debrief(played)
    await checks.test_deletion_undoes_our_repost(played)
