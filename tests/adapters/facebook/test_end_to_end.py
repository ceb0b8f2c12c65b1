"""Webhook -> real event bus -> ingest worker -> SQLite: acknowledged once stored, stored once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest
import structlog
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from mhchat.adapters import AdapterContext, ChatInfo
from mhchat.bus import BusSink, EventBus
from mhchat.emulators.facebook import sign
from mhchat.ingest import IngestWorker
from mhchat.runtime import DbState
from mhchat.store.db import SqliteDatabase
from mhchat.testing import FakeClock
from mhchat_facebook import FacebookAdapter, create

from .conftest import FACEBOOK, RECORDED_PAGE, envelope, load

SECRET = "end-to-end-secret"


async def count(db: SqliteDatabase, sql: str) -> int:
    async with db.read() as tx:
        row = await tx.fetchone(sql)
    assert row is not None
    return int(row[0])


@pytest.fixture
async def served(
    db: SqliteDatabase, clock: FakeClock
) -> AsyncIterator[tuple[TestClient[web.Request, web.Application], EventBus, FacebookAdapter]]:
    bus = EventBus(capacity=1)
    async with db.write() as tx:
        await tx.execute(
            "INSERT INTO chats (chat_id, hashtag, created_at) VALUES (?, ?, ?)"
            " ON CONFLICT (chat_id) DO NOTHING",
            ("default", "MHChat", clock.now().isoformat()),
        )
    async with aiohttp.ClientSession() as http:
        ctx = AdapterContext(
            platform=FACEBOOK,
            chat=ChatInfo(chat_id="default", hashtag="MHChat"),
            sink=BusSink(bus, FACEBOOK),
            http=http,
            clock=clock,
            log=structlog.get_logger("test"),
            state=DbState(db, "default", FACEBOOK, clock),
            settings={
                "page_id": RECORDED_PAGE,
                "graph_url": "http://127.0.0.1:9",  # no Graph calls matter here
                "connect_timeout": 0.2,
                "ack_timeout": 1.0,
            },
            secrets={"APP_SECRET": SECRET, "VERIFY_TOKEN": "v", "PAGE_ACCESS_TOKEN": "t"},
        )
        adapter = create(ctx)
        app = web.Application()
        app.add_subapp("/webhooks/facebook", adapter.webhook_app())
        async with TestClient(TestServer(app)) as client:
            await adapter.start()
            yield client, bus, adapter
            await adapter.stop()


async def post(client: TestClient[web.Request, web.Application], body: bytes) -> int:
    resp = await client.post(
        "/webhooks/facebook", data=body, headers={"X-Hub-Signature-256": sign(body, SECRET)}
    )
    return resp.status


class TestEndToEnd:
    async def test_redelivered_batch_is_stored_once_and_acked_after_storing(
        self,
        served: tuple[TestClient[web.Request, web.Application], EventBus, FacebookAdapter],
        db: SqliteDatabase,
        clock: FakeClock,
    ) -> None:
        client, bus, _ = served
        worker = IngestWorker(bus=bus, db=db, clock=clock, chat_id="default")
        task = asyncio.create_task(worker.run())
        try:
            body = envelope(
                [load("feed-change-status-add.json"), load("feed-change-comment-add.json")],
                RECORDED_PAGE,
            )
            assert await post(client, body) == 200
            # The 200 came after the commit: the rows are there already.
            assert await count(db, "SELECT count(*) FROM posts") == 2
            assert await post(client, body) == 200  # Meta's retry
            assert await count(db, "SELECT count(*) FROM posts") == 2
            assert worker.stats.duplicates == 2
            saved = await DbState(db, "default", FACEBOOK, clock).get("facebook:alive_at")
            assert saved == clock.now().isoformat()
        finally:
            task.cancel()

    async def test_full_bus_is_503_and_the_retry_after_draining_is_stored(
        self,
        served: tuple[TestClient[web.Request, web.Application], EventBus, FacebookAdapter],
        db: SqliteDatabase,
        clock: FakeClock,
    ) -> None:
        client, bus, _ = served
        first = envelope([load("feed-change-status-add.json")], RECORDED_PAGE)
        second = envelope([load("feed-change-comment-add.json")], RECORDED_PAGE)
        pending = asyncio.create_task(post(client, first))  # fills the one-slot bus
        for _ in range(100):
            if bus.full:
                break
            await asyncio.sleep(0.01)
        assert await post(client, second) == 503
        worker = IngestWorker(bus=bus, db=db, clock=clock, chat_id="default")
        task = asyncio.create_task(worker.run())
        try:
            assert await pending == 200
            assert await post(client, second) == 200
            assert await count(db, "SELECT count(*) FROM posts") == 2
        finally:
            task.cancel()
