"""Intake from Jetstream: normalisation, threads, quotes, deletes, reposts, cursor and faults."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence

from tests.adapters.bluesky.conftest import Runner, World

from mhchat.adapters import Checkpoint
from mhchat.emulators.bluesky import BlueskyEmulator
from mhchat.events import Event, Post, PostDeleted, PostRef, RemoteId, RepostSeen
from mhchat.testing import MemoryState, RecordingSink


def _ids(sink: RecordingSink) -> Counter[str]:
    return Counter(sink.remote_ids())


class TestNormalisedPosts:
    """A post with the hashtag becomes one PostReceived carrying everything Bluesky gave."""

    async def test_hashtag_post_becomes_one_event(self, world: World, running: Runner) -> None:
        sink = RecordingSink()
        async with running(sink):
            emu = world.emulator
            emu.post(world.bob, "not about the chat at all")
            uri = emu.post(world.alice, "A1 Sleep has been rough 😴 but kinder. #MHChat")
            await sink.wait_for(lambda _: uri in sink.remote_ids(), 5)
            await asyncio.sleep(0.05)
        assert _ids(sink) == Counter({uri: 1})
        post = sink.posts()[0]
        stored = emu.record(uri)
        assert stored is not None
        assert post.author.author_id == world.alice
        assert post.author.handle == "alice.test"
        assert post.author.display_name == "Alice"
        assert post.version == stored.cid
        assert post.hashtags == ("mhchat",)
        assert post.language == "en"
        assert post.url == f"https://bsky.app/profile/{world.alice}/post/{uri.rsplit('/', 1)[1]}"
        assert post.created_at.tzinfo is not None
        assert not post.is_own
        assert post.raw is not None
        assert "Sleep" in post.raw

    async def test_reply_carries_root_and_parent(self, world: World, running: Runner) -> None:
        sink = RecordingSink()
        emu = world.emulator
        async with running(sink):
            top = emu.post(world.alice, "A2 walking helps me #MHChat")
            middle = emu.post(world.bob, "same here #MHChat", reply_to=top)
            leaf = emu.post(world.alice, "thanks Bob #MHChat", reply_to=middle)
            await sink.wait_for(lambda _: leaf in sink.remote_ids(), 5)
        posts: dict[str, Post] = {p.remote_id: p for p in sink.posts()}
        top_ref = emu.record(top)
        mid_ref = emu.record(middle)
        assert top_ref is not None
        assert mid_ref is not None
        root, parent = posts[leaf].reply_root, posts[leaf].reply_parent
        assert root == PostRef(remote_id=RemoteId(top), version=top_ref.cid)
        assert parent == PostRef(remote_id=RemoteId(middle), version=mid_ref.cid)
        assert posts[top].reply_root is None

    async def test_replies_to_and_quotes_of_the_host_count_without_the_tag(
        self, world: World, running: Runner
    ) -> None:
        sink = RecordingSink()
        emu = world.emulator
        async with running(sink):
            question = emu.post(world.host, "Q1 What helps you rest? #MHChat")
            answer = emu.post(world.alice, "A1 tea and a book", reply_to=question)
            quote = emu.post(world.bob, "good question", quote=question)
            mention = emu.post(world.bob, "hello @mhchathost.test")
            await sink.wait_for(lambda _: mention in sink.remote_ids(), 5)
        posts: dict[str, Post] = {p.remote_id: p for p in sink.posts()}
        assert posts[question].is_own
        parent = posts[answer].reply_parent
        assert parent is not None
        assert parent.remote_id == question
        quoted = posts[quote].quoted
        assert quoted is not None
        assert quoted.remote_id == question
        assert posts[quote].mentions_host
        assert posts[mention].mentions == (world.host,)
        assert posts[mention].mentions_host


class TestDeletesAndReposts:
    async def test_delete_becomes_post_deleted(self, world: World, running: Runner) -> None:
        sink = RecordingSink()
        emu = world.emulator
        async with running(sink):
            uri = emu.post(world.alice, "A3 maybe too personal #MHChat")
            await sink.wait_for(lambda _: uri in sink.remote_ids(), 5)
            stranger = emu.post(world.bob, "unrelated")
            emu.delete(stranger)
            emu.delete(uri)

            def deleted(events: list[Event]) -> bool:
                return any(isinstance(e, PostDeleted) and e.remote_id == uri for e in events)

            await sink.wait_for(deleted, 5)
            await asyncio.sleep(0.05)
        deletions = [e for e in sink.events if isinstance(e, PostDeleted)]
        assert [d.remote_id for d in deletions] == [uri]
        assert deletions[0].author_id == world.alice

    async def test_repost_of_our_question_is_seen(self, world: World, running: Runner) -> None:
        sink = RecordingSink()
        emu = world.emulator
        async with running(sink):
            question = emu.post(world.host, "Q2 What do you do on hard days? #MHChat")
            other = emu.post(world.alice, "A2 I call a friend #MHChat")
            emu.repost(world.bob, other)
            repost = emu.repost(world.alice, question)

            def seen(events: list[Event]) -> bool:
                return any(isinstance(e, RepostSeen) for e in events)

            await sink.wait_for(seen, 5)
            await asyncio.sleep(0.05)
        reposts = [e for e in sink.events if isinstance(e, RepostSeen)]
        assert [r.remote_id for r in reposts] == [repost]
        assert reposts[0].subject.remote_id == question
        assert reposts[0].author.author_id == world.alice
        assert reposts[0].author.handle == "alice.test"


class TestCursor:
    """Disconnects and restarts lose nothing and replay no more than the overlap."""

    async def test_stream_disconnect_loses_and_duplicates_nothing(
        self, world: World, running: Runner
    ) -> None:
        sink = RecordingSink()
        emu = world.emulator
        async with running(sink) as adapter:
            first = [emu.post(world.alice, f"A{i} before #MHChat") for i in range(3)]
            await sink.wait_for(lambda _: set(first) <= set(sink.remote_ids()), 5)
            emu.drop_streams()
            second = [emu.post(world.bob, f"A{i} during #MHChat") for i in range(3)]
            await sink.wait_for(lambda _: set(second) <= set(sink.remote_ids()), 5)
            await asyncio.sleep(0.05)
            assert dict(adapter.health().counters)["reconnects"] >= 1
        assert _ids(sink) == Counter(dict.fromkeys(first + second, 1))

    async def test_restart_replays_only_the_overlap(self, world: World, running: Runner) -> None:
        state = MemoryState()
        emu = world.emulator
        first = RecordingSink(state)
        async with running(first, cursor_overlap_seconds=0.3):
            old = [emu.post(world.alice, f"A{i} early #MHChat") for i in range(2)]
            await asyncio.sleep(0.5)
            recent = emu.post(world.alice, "A3 just before the stop #MHChat")
            await first.wait_for(lambda _: recent in first.remote_ids(), 5)
            await asyncio.sleep(0.05)
        saved = int(state.values["jetstream_cursor"])
        during = emu.post(world.bob, "A4 while it was down #MHChat")
        second = RecordingSink(state)
        async with running(second, cursor_overlap_seconds=0.3):
            await second.wait_for(lambda _: during in second.remote_ids(), 5)
            await asyncio.sleep(0.1)
        assert set(old) <= set(first.remote_ids())
        assert set(second.remote_ids()) == {recent, during}
        assert int(state.values["jetstream_cursor"]) > saved

    async def test_cursor_advances_while_nothing_matches(
        self, world: World, running: Runner
    ) -> None:
        state = MemoryState()
        sink = RecordingSink(state)
        emu = world.emulator
        async with running(sink):
            await asyncio.sleep(0.1)
            for i in range(5):
                emu.post(world.bob, f"nothing to do with it {i}")
            await asyncio.sleep(0.2)
        assert sink.posts() == []
        assert int(state.values["jetstream_cursor"]) == emu.stream_position


class _FlakySink(RecordingSink):
    """A sink whose first store fails, as a database hiccup would."""

    def __init__(self) -> None:
        super().__init__()
        self.failures = 1

    async def publish(
        self, events: Sequence[Event], *, checkpoint: Checkpoint | None = None
    ) -> None:
        if events and self.failures:
            self.failures -= 1
            raise RuntimeError("database is locked")
        await super().publish(events, checkpoint=checkpoint)


class TestFaults:
    async def test_a_failed_store_does_not_stop_intake(
        self, world: World, running: Runner
    ) -> None:
        sink = _FlakySink()
        emu = world.emulator
        async with running(sink) as adapter:
            await asyncio.sleep(0.05)
            lost = emu.post(world.alice, "A1 hits the hiccup #MHChat")
            await asyncio.sleep(0.1)
            kept = emu.post(world.alice, "A2 after it #MHChat")
            await sink.wait_for(lambda _: kept in sink.remote_ids(), 5)
            health = adapter.health()
        assert lost not in sink.remote_ids()
        assert dict(health.counters)["intake_errors"] == 1
        assert health.status.value == "ok"

    async def test_malformed_frames_are_skipped_and_counted(
        self, world: World, running: Runner, emulator: BlueskyEmulator
    ) -> None:
        sink = RecordingSink()
        async with running(sink) as adapter:
            await asyncio.sleep(0.1)
            emulator.inject_frame('{"did": "did:plc:x", "time_us": 1, "kind": "commit" #MHChat')
            emulator.inject_frame(
                '{"did":"did:plc:x","time_us":2,"kind":"commit","commit":{"rev":"r",'
                '"operation":"create","collection":"app.bsky.feed.post","rkey":"3k",'
                '"record":{"tags":["MHChat"],"createdAt":"2026-01-01T00:00:00Z"},"cid":"b"}}'
            )
            emulator.inject_frame(
                '{"did":"x","time_us":3,"kind":"commit","commit":7,"n":"#MHChat"}'
            )
            # An operation that is not text, and a time beyond the calendar.
            emulator.inject_frame(
                '{"did":"x","time_us":4,"kind":"commit","commit":{"operation":["create"],'
                '"collection":"app.bsky.feed.post","rkey":"3k","record":{"text":"#MHChat"}}}'
            )
            emulator.inject_frame(
                '{"did":"x","time_us":1000000000000000000000000000000,"kind":"commit",'
                '"commit":{"operation":"create","collection":"app.bsky.feed.post",'
                '"rkey":"3k","record":{"text":"#MHChat"}}}'
            )
            uri = emulator.post(world.alice, "A1 still fine #MHChat")
            await sink.wait_for(lambda _: uri in sink.remote_ids(), 5)
            health = adapter.health()
        assert sink.remote_ids() == [uri]
        assert dict(health.counters)["malformed_frames"] == 2 + 1 + 2
        assert health.status.value == "ok"

    async def test_profile_lookup_failure_falls_back_to_the_did(
        self, world: World, running: Runner, emulator: BlueskyEmulator
    ) -> None:
        sink = RecordingSink()
        emulator.fail_next("app.bsky.actor.getProfiles", status=502, error="UpstreamFailure")
        async with running(sink) as adapter:
            uri = emulator.post(world.alice, "A1 appview is down #MHChat")
            await sink.wait_for(lambda _: uri in sink.remote_ids(), 5)
            failures = dict(adapter.health().counters)["profile_lookup_failures"]
        assert sink.posts()[0].author.handle == world.alice
        assert failures == 1

    async def test_backfill_searches_by_tag(self, world: World, running: Runner) -> None:
        sink = RecordingSink()
        emu = world.emulator
        earlier = [emu.post(world.alice, f"A{i} earlier #MHChat") for i in range(3)]
        emu.post(world.bob, "no tag here")
        async with running(sink, search_max_pages=5, cursor_overlap_seconds=0.0) as adapter:
            await asyncio.sleep(0.1)
            assert sink.posts() == []  # the stream starts after them
            found = await adapter.backfill(3600)
            await sink.wait_for(lambda _: set(earlier) <= set(sink.remote_ids()), 5)
        assert found == 3

    async def test_search_does_not_repeat_what_the_stream_gave(
        self, world: World, running: Runner
    ) -> None:
        sink = RecordingSink()
        async with running(sink) as adapter:
            uri = world.emulator.post(world.alice, "A1 seen twice #MHChat")
            await sink.wait_for(lambda _: uri in sink.remote_ids(), 5)
            assert await adapter.backfill(3600) == 1
            await asyncio.sleep(0.1)
        assert sink.remote_ids() == [uri]

    async def test_stream_down_falls_back_to_search(self, world: World, running: Runner) -> None:
        sink = RecordingSink()
        emu = world.emulator
        async with running(
            sink,
            jetstream_url="ws://127.0.0.1:9/subscribe",
            fallback_after_seconds=0.0,
            search_poll_seconds=0.05,
        ) as adapter:
            uri = emu.post(world.alice, "A1 found by search #MHChat")
            await sink.wait_for(lambda _: uri in sink.remote_ids(), 5)
            health = adapter.health()
        post = next(p for p in sink.posts() if p.remote_id == uri)
        assert post.author.handle == "alice.test"
        assert health.status.value == "degraded"
        assert "searchPosts" in health.detail

    async def test_search_only_source_polls(self, world: World, running: Runner) -> None:
        sink = RecordingSink()
        async with running(sink, source="search", search_poll_seconds=0.05) as adapter:
            uri = world.emulator.post(world.bob, "A2 polled #MHChat")
            await sink.wait_for(lambda _: uri in sink.remote_ids(), 5)
            await asyncio.sleep(0.2)
            health = adapter.health()
        assert sink.remote_ids() == [uri]
        assert health.status.value == "ok"
        assert world.emulator.calls("app.bsky.feed.searchPosts") >= 2

    async def test_old_cursor_catches_up_through_search(
        self, world: World, running: Runner
    ) -> None:
        state = MemoryState()
        state.values["jetstream_cursor"] = "1000000"  # 1970: far beyond any replay window
        emu = world.emulator
        missed = emu.post(world.alice, "A5 posted long ago #MHChat")
        sink = RecordingSink(state)
        async with running(sink):
            await sink.wait_for(lambda _: missed in sink.remote_ids(), 5)
        assert world.emulator.calls("app.bsky.feed.searchPosts") >= 1
