"""Filtered-stream ingest against the emulator: keep-alives, reconnects, stalls, bad lines."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

from mhchat.emulators.x import XEmulator
from mhchat.events import (
    AdapterHealthChanged,
    HealthStatus,
    PostEdited,
    PostReceived,
    PostRef,
    RemoteId,
    RepostSeen,
)
from mhchat.testing import FakeClock

from .conftest import Rig, counter, received_ids, until

PAYLOADS = Path(__file__).parent / "payloads"


class TestStream:
    async def test_rule_is_managed_and_excludes_the_host(
        self, rig: Callable[..., Rig], emulator: XEmulator
    ) -> None:
        """start() installs exactly one tagged rule: the hashtag minus the host account."""
        emulator.rules["1"] = {"value": "#MHChat old rule", "tag": "mhchat"}
        emulator.rules["2"] = {"value": "cats", "tag": "someone-else"}
        adapter, _ = rig().adapter()
        await adapter.start()
        try:
            await until(lambda: emulator.open_streams == 1)
        finally:
            await adapter.stop()
        ours = [r for r in emulator.rules.values() if r["tag"] == "mhchat"]
        assert ours == [{"value": f"#MHChat -from:{emulator.host_id}", "tag": "mhchat"}]
        assert {"value": "cats", "tag": "someone-else"} in emulator.rules.values()

    async def test_keepalives_keep_the_connection(
        self, rig: Callable[..., Rig], emulator: XEmulator
    ) -> None:
        """Blank lines every 0.15 s keep a 0.6 s stall timer from firing."""
        adapter, sink = rig().adapter()
        await adapter.start()
        try:
            await until(lambda: counter(adapter, "keepalives") >= 8)
            first = emulator.post_tweet("alice", "A1 still here #MHChat")
            await until(lambda: first in received_ids(sink))
        finally:
            await adapter.stop()
        assert counter(adapter, "stalls") == 0
        assert emulator.stream_connections == 1
        assert adapter.health().status is HealthStatus.STOPPED

    async def test_disconnect_reconnects_without_loss_or_duplicates(
        self, rig: Callable[..., Rig], emulator: XEmulator
    ) -> None:
        adapter, sink = rig().adapter()
        await adapter.start()
        posted: list[str] = []
        try:
            await until(lambda: emulator.open_streams == 1)
            posted.append(emulator.post_tweet("alice", "A1 before #MHChat"))
            await until(lambda: posted[0] in received_ids(sink))
            for round_ in range(3):
                connections = emulator.stream_connections
                emulator.disconnect_streams()
                # Posted in the same instant: the closing stream never carries it, only the
                # gap fill after the reconnect can find it.
                posted.append(emulator.post_tweet("bob", f"A2 gap {round_} #MHChat"))
                await until(partial(lambda n: emulator.stream_connections == n + 1, connections))
                await until(lambda: emulator.open_streams == 1)
                posted.append(emulator.post_tweet("carol", f"A3 live {round_} #MHChat"))
            await until(lambda: set(posted) <= set(received_ids(sink)))
        finally:
            await adapter.stop()
        ids = received_ids(sink)
        assert sorted(ids) == sorted(posted)  # each exactly once
        assert emulator.stream_connections == 4
        assert counter(adapter, "backfilled") >= 3  # the gap posts came from search
        assert counter(adapter, "duplicates_dropped") >= 1  # overlap with the stream dropped
        assert sink.state.values["since_id"] == max(posted, key=int)

    async def test_gap_fill_waits_out_a_429_and_holds_the_cursor(
        self, rig: Callable[..., Rig], emulator: XEmulator
    ) -> None:
        """Until the gap is searched, live posts must not move the cursor past it."""
        r = rig()
        adapter, sink = r.adapter()
        await adapter.start()
        try:
            await until(lambda: emulator.open_streams == 1)
            first = emulator.post_tweet("alice", "A1 #MHChat")
            await until(lambda: first in received_ids(sink))
            await until(lambda: r.state.values.get("since_id") == first)
            emulator.rate_limit_next("search", reset_in=1.0)
            emulator.disconnect_streams()
            gap = emulator.post_tweet("bob", "A2 in the gap #MHChat")
            await until(lambda: emulator.stream_connections == 2)
            live = emulator.post_tweet("carol", "A3 live #MHChat")
            await until(lambda: live in received_ids(sink))
            assert gap not in received_ids(sink)
            assert r.state.values["since_id"] == first  # held while the gap is open
            await until(lambda: gap in received_ids(sink))
            await until(lambda: r.state.values["since_id"] == max(gap, live, key=int))
        finally:
            await adapter.stop()
        assert sorted(received_ids(sink)) == sorted([first, gap, live])

    async def test_stall_triggers_a_reconnect(
        self, rig: Callable[..., Rig], emulator: XEmulator
    ) -> None:
        adapter, sink = rig().adapter()
        await adapter.start()
        try:
            await until(lambda: emulator.open_streams == 1)
            emulator.stall_streams()
            started = time.monotonic()
            await until(lambda: emulator.stream_connections == 2)
            waited = time.monotonic() - started
            after = emulator.post_tweet("dana", "A4 after the stall #MHChat")
            await until(lambda: after in received_ids(sink))
        finally:
            await adapter.stop()
        assert counter(adapter, "stalls") == 1
        assert 0.5 < waited < 3.0  # stall_seconds is 0.6 in these tests

    async def test_stall_timer_runs_on_the_adapters_clock(
        self, rig: Callable[..., Rig], emulator: XEmulator
    ) -> None:
        """With a fake clock, silence is judged by that clock, not by wall time."""
        clock = FakeClock()
        adapter, _ = rig(clock=clock).adapter()
        await adapter.start()
        try:
            await until(lambda: emulator.open_streams == 1)
            emulator.stall_streams()
            await asyncio.sleep(1.0)  # wall time past stall_seconds, fake time still
            assert counter(adapter, "stalls") == 0
            assert emulator.stream_connections == 1
            for _ in range(10):
                clock.advance(0.15)
                await asyncio.sleep(0.01)
            await until(lambda: emulator.stream_connections == 2)
        finally:
            await adapter.stop()
        assert counter(adapter, "stalls") == 1

    async def test_recorded_lines_with_a_truncated_one(
        self, rig: Callable[..., Rig], emulator: XEmulator
    ) -> None:
        """The 2021 recording replays; its cut-off last line is skipped and counted."""
        emulator.rules["1377649934414049282"] = {
            "value": f"#MHChat -from:{emulator.host_id}",
            "tag": "mhchat",
        }
        raw = (PAYLOADS / "streaming_output_with_error.jsonl").read_bytes().splitlines()
        adapter, sink = rig().adapter()
        await adapter.start()
        try:
            await until(lambda: emulator.open_streams == 1)
            for line in raw:
                emulator.push_stream_raw(line + b"\r\n")
                emulator.push_stream_raw(b"\r\n")
            await until(lambda: counter(adapter, "malformed_lines") == 1)
            await until(lambda: len(received_ids(sink)) == 7)
            later = emulator.post_tweet("erin", "A5 the stream goes on #MHChat")
            await until(lambda: later in received_ids(sink))
        finally:
            await adapter.stop()
        assert emulator.stream_connections == 1

    async def test_foreign_rules_and_error_messages_are_ignored(
        self, rig: Callable[..., Rig], emulator: XEmulator
    ) -> None:
        adapter, sink = rig().adapter()
        await adapter.start()
        try:
            await until(lambda: emulator.open_streams == 1)
            line = (PAYLOADS / "streaming_output_with_error.jsonl").read_bytes().splitlines()[0]
            emulator.push_stream_raw(line + b"\r\n")
            error = (PAYLOADS / "stream-error-operational-disconnect.json").read_bytes()
            emulator.push_stream_raw(error.replace(b"\n", b"") + b"\r\n")
            await until(lambda: counter(adapter, "stream_errors") == 1)
        finally:
            await adapter.stop()
        assert counter(adapter, "foreign_rule_posts") == 1
        assert received_ids(sink) == []

    async def test_reposts_edits_and_long_posts_on_the_stream(
        self, rig: Callable[..., Rig], emulator: XEmulator
    ) -> None:
        adapter, sink = rig().adapter()
        await adapter.start()
        try:
            await until(lambda: emulator.open_streams == 1)
            original = emulator.post_tweet("alice", "A1 first try #MHChat")
            rt = emulator.retweet_as("bob", original)
            edited = emulator.edit_tweet(original, "A1 second try #MHChat")
            long_text = "A2 " + "this is a long answer " * 15 + "#MHChat"
            long_id = emulator.post_tweet("carol", long_text)
            mention = emulator.post_tweet("dana", "A3 @MHChatHost thank you #MHChat")
            question = emulator.post_tweet("MHChatHost", "Q1 How are you? #MHChat")
            quote = emulator.post_tweet("erin", "A1 this one #MHChat", quote=question)
            await until(lambda: len(sink.events) >= 6 and quote in received_ids(sink))
        finally:
            await adapter.stop()
        repost = next(e for e in sink.events if isinstance(e, RepostSeen))
        assert repost.remote_id == rt
        assert repost.subject.remote_id == original
        edit = next(e for e in sink.events if isinstance(e, PostEdited))
        assert edit.post.remote_id == original
        assert edit.post.version == edited
        assert edit.post.text == "A1 second try #MHChat"
        posts = {str(e.post.remote_id): e.post for e in sink.events if isinstance(e, PostReceived)}
        assert posts[long_id].text == long_text
        assert posts[mention].mentions_host is True
        assert posts[quote].mentions_host is True  # quoting the host summons it too
        assert posts[quote].quoted == PostRef(remote_id=RemoteId(question))
        assert posts[original].mentions_host is False

    async def test_host_posts_are_excluded_by_the_rule(
        self, rig: Callable[..., Rig], emulator: XEmulator
    ) -> None:
        adapter, sink = rig().adapter()
        await adapter.start()
        try:
            await until(lambda: emulator.open_streams == 1)
            emulator.post_tweet("MHChatHost", "Q1 How are you? #MHChat")
            other = emulator.post_tweet("alice", "A1 fine #MHChat")
            await until(lambda: other in received_ids(sink))
        finally:
            await adapter.stop()
        assert received_ids(sink) == [other]

    async def test_own_posts_are_marked_when_included(
        self, rig: Callable[..., Rig], emulator: XEmulator
    ) -> None:
        adapter, sink = rig(settings={"include_own_posts": True}).adapter()
        await adapter.start()
        try:
            await until(lambda: emulator.open_streams == 1)
            own = emulator.post_tweet("MHChatHost", "Q1 How are you? #MHChat")
            await until(lambda: own in received_ids(sink))
        finally:
            await adapter.stop()
        (post,) = [e.post for e in sink.events if isinstance(e, PostReceived)]
        assert post.is_own is True

    async def test_connect_429_waits_for_the_reset(
        self, rig: Callable[..., Rig], emulator: XEmulator
    ) -> None:
        emulator.rate_limit_next("stream_connect", reset_in=1.0)
        adapter, sink = rig().adapter()
        started = time.monotonic()
        await adapter.start()
        try:
            await until(
                lambda: any(
                    isinstance(e, AdapterHealthChanged)
                    and e.health.status is HealthStatus.RATE_LIMITED
                    for e in sink.events
                )
            )
            await until(lambda: emulator.open_streams == 1)
            waited = time.monotonic() - started
            post = emulator.post_tweet("alice", "A1 after the wait #MHChat")
            await until(lambda: post in received_ids(sink))
            assert adapter.health().status is HealthStatus.OK
        finally:
            await adapter.stop()
        assert waited >= 0.2  # the reset (whole seconds), not the 0.1 s first backoff

    async def test_revoked_bearer_token_shows_auth_expired_and_stops_trying(
        self, rig: Callable[..., Rig], emulator: XEmulator
    ) -> None:
        adapter, _ = rig().adapter()
        await adapter.start()
        try:
            await until(lambda: emulator.open_streams == 1)
            emulator.revoke_app_token()
            emulator.disconnect_streams()
            await until(lambda: adapter.health().status is HealthStatus.AUTH_EXPIRED)
            attempts = emulator.calls("stream_connect")
            await asyncio.sleep(0.5)
            assert emulator.calls("stream_connect") == attempts
            assert "bearer token" in adapter.health().detail
        finally:
            await adapter.stop()
