"""Webhook intake scales horizontally: a standby instance takes signed Facebook deliveries,
publishes them to JetStream, and the leader's ingest consumer stores them."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import asyncpg
import nats
import pytest
from aiohttp.test_utils import TestServer

from mhchat.config import parse_settings
from mhchat.emulators.facebook import FacebookEmulator, Person
from mhchat.service import build_service
from mhchat.web.keys import RUNTIME

from .conftest import NATS_URL, PgDatabases, require_nats, unique

pytestmark = [pytest.mark.scale, pytest.mark.timeout(120)]


async def until(predicate: Any, within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if await predicate():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


async def test_a_standby_answers_webhooks_and_the_leader_stores_them(
    pg_databases: PgDatabases,
) -> None:
    require_nats()
    pg_url = await pg_databases.create()
    stream = unique("MHCHAT_HOOKS")
    emu = FacebookEmulator()
    await emu.start()
    doc: dict[str, Any] = {
        "database": {"url": pg_url},
        "bus": {
            "backend": "nats",
            "nats_url": NATS_URL,
            "stream": stream,
            "subject_prefix": stream.lower(),
        },
        "leases": {"timeout_seconds": 5.0, "renew_seconds": 0.5},
        "adapters": {
            "facebook": {
                "page_id": emu.page.id,
                "graph_url": emu.base_url,
                "request_timeout": 1.0,
                "connect_timeout": 1.0,
                "ack_timeout": 2.0,
            }
        },
    }
    env = {
        "MHCHAT_FACEBOOK_APP_SECRET": emu.app_secret,
        "MHCHAT_FACEBOOK_VERIFY_TOKEN": "verify-me",
        "MHCHAT_FACEBOOK_PAGE_ACCESS_TOKEN": emu.page_token,
    }
    servers: list[TestServer] = []
    conn = await asyncpg.connect(pg_url)
    try:
        leader = TestServer(await build_service(parse_settings(doc, env)))
        await leader.start_server()
        servers.append(leader)
        lead_rt = leader.app[RUNTIME]

        async def leads() -> bool:
            return lead_rt.leases is not None and len(lead_rt.leases.held()) >= 3

        await until(leads, 20, "the first instance to lead")
        standby = TestServer(await build_service(parse_settings(doc, env)))
        await standby.start_server()
        servers.append(standby)
        standby_rt = standby.app[RUNTIME]
        await asyncio.sleep(1.0)
        assert standby_rt.leases is not None
        assert standby_rt.leases.held() == {}
        # The platform calls the standby (a load balancer's choice).
        emu.webhook_url = str(standby.make_url("/webhooks/facebook"))
        ids = [
            await emu.visitor_post(Person(f"10{i}", f"P{i}"), f"A1 hi {i} #MHChat")
            for i in range(5)
        ]

        async def stored() -> bool:
            rows = await conn.fetch("SELECT remote_id FROM posts")
            return {r[0] for r in rows} >= set(ids)

        await until(stored, 20, "the deliveries to be stored")
        assert standby_rt.worker is not None
        assert standby_rt.worker.stats.stored == 0  # the leader's consumer stored them
        assert lead_rt.worker is not None
        assert lead_rt.worker.stats.stored >= 5
    finally:
        await conn.close()
        for server in reversed(servers):
            await server.close()
        await emu.stop()
        with contextlib.suppress(Exception):
            nc = await nats.connect(NATS_URL)
            await nc.jetstream().delete_stream(stream)
            await nc.close()
