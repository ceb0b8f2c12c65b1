"""X reports deletions only when asked (compliance look-ups of the ids the adapter delivered).
The list of ids to ask about must survive a crash: a post stored just before SIGKILL and
deleted while the service is down must still leave the store after the restart."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest
import structlog

from mhchat.adapters import AdapterContext, ChatInfo
from mhchat.emulators.x import XEmulator
from mhchat.events import PlatformName, PostDeleted, PostReceived
from mhchat.testing import MemoryState, RecordingSink
from mhchat_x import create

from .harness import X_FAST

X = PlatformName("x")


@pytest.fixture
async def emulator() -> AsyncIterator[XEmulator]:
    emu = XEmulator(keepalive_seconds=0.15)
    await emu.start()
    try:
        yield emu
    finally:
        await emu.stop()


def context(emu: XEmulator, http: aiohttp.ClientSession, state: MemoryState) -> AdapterContext:
    return AdapterContext(
        platform=X,
        chat=ChatInfo(chat_id="default", hashtag="MHChat"),
        sink=RecordingSink(state),
        http=http,
        clock=emu.clock,
        log=structlog.get_logger("test"),
        state=state,
        settings={**X_FAST, "api_base": emu.base_url, "compliance_interval": 0.2},
        secrets=emu.adapter_secrets("oauth1"),
    )


async def test_a_post_stored_before_a_crash_is_still_watched_for_deletion(
    emulator: XEmulator,
) -> None:
    state = MemoryState()  # what the store kept: checkpoints saved with their events
    async with aiohttp.ClientSession() as http:
        first = create(context(emulator, http, state))
        sink = first.ctx.sink
        assert isinstance(sink, RecordingSink)
        await first.start()
        tweet = emulator.post_tweet("alice", "A1 a walk helps #MHChat")
        async with asyncio.timeout(8):
            while not any(isinstance(e, PostReceived) for e in sink.events):  # noqa: ASYNC110
                await asyncio.sleep(0.02)
        # SIGKILL: no stop(), nothing saved on the way out. Only what was stored with the
        # events survives. The author deletes the post while the service is down, so the
        # restart's search catch-up cannot find it again.
        for task in first._tasks:  # the process dies with its tasks
            task.cancel()
        emulator.delete_tweet(tweet)
        second = create(context(emulator, http, state))
        again = second.ctx.sink
        assert isinstance(again, RecordingSink)
        await second.start()
        try:
            async with asyncio.timeout(8):
                while not any(isinstance(e, PostDeleted) for e in again.events):  # noqa: ASYNC110
                    await asyncio.sleep(0.02)
        finally:
            await second.stop()
    deleted = [e.remote_id for e in again.events if isinstance(e, PostDeleted)]
    assert deleted == [tweet]
