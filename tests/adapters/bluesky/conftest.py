"""Fixtures for the Bluesky adapter tests: the local emulator, accounts and adapter contexts."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from tests.adapters.conftest import adapter_context, started

from mhchat.adapters import AdapterContext
from mhchat.clock import Clock
from mhchat.emulators.bluesky import BlueskyEmulator
from mhchat.events import PlatformName
from mhchat.testing import MemoryState, RecordingSink
from mhchat_bluesky import BlueskyAdapter, create

BLUESKY = PlatformName("bluesky")
HOST = "mhchathost.test"
PASSWORD = "mhchathost.test-pw"


@dataclass
class World:
    """The emulator plus the accounts every test starts with."""

    emulator: BlueskyEmulator
    host: str
    alice: str
    bob: str

    def settings(self, **overrides: Any) -> dict[str, Any]:
        """Adapter settings pointing at the emulator, with test-friendly timings."""
        values: dict[str, Any] = {
            "handle": HOST,
            "service_url": self.emulator.base_url,
            "jetstream_url": self.emulator.jetstream_url,
            "request_timeout_seconds": 0.5,
            "reconnect_initial_seconds": 0.01,
            "reconnect_max_seconds": 0.05,
            "checkpoint_interval_seconds": 0.0,
            "batch_linger_seconds": 0.005,
            "search_poll_seconds": 3600.0,
            "fallback_after_seconds": 3600.0,
            "cursor_overlap_seconds": 2.0,
        }
        values.update(overrides)
        return values


@pytest.fixture
async def emulator() -> AsyncIterator[BlueskyEmulator]:
    async with started(BlueskyEmulator()) as emu:
        yield emu


@pytest.fixture
def world(emulator: BlueskyEmulator) -> World:
    return World(
        emulator=emulator,
        host=emulator.create_account(HOST),
        alice=emulator.create_account("alice.test", display_name="Alice"),
        bob=emulator.create_account("bob.test"),
    )


def context(
    http: aiohttp.ClientSession,
    sink: RecordingSink,
    settings: dict[str, Any],
    *,
    clock: Clock | None = None,
    password: str = PASSWORD,
) -> AdapterContext:
    return adapter_context(BLUESKY, http, sink, settings, {"APP_PASSWORD": password}, clock=clock)


Runner = Callable[..., Any]


@pytest.fixture
def running(world: World, http: aiohttp.ClientSession) -> Runner:
    """``async with running(sink, **settings) as adapter``: a started adapter, stopped after."""

    @asynccontextmanager
    async def run(
        sink: RecordingSink | None = None,
        *,
        clock: Clock | None = None,
        password: str = PASSWORD,
        **overrides: Any,
    ) -> AsyncIterator[BlueskyAdapter]:
        ctx = context(
            http,
            sink or RecordingSink(MemoryState()),
            world.settings(**overrides),
            clock=clock,
            password=password,
        )
        adapter = create(ctx)
        await adapter.start()
        try:
            yield adapter
        finally:
            await adapter.stop()

    return run
