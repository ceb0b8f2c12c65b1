"""Recorded payloads from a real AT Protocol network: Jetstream JSON and raw firehose frames."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiohttp import web
from tests.adapters.bluesky.conftest import BLUESKY, Runner

from mhchat.events import Event, Post, PostDeleted, PostReceived, PostRef, RemoteId, RepostSeen
from mhchat.testing import MemoryState, RecordingSink
from mhchat_bluesky.jetstream import FrameParser
from mhchat_bluesky.mapping import (
    Profile,
    events_from_commit,
    parse_time,
    post_from_record,
    profile_from_view,
)

PAYLOADS = Path(__file__).parent / "payloads"
ALICE = "did:plc:4gnjyyiqft7dib67wttitocy"
BOB = "did:plc:rqvupbjw7vewntus4ioxd4nv"
HOST = "did:plc:zyxux6bdy4ixj2kqa6zc6kxb"


def _uri(did: str, rkey: str) -> str:
    return f"at://{did}/app.bsky.feed.post/{rkey}"


def _events(host: str) -> list[Event]:
    counters: Counter[str] = Counter()
    authors: set[str] = set()
    parser = FrameParser(
        tag="MHChat",
        host_did=lambda: host,
        authors=lambda: authors,
        note_author=authors.add,
        counters=counters,
    )
    events: list[Event] = []
    for line in (PAYLOADS / "jetstream-derived.jsonl").read_text().splitlines():
        if not parser.wanted(line):
            continue
        _, item = parser.parse(line)
        if item is not None and item.commit is not None:
            profile = Profile(handle=item.commit.did)
            events += events_from_commit(
                item.commit, platform=BLUESKY, profile=profile, host_did=host
            )
    assert counters["malformed_frames"] == 0
    return events


class TestRecordedJetstream:
    def test_posts_replies_and_deletes(self) -> None:
        events = _events(HOST)
        posts: dict[str, Post] = {
            e.post.remote_id: e.post for e in events if isinstance(e, PostReceived)
        }
        first = _uri(ALICE, "3n34bowdvy227")
        welcome = _uri(HOST, "3n34bowehkk27")
        own_untagged = _uri(HOST, "3n34bowh7h227")  # the host's own posts count untagged
        assert set(posts) == {
            first,
            welcome,
            own_untagged,
            _uri(BOB, "3n34bp63lr227"),
            _uri(ALICE, "3n34bpzit2c27"),
        }
        assert posts[own_untagged].hashtags == ()
        assert posts[first].hashtags == ("mhchat",)
        assert posts[welcome].is_own
        parent = posts[welcome].reply_parent
        assert posts[welcome].reply_root == parent
        assert parent == PostRef(remote_id=RemoteId(first), version=posts[first].version)
        deleted = [e.remote_id for e in events if isinstance(e, PostDeleted)]
        assert deleted == [first, _uri(ALICE, "3n34bpzit2c27")]

    def test_multilingual_tag_offsets_are_bytes(self) -> None:
        events = _events(HOST)
        post = next(
            e.post for e in events if isinstance(e, PostReceived) and e.post.language == "cy"
        )
        assert post.raw is not None
        facet = json.loads(post.raw)["record"]["facets"][0]["index"]
        assert (facet["byteStart"], facet["byteEnd"]) == (32, 39)
        assert post.text.encode()[32:39] == b"#MHChat"
        assert post.text.index("#MHChat") == 28  # code points; 29 in UTF-16 units
        assert len(post.text[:28].encode("utf-16-le")) // 2 == 29
        assert post.created_at.isoformat() == "2026-11-25T20:10:00+00:00"

    def test_a_created_at_no_post_can_have_falls_back_to_the_network_time(self) -> None:
        seen = datetime(2026, 11, 25, 20, 10, tzinfo=UTC)
        assert parse_time("2026-11-25T20:05:00Z", seen) == datetime(
            2026, 11, 25, 20, 5, tzinfo=UTC
        )
        for claimed in ("9999-12-31T23:59:59Z", "0001-01-01T00:00:00+14:00", "1970-01-01", 5):
            assert parse_time(claimed, seen) == seen, claimed

    def test_reposts_of_the_hosts_posts(self) -> None:
        events = _events(ALICE)  # as if Alice ran the chat
        reposts = [e for e in events if isinstance(e, RepostSeen)]
        assert [(r.author.author_id, r.subject.remote_id) for r in reposts] == [
            (HOST, _uri(ALICE, "3n34bowdvy227")),
            (BOB, _uri(ALICE, "3n34bpzit2c27")),
        ]
        # Replies to the host's posts count even without the tag.
        texts = {e.post.text for e in events if isinstance(e, PostReceived)}
        assert {"reply to deleted", "A3 same here, thank you for sharing"} <= texts

    def test_search_results_normalise_like_the_stream(self) -> None:
        body = json.loads((PAYLOADS / "searchPosts-tag.json").read_text())["body"]
        view = body["posts"][0]
        post = post_from_record(
            platform=BLUESKY,
            uri=view["uri"],
            cid=view["cid"],
            record=view["record"],
            profile=profile_from_view(view["author"]),
            host_did=HOST,
            fallback_time=_events(HOST)[0].post.created_at,  # type: ignore[union-attr]
        )
        assert post.author.handle == "alice.test"
        assert post.hashtags == ("mhchat",)
        assert post.version == view["cid"]


@pytest.fixture
async def firehose() -> AsyncIterator[tuple[str, list[int]]]:
    """A websocket serving the recorded firehose frames after the requested cursor."""
    frames = sorted((PAYLOADS / "firehose").glob("frame-*.cbor"))
    cursors: list[int] = []

    async def subscribe(request: web.Request) -> web.WebSocketResponse:
        cursor = int(request.query.get("cursor", "0"))
        cursors.append(cursor)
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        for frame in frames:
            if int(frame.name.split("-")[1]) > cursor:
                await ws.send_bytes(frame.read_bytes())
        async for _ in ws:
            pass
        return ws

    app = web.Application()
    app.router.add_get("/xrpc/com.atproto.sync.subscribeRepos", subscribe)
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"ws://127.0.0.1:{port}/xrpc", cursors
    finally:
        await runner.cleanup()


class TestRecordedFirehose:
    async def test_frames_become_events_and_cursor_resumes(
        self, running: Runner, firehose: tuple[str, list[int]]
    ) -> None:
        url, cursors = firehose
        state = MemoryState()
        sink = RecordingSink(state)
        async with running(sink, source="firehose", firehose_url=url, label_automated=False):

            def done(events: list[Event]) -> bool:
                return sum(isinstance(e, PostDeleted) for e in events) == 2

            await sink.wait_for(done, 10)
            await asyncio.sleep(0.05)
        posts: dict[str, Post] = {p.remote_id: p for p in sink.posts()}
        assert set(posts) == {
            _uri(ALICE, "3n34bowdvy227"),
            _uri(HOST, "3n34bowehkk27"),
            _uri(BOB, "3n34bp63lr227"),
            _uri(ALICE, "3n34bpzit2c27"),
        }
        multilingual = posts[_uri(ALICE, "3n34bpzit2c27")]
        assert multilingual.text == "A3 Noson dda, ça va mieux 💙 #MHChat"
        assert (
            multilingual.version == "bafyreifzzrxsveems2yu6dcbonilmlb7i5mporg7cih577gobbn6cgvxim"
        )
        assert state.values["firehose_cursor"] == "36"
        again = RecordingSink(state)
        async with running(again, source="firehose", firehose_url=url, label_automated=False):
            for _ in range(100):
                if len(cursors) > 1:
                    break
                await asyncio.sleep(0.02)
        assert cursors == [0, 36]
        assert again.events == []
