"""A gap the failover test found in the X adapter, pinned down without any process killing.

The X adapter saves a post's id to its deletion-watch journal (``recent_ids_new``) before it
publishes the post. When the process dies between those two saves, the post is in neither the
store nor the stream, so the next start's gap fill must deliver it again rather than take the
journalled id for a delivered post.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import aiohttp
import pytest
import structlog

from mhchat.adapters import AdapterContext, ChatInfo, Checkpoint
from mhchat.clock import SystemClock
from mhchat.emulators.x import XEmulator
from mhchat.events import Event, PlatformName
from mhchat.testing import MemoryState, RecordingSink
from mhchat_x import create

from .services import X_FAST

pytestmark = pytest.mark.scale


class DiesAfterJournal(RecordingSink):
    """Stores the journal's checkpoint, then dies before the posts that follow it."""

    armed = False
    dead = False

    async def publish(
        self, events: Sequence[Event], *, checkpoint: Checkpoint | None = None
    ) -> None:
        if self.dead:
            return
        self._store(events, checkpoint)
        if self.armed and not events and checkpoint and checkpoint.key == "recent_ids_new":
            self.dead = True


def context(emu: XEmulator, http: aiohttp.ClientSession, sink: RecordingSink) -> AdapterContext:
    return AdapterContext(
        platform=PlatformName("x"),
        chat=ChatInfo(chat_id="default", hashtag="MHChat"),
        sink=sink,
        http=http,
        clock=SystemClock(),
        log=structlog.get_logger("test").bind(platform="x"),
        state=sink.state,
        settings={**X_FAST, "api_base": emu.base_url},
        secrets=emu.adapter_secrets(),
    )


async def until(predicate: object, within: float = 8.0) -> None:
    async with asyncio.timeout(within):
        while not predicate():  # type: ignore[operator]  # noqa: ASYNC110
            await asyncio.sleep(0.05)


async def test_a_post_journalled_but_not_published_is_found_again() -> None:
    emu = XEmulator(keepalive_seconds=0.15)
    await emu.start()
    state = MemoryState()
    try:
        async with aiohttp.ClientSession() as http:
            first = DiesAfterJournal(state)
            a = create(context(emu, http, first))
            await a.start()
            await until(lambda: emu.open_streams == 1)
            emu.post_tweet("alice", "A1 first #MHChat")
            await until(lambda: len(first.posts()) == 1)
            first.armed = True
            lost = emu.post_tweet("bob", "A1 second #MHChat")
            await until(lambda: first.dead)
            await a.stop()
            assert lost in state.values.get("recent_ids_new", "")
            second = RecordingSink(state)
            b = create(context(emu, http, second))
            await b.start()
            try:
                await until(lambda: lost in second.remote_ids(), within=5.0)
            except TimeoutError:
                raise AssertionError("the post was never delivered again: lost") from None
            finally:
                await b.stop()
    finally:
        await emu.stop()
