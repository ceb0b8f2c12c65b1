"""Fixtures for the Facebook page adapter: the Graph emulator, an adapter, and a real aiohttp app
with the adapter's webhook sub-application mounted at /webhooks/facebook."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from tests.adapters.conftest import adapter_context, started

from mhchat.adapters import AdapterContext, IntakeSpool
from mhchat.clock import Clock
from mhchat.emulators.facebook import FacebookEmulator, Person, meta_json, sign
from mhchat.events import AdapterHealthChanged, Event, PlatformName
from mhchat.testing import RecordingSink
from mhchat_facebook import FacebookAdapter, create

PAYLOADS = Path(__file__).parent / "payloads"
FACEBOOK = PlatformName("facebook")
VERIFY_TOKEN = "meatyhamhock"  # the documented verification example's token
RECORDED_PAGE = "137542570280222"  # the page of the recorded feed changes
ALICE = Person("139560936744123", "Alice")


def load_text(name: str) -> str:
    return (PAYLOADS / name).read_text(encoding="utf-8")


def load(name: str) -> Any:
    return json.loads(load_text(name))


def envelope(changes: list[dict[str, Any]], page_id: str, time: int = 1511951020) -> bytes:
    """A webhook body as Meta serialises it."""
    body = {"object": "page", "entry": [{"id": page_id, "time": time, "changes": changes}]}
    return meta_json(body)


def content(sink: RecordingSink) -> list[Event]:
    """What the sink got from the platform's content (health reports left out)."""
    return [e for e in sink.events if not isinstance(e, AdapterHealthChanged)]


def settings_for(emulator: FacebookEmulator, **extra: Any) -> dict[str, Any]:
    return {
        "page_id": emulator.page.id,
        "graph_url": emulator.base_url,
        "request_timeout": 1.0,
        "connect_timeout": 1.0,
        "ack_timeout": 0.5,
        **extra,
    }


def secrets_for(emulator: FacebookEmulator, **extra: str) -> dict[str, str]:
    return {
        "APP_SECRET": emulator.app_secret,
        "VERIFY_TOKEN": VERIFY_TOKEN,
        "PAGE_ACCESS_TOKEN": emulator.page_token,
        **extra,
    }


def context(
    http: aiohttp.ClientSession,
    sink: RecordingSink,
    settings: Mapping[str, Any],
    secrets: Mapping[str, str],
    clock: Clock | None = None,
) -> AdapterContext:
    return adapter_context(FACEBOOK, http, sink, settings, secrets, clock=clock)


@pytest.fixture
async def emulator() -> AsyncIterator[FacebookEmulator]:
    async with started(FacebookEmulator(retry_delays=(0.0, 0.02, 0.05))) as emu:
        yield emu


@dataclass
class Rig:
    """A started adapter whose webhook sub-app is served by a parent aiohttp app."""

    emulator: FacebookEmulator
    sink: RecordingSink
    adapter: FacebookAdapter
    client: TestClient[web.Request, web.Application]

    @property
    def webhook_url(self) -> str:
        return str(self.client.make_url("/webhooks/facebook"))

    async def deliver(
        self,
        body: bytes,
        *,
        signature: str | None = "valid",
        headers: Mapping[str, str] | None = None,
    ) -> aiohttp.ClientResponse:
        sent = {"Content-Type": "application/json", **(headers or {})}
        if signature == "valid":
            sent["X-Hub-Signature-256"] = sign(body, self.emulator.app_secret)
        elif signature is not None:
            sent["X-Hub-Signature-256"] = signature
        return await self.client.post("/webhooks/facebook", data=body, headers=sent)


RigFactory = Callable[..., Awaitable[Rig]]


@pytest.fixture
async def make_rig(
    emulator: FacebookEmulator, http: aiohttp.ClientSession
) -> AsyncIterator[RigFactory]:
    """Build rigs; each may override settings, secrets, the sink and the clock."""
    made: list[Rig] = []

    async def build(
        *,
        sink: RecordingSink | None = None,
        page_id: str | None = None,
        settings: Mapping[str, Any] | None = None,
        secrets: Mapping[str, str] | None = None,
        clock: Clock | None = None,
        start: bool = True,
        spool: IntakeSpool | None = None,
    ) -> Rig:
        sink = sink or RecordingSink()
        merged = settings_for(emulator, **(settings or {}))
        if page_id is not None:
            merged["page_id"] = page_id
        ctx = context(http, sink, merged, secrets or secrets_for(emulator), clock)
        if spool is not None:
            ctx = dataclasses.replace(ctx, spool=spool)
        adapter = create(ctx)
        app = web.Application()
        app.add_subapp("/webhooks/facebook", adapter.webhook_app())
        client = TestClient(TestServer(app))
        await client.start_server()
        rig = Rig(emulator=emulator, sink=sink, adapter=adapter, client=client)
        made.append(rig)
        emulator.webhook_url = rig.webhook_url
        if start:
            await adapter.start()
            await adapter.settled()
        return rig

    yield build
    for rig in made:
        await rig.adapter.stop()
        await rig.client.close()


@pytest.fixture
async def rig(make_rig: RigFactory) -> Rig:
    return await make_rig()
