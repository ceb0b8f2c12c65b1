"""Helpers the platform adapters' test fixtures share: a started emulator and an adapter context.

The ``http`` fixture they use comes from the top-level ``tests/conftest.py``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any, Protocol, TypeVar

import aiohttp
import structlog

from mhchat.adapters import AdapterContext, ChatInfo, KeyValueState
from mhchat.clock import Clock, SystemClock
from mhchat.events import PlatformName
from mhchat.testing import RecordingSink


class Emulator(Protocol):
    async def start(self, host: str = ..., port: int = ...) -> str: ...

    async def stop(self) -> None: ...


EmulatorT = TypeVar("EmulatorT", bound=Emulator)


@asynccontextmanager
async def started(emulator: EmulatorT) -> AsyncIterator[EmulatorT]:
    """The emulator, serving on a free port of 127.0.0.1 until the block ends."""
    await emulator.start()
    try:
        yield emulator
    finally:
        await emulator.stop()


def adapter_context(
    platform: PlatformName,
    http: aiohttp.ClientSession,
    sink: RecordingSink,
    settings: Mapping[str, Any],
    secrets: Mapping[str, str],
    *,
    clock: Clock | None = None,
    state: KeyValueState | None = None,
) -> AdapterContext:
    """A context for one adapter under test (the state defaults to the sink's)."""
    return AdapterContext(
        platform=platform,
        chat=ChatInfo(chat_id="default", hashtag="MHChat"),
        sink=sink,
        http=http,
        clock=clock or SystemClock(),
        log=structlog.get_logger("test").bind(platform=platform),
        state=state if state is not None else sink.state,
        settings=settings,
        secrets=secrets,
    )
