"""Fixtures for the facilitation tests: a migrated database with a chat, and an ingest path."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

from mhchat.actions import Purpose
from mhchat.bus import Envelope, EventBus
from mhchat.events import Event, PlatformName
from mhchat.facilitation.handler import FacilitationHandler
from mhchat.facilitation.settings import FacilitationSettings, parse_facilitation
from mhchat.ingest import IngestWorker
from mhchat.ledger import Mode
from mhchat.store.db import Database, SqliteDatabase
from mhchat.store.posts import StoredBatch
from mhchat.testing import FakeClock

# Wednesday 25 November 2026, 20:00 Europe/London (GMT) is 20:00 UTC.
SESSION_ID = "2026-11-25"
START = datetime(2026, 11, 25, 20, 0, tzinfo=UTC)


def settings_from(doc: dict[str, Any] | None = None) -> FacilitationSettings:
    parsed, problems = parse_facilitation(doc or {})
    assert problems == []
    return parsed


@dataclass
class Harness:
    db: Database
    clock: FakeClock
    handler: FacilitationHandler
    worker: IngestWorker
    errors: list[tuple[str, BaseException]] = field(default_factory=list)

    async def feed(self, events: Sequence[Event], platform: str = "fake") -> StoredBatch:
        batch = await self.worker.process([Envelope(PlatformName(platform), list(events), None)])
        if self.errors:
            raise self.errors[0][1]
        return batch

    async def rows(self, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        async with self.db.read() as tx:
            rows: list[tuple[Any, ...]] = await tx.fetchall(sql, params)
        return rows


async def add_chat(db: Database, chat_id: str = "default") -> None:
    async with db.write() as tx:
        await tx.execute(
            "INSERT INTO chats (chat_id, hashtag, created_at) VALUES (?, ?, ?)"
            " ON CONFLICT (chat_id) DO NOTHING",
            (chat_id, "MHChat", "2026-01-01T00:00:00+00:00"),
        )


def make_harness(
    db: Database,
    clock: FakeClock,
    settings: FacilitationSettings | None = None,
    modes: dict[Purpose, Mode] | None = None,
) -> Harness:
    handler = FacilitationHandler(
        settings or settings_from(),
        modes=modes if modes is not None else {Purpose.SIGNPOSTING: Mode.APPROVE_FIRST},
    )
    errors: list[tuple[str, BaseException]] = []
    worker = IngestWorker(
        bus=EventBus(),
        db=db,
        clock=clock,
        chat_id="default",
        handlers=[handler],
        error_hook=lambda where, exc: errors.append((where, exc)),
    )
    return Harness(db=db, clock=clock, handler=handler, worker=worker, errors=errors)


@pytest.fixture
async def harness(db: SqliteDatabase) -> Harness:
    await add_chat(db)
    return make_harness(db, FakeClock(START))
