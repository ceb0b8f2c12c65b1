"""Recent-search polling: since_id and next_token paging, interval, 429 with reset, backfill."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from mhchat.emulators.x import XEmulator
from mhchat.events import HealthStatus, RepostSeen

from .conftest import Rig, received_ids, until

SEARCH = {"ingest": "search", "poll_interval": 0.1, "search_max_results": 10}


class TestSearchPolling:
    async def test_pages_with_next_token_then_polls_with_since_id(
        self, rig: Callable[..., Rig], emulator: XEmulator
    ) -> None:
        r = rig(settings={**SEARCH, "first_backfill_minutes": 60})
        first = [emulator.post_tweet(f"user{i}", f"A{i} answer #MHChat") for i in range(25)]
        emulator.post_tweet("noise", "not about the chat")
        adapter, sink = r.adapter()
        await adapter.start()
        try:
            await until(lambda: set(first) <= set(received_ids(sink)))
            pages_first_poll = emulator.calls("search")
            later = [emulator.post_tweet("late", f"A{i} late #MHChat") for i in range(3)]
            await until(lambda: set(later) <= set(received_ids(sink)))
        finally:
            await adapter.stop()
        assert pages_first_poll >= 3  # 25 posts at 10 per page
        ids = received_ids(sink)
        assert len(ids) == len(set(ids)) == 28
        assert r.state.values["since_id"] == max(later, key=int)
        assert adapter.poller is not None
        assert adapter.poller.failures == 0

    async def test_cursor_saved_only_with_the_last_page(
        self, rig: Callable[..., Rig], emulator: XEmulator
    ) -> None:
        """The checkpoint is the first page's newest id, published with the last page."""
        r = rig(settings={**SEARCH, "first_backfill_minutes": 60})
        posted = [emulator.post_tweet("a", f"A{i} #MHChat") for i in range(15)]
        adapter, sink = r.adapter()
        seen: list[tuple[int, str | None]] = []
        original = sink.publish

        async def spy(events, *, checkpoint=None):  # type: ignore[no-untyped-def]
            seen.append((len(events), checkpoint.value if checkpoint else None))
            await original(events, checkpoint=checkpoint)

        sink.publish = spy  # type: ignore[method-assign]
        await adapter.start()
        try:
            await until(lambda: len(received_ids(sink)) == 15)
        finally:
            await adapter.stop()
        pages = [s for s in seen if s[0]]
        assert pages[0] == (10, None)
        assert pages[1] == (5, max(posted, key=int))

    async def test_429_waits_until_reset_then_recovers(
        self, rig: Callable[..., Rig], emulator: XEmulator
    ) -> None:
        emulator.rate_limit_next("search", reset_in=1.5)
        adapter, sink = rig(settings=SEARCH).adapter()
        started = time.monotonic()
        await adapter.start()
        try:
            await until(lambda: adapter.health().status is HealthStatus.RATE_LIMITED)
            budget = dict(adapter.health().budgets)["search"]
            assert budget.remaining == 0
            assert budget.resets_at is not None
            post = emulator.post_tweet("alice", "A1 after the limit #MHChat")
            await until(lambda: post in received_ids(sink))
            waited = time.monotonic() - started
            assert adapter.health().status is HealthStatus.OK
        finally:
            await adapter.stop()
        assert waited >= 1.0
        # One refused call, then no hammering while waiting for the reset.
        assert emulator.calls("search") <= 4

    async def test_interval_follows_the_remaining_budget(
        self, rig: Callable[..., Rig], emulator: XEmulator
    ) -> None:
        emulator.set_limit("search", 3)
        adapter, _ = rig(settings={**SEARCH, "poll_interval": 0.01}).adapter()
        await adapter.start()
        try:
            await until(lambda: emulator.calls("search") >= 1)
            await asyncio.sleep(0.5)
        finally:
            await adapter.stop()
        # With 3 requests per 15-minute window, the poller spreads them out instead of
        # spending them all and then hitting 429.
        assert emulator.calls("search") <= 2
        assert all(r.status != 429 for r in emulator.requests if r.endpoint == "search")

    async def test_derived_interval_per_tier(self, rig: Callable[..., Rig]) -> None:
        basic, _ = rig(settings={"tier": "basic", "ingest": "search"}).adapter()
        free, _ = rig(settings={"tier": "free", "ingest": "search"}).adapter()
        assert basic._base_interval() == 15.0  # 60 requests per 15 minutes
        assert free._base_interval() == 900.0  # 1 request per 15 minutes

    async def test_backfill_capability(self, rig: Callable[..., Rig], emulator: XEmulator) -> None:
        posted = [emulator.post_tweet("a", f"A{i} #MHChat") for i in range(4)]
        adapter, sink = rig(settings={"ingest": "off"}).adapter()
        await adapter.start()
        try:
            count = await adapter.backfill(3600)
        finally:
            await adapter.stop()
        assert count == 4
        assert sorted(received_ids(sink)) == sorted(posted)

    async def test_retweets_never_come_from_search(
        self, rig: Callable[..., Rig], emulator: XEmulator
    ) -> None:
        original = emulator.post_tweet("alice", "A1 #MHChat")
        emulator.retweet_as("bob", original)
        adapter, sink = rig(settings={**SEARCH, "first_backfill_minutes": 5}).adapter()
        await adapter.start()
        try:
            await until(lambda: original in received_ids(sink))
            await asyncio.sleep(0.3)
        finally:
            await adapter.stop()
        assert not any(isinstance(e, RepostSeen) for e in sink.events)
        assert received_ids(sink) == [original]
