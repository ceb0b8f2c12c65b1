"""Fixtures for the X adapter: a running emulator and adapters wired to it with fast timings."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from tests.adapters.conftest import adapter_context, started

from mhchat.adapters import AdapterContext
from mhchat.clock import Clock, SystemClock
from mhchat.emulators.x import XEmulator
from mhchat.events import PlatformName, PostReceived
from mhchat.testing import MemoryState, RecordingSink
from mhchat_x import XAdapter, create

X = PlatformName("x")

# Timings scaled down from X's (20 s stall, 250 ms / 5 s / 60 s backoffs) so tests run fast.
FAST: dict[str, Any] = {
    "tier": "pay_per_use",
    "request_timeout": 1.0,
    "stall_seconds": 0.6,
    "backoff_network_step": 0.05,
    "backoff_network_max": 0.2,
    "backoff_http_initial": 0.05,
    "backoff_http_max": 0.2,
    "backoff_429_initial": 0.1,
    "backoff_429_max": 3.0,
    "min_poll_interval": 0.1,
    "compliance_interval": 3600.0,
}


@pytest.fixture
async def emulator() -> AsyncIterator[XEmulator]:
    async with started(XEmulator(keepalive_seconds=0.15)) as emu:
        yield emu


@dataclass
class Rig:
    """One adapter on the emulator, with its sink and state (reusable across restarts)."""

    emu: XEmulator
    http: aiohttp.ClientSession
    state: MemoryState = field(default_factory=MemoryState)
    settings: dict[str, Any] = field(default_factory=dict)
    auth: str = "oauth1"
    clock: Clock = field(default_factory=SystemClock)
    secrets: dict[str, str] | None = None

    def context(self, sink: RecordingSink | None = None) -> AdapterContext:
        return adapter_context(
            X,
            self.http,
            sink or RecordingSink(self.state),
            {**FAST, "api_base": self.emu.base_url, **self.settings},
            self.secrets if self.secrets is not None else self.emu.adapter_secrets(self.auth),
            clock=self.clock,
            state=self.state,
        )

    def adapter(self, sink: RecordingSink | None = None) -> tuple[XAdapter, RecordingSink]:
        sink = sink or RecordingSink(self.state)
        return create(self.context(sink)), sink


@pytest.fixture
def rig(emulator: XEmulator, http: aiohttp.ClientSession) -> Callable[..., Rig]:
    def make(**kwargs: Any) -> Rig:
        return Rig(emulator, http, **kwargs)

    return make


async def until(predicate: Callable[[], bool], within: float = 8.0) -> None:
    """Wait until ``predicate()`` holds (the emulator and adapter run on this loop)."""
    async with asyncio.timeout(within):
        while not predicate():  # noqa: ASYNC110 - polls state owned by other tasks
            await asyncio.sleep(0.02)


def received_ids(sink: RecordingSink) -> list[str]:
    return [e.post.remote_id for e in sink.events if isinstance(e, PostReceived)]


def counter(adapter: XAdapter, name: str) -> int:
    return dict(adapter.health().counters).get(name, 0)
