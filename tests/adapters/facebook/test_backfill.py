"""Polling the page feed covers what webhooks did not deliver (a lapsed subscription)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from mhchat.emulators.facebook import FacebookEmulator, Person
from mhchat.events import HealthStatus, Post, PostRef, RemoteId
from mhchat.testing import FakeClock, RecordingSink

from .conftest import ALICE, RigFactory

BOB = Person("139560936744999", "Bob")


async def settle(rounds: int = 20) -> None:
    """Let the adapter's watcher run after the fake clock moved (its HTTP is real)."""
    for _ in range(rounds):
        await asyncio.sleep(0.005)


class TestBackfill:
    async def test_lapsed_subscription_is_covered_by_backfill(
        self, make_rig: RigFactory, emulator: FacebookEmulator
    ) -> None:
        rig = await make_rig()
        question = await emulator.page_post("Q1 What got you through this week? #MHChat")
        await emulator.drain()
        emulator.lapse_subscription()
        first = await emulator.comment(ALICE, "A1 long walks #MHChat", on_post=question)
        reply = await emulator.comment(BOB, "same here", on_post=question, parent=first)
        await emulator.drain()
        assert emulator.undelivered  # Meta recorded the activity but sent no webhook
        assert first not in rig.sink.remote_ids()

        found = await rig.adapter.backfill(600)

        assert found == 3  # the question and both comments (the store dedupes the question)
        posts: dict[str, Post] = {p.remote_id: p for p in rig.sink.posts()}
        assert posts[first].text == "A1 long walks #MHChat"
        assert posts[first].reply_parent == PostRef(remote_id=RemoteId(question))
        assert posts[reply].reply_parent == PostRef(remote_id=RemoteId(first))
        assert posts[reply].reply_root == PostRef(remote_id=RemoteId(question))
        assert posts[question].is_own
        assert not posts[first].is_own
        assert rig.sink.state.values["facebook:alive_at"]

    async def test_feed_and_comment_paging_are_followed(
        self, make_rig: RigFactory, emulator: FacebookEmulator
    ) -> None:
        rig = await make_rig()
        emulator.lapse_subscription()
        posts = [await emulator.page_post(f"Q{n} #MHChat") for n in range(30)]
        comments = [
            await emulator.comment(ALICE, f"A1 answer {n}", on_post=posts[-1]) for n in range(130)
        ]
        await rig.adapter.backfill(600)
        ids = set(rig.sink.remote_ids())
        assert set(posts) <= ids
        assert set(comments) <= ids
        paged = [p for _, p in emulator.requests if "__paging_token" in p or "after=" in p]
        assert paged  # both paging styles were used, without Graph's token-bearing URLs
        assert not any(emulator.page_token in p for _, p in emulator.requests)

    async def test_quiet_webhooks_during_the_chat_trigger_polling(
        self, make_rig: RigFactory, emulator: FacebookEmulator
    ) -> None:
        clock = FakeClock()
        emulator.clock = clock
        sink = RecordingSink()
        rig = await make_rig(
            sink=sink,
            clock=clock,
            settings={"quiet_seconds": 300, "backfill_check_seconds": 30},
        )
        question = await emulator.page_post("Q1 How are you arriving tonight? #MHChat")
        await emulator.drain()
        assert question in sink.remote_ids()  # webhooks work: the chat is live
        emulator.lapse_subscription()
        clock.advance(60)
        missed = await emulator.comment(ALICE, "A1 tired but here #MHChat", on_post=question)
        for _ in range(11):  # 330 s of quiet, in the watcher's 30 s steps
            clock.advance(30)
            await settle()
        await sink.wait_for(lambda _: missed in sink.remote_ids(), timeout=5)
        counters = dict(rig.adapter.health().counters)
        assert counters["quiet_backfills"] >= 1
        assert rig.adapter.health().status in (HealthStatus.OK, HealthStatus.DEGRADED)

    async def test_no_polling_outside_a_live_chat(
        self, make_rig: RigFactory, emulator: FacebookEmulator
    ) -> None:
        clock = FakeClock()
        emulator.clock = clock
        rig = await make_rig(
            clock=clock,
            settings={"quiet_seconds": 300, "backfill_check_seconds": 30},
        )
        calls = len(emulator.requests)
        for _ in range(20):
            clock.advance(30)
            await settle(2)
        assert len(emulator.requests) == calls
        assert rig.adapter.health().status == HealthStatus.OK

    async def test_catch_up_after_restart_is_retried_until_graph_answers(
        self, make_rig: RigFactory, emulator: FacebookEmulator
    ) -> None:
        clock = FakeClock()
        emulator.clock = clock
        question = await emulator.page_post("Q1 #MHChat")
        missed = await emulator.comment(ALICE, "A1 while mhchat was down", on_post=question)
        sink = RecordingSink()
        sink.state.values["facebook:alive_at"] = (clock.now() - timedelta(minutes=10)).isoformat()
        for _ in range(2):  # /me, then the catch-up's first feed page
            emulator.fail_next(2, status=500, methods=("GET",))
        rig = await make_rig(sink=sink, clock=clock, settings={"backfill_check_seconds": 30})
        assert missed not in sink.remote_ids()
        assert rig.adapter.health().status == HealthStatus.DEGRADED
        clock.advance(30)
        await sink.wait_for(lambda _: missed in sink.remote_ids(), timeout=5)
        assert rig.adapter.health().status == HealthStatus.OK
