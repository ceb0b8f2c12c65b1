"""The Bluesky adapter against the real PDS + appview, with Jetstream served by the bridge.

Every write goes to the reference PDS and is read back from it (or from the appview), so these
tests check the wire formats and the platform's rules, not our own idea of them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import grapheme
import pytest
from atproto import exceptions  # type: ignore[import-untyped]
from tests.adapters.bluesky_network.helpers import (
    BLUESKY,
    adapter_context,
    deleted,
    eventually,
    get_record,
    indexed_chain,
    posts_with,
    reply_ref,
    strong_ref,
    tagged,
)
from tests.adapters.bluesky_network.network import AtprotoNetwork

from mhchat.actions import Publish, Purpose, Reply, Repost, Unrepost
from mhchat.emulators.jetstream_bridge import JetstreamBridge
from mhchat.errors import PermanentFailure, RateLimited
from mhchat.events import HealthStatus, PostRef, RemoteId
from mhchat.testing import MemoryState, RecordingSink
from mhchat_bluesky import create

HOST = "mhchathost"
SESSION_KEY = "session"
Factory = Callable[..., Any]

# The host's exported session, shared by tests that are not about logging in, so the suite
# stays far inside the PDS's createSession budget (30 per 5 minutes per account).
_host_session: dict[str, str] = {}


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def host_state() -> MemoryState:
    state = MemoryState()
    state.values.update(_host_session)
    return state


@pytest.fixture
async def make_adapter(
    atproto_network: AtprotoNetwork, bridge: JetstreamBridge, http: aiohttp.ClientSession
) -> AsyncIterator[Factory]:
    """Build (not start) adapters on the real network; all are stopped after the test."""
    made: list[Any] = []

    def build(sink: RecordingSink, account: str = HOST, **settings: Any) -> Any:
        user = atproto_network.accounts[account]
        ctx = adapter_context(
            pds_url=atproto_network.pds_url,
            jetstream_url=bridge.jetstream_url,
            handle=user.handle,
            app_password=user.app_password,
            sink=sink,
            http=http,
            **settings,
        )
        adapter = create(ctx)
        made.append(adapter)
        return adapter

    try:
        yield build
    finally:
        for adapter in made:
            await adapter.stop()
            session = adapter.ctx.state.values.get(SESSION_KEY)
            if session and adapter.config.handle == atproto_network.accounts[HOST].handle:
                _host_session[SESSION_KEY] = session


async def _healthy(adapter: Any) -> None:
    """Wait until the adapter reports OK (its live stream connects just after start)."""

    async def ok() -> bool:
        return bool(adapter.health().status is HealthStatus.OK)

    await eventually(ok, within=5)


async def _create_session_remaining(net: AtprotoNetwork) -> int:
    host = net.accounts[HOST]
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{net.pds_url}/xrpc/com.atproto.server.createSession",
            json={"identifier": host.handle, "password": host.app_password},
        ) as resp,
    ):
        assert resp.status == 200, await resp.text()
        assert resp.headers["ratelimit-policy"] == "30;w=300"
        return int(resp.headers["ratelimit-remaining"])


async def test_logs_in_once_and_reuses_the_session_across_restart(
    atproto_network: AtprotoNetwork, make_adapter: Factory
) -> None:
    before = await _create_session_remaining(atproto_network)
    state = MemoryState()  # no saved session: the first start must log in
    first = make_adapter(RecordingSink(state))
    await first.start()
    await _healthy(first)
    await first.stop()
    assert state.values[SESSION_KEY]
    second = make_adapter(RecordingSink(state))
    await second.start()
    await _healthy(second)
    await second.stop()
    after = await _create_session_remaining(atproto_network)
    # The PDS counted our two probes and exactly one login by the adapter.
    assert after == before - 2
    assert (first.client.logins, second.client.logins) == (1, 0)


async def test_hashtag_post_arrives_once_through_jetstream(
    atproto_network: AtprotoNetwork,
    participants: dict[str, Any],
    make_adapter: Factory,
    host_state: MemoryState,
) -> None:
    alice, bob = participants["alice"], participants["bob"]
    sink = RecordingSink(host_state)
    adapter = make_adapter(sink)
    await adapter.start()
    untagged = await bob.send_post("just chatting, no tag")
    post = await alice.send_post(tagged("A1 Sleep has been rough 😴 but today was kinder. "))
    marker = await bob.send_post(tagged("A1 me too "))
    await sink.wait_for(lambda _: bool(posts_with(sink, marker.uri)), 20)

    (got,) = posts_with(sink, post.uri)
    assert got.platform == BLUESKY
    assert got.version == post.cid
    assert got.author.author_id == atproto_network.accounts["alice"].did
    assert got.author.handle == "alice.test"
    assert got.text.startswith("A1 Sleep has been rough 😴")
    assert [t.lower() for t in got.hashtags] == ["mhchat"]
    assert got.created_at.tzinfo is not None
    assert not got.is_own
    assert not posts_with(sink, untagged.uri)
    assert sink.state.values["jetstream_cursor"].isdigit()


async def test_reply_carries_root_and_parent_strong_refs(
    atproto_network: AtprotoNetwork,
    participants: dict[str, Any],
    make_adapter: Factory,
    host_state: MemoryState,
) -> None:
    alice, bob = participants["alice"], participants["bob"]
    root = await alice.send_post(tagged("Q1 How are you today? "))
    root_ref = strong_ref(root.uri, root.cid)
    answer = await bob.send_post(
        tagged("A1 better than last week "), reply_to=reply_ref(root_ref, root_ref)
    )
    adapter = make_adapter(RecordingSink(host_state))
    await adapter.start()
    sent = await adapter.perform(
        Reply(
            key="reply-thread-test",
            platform=BLUESKY,
            purpose=Purpose.WELCOME,
            text="Welcome to #MHChat, Be Kind 💙",
            parent=PostRef(remote_id=RemoteId(answer.uri), version=answer.cid),
            root=PostRef(remote_id=RemoteId(root.uri), version=root.cid),
        )
    )
    stored = (await get_record(atproto_network.pds_url, sent.remote_id))["value"]["reply"]
    assert (stored["root"]["uri"], stored["root"]["cid"]) == (root.uri, root.cid)
    assert (stored["parent"]["uri"], stored["parent"]["cid"]) == (answer.uri, answer.cid)

    async def thread() -> Any:
        try:
            found = (await alice.get_post_thread(sent.remote_id)).thread
        except exceptions.BadRequestError:
            return None  # not indexed by the appview yet
        return found if indexed_chain(found, 3) else None

    seen = await eventually(thread)
    assert seen.post.author.did == atproto_network.accounts[HOST].did
    assert seen.parent.post.uri == answer.uri
    assert seen.parent.parent.post.uri == root.uri


async def test_publish_has_utf8_byte_facets_for_emoji_and_non_latin_text(
    atproto_network: AtprotoNetwork, make_adapter: Factory, host_state: MemoryState
) -> None:
    text = (
        "Q2 💙 Sut wyt ti heddiw? Как дела? 今日はどう? "
        "#MHChat https://example.org/help @alice.test"
    )
    adapter = make_adapter(RecordingSink(host_state))
    await adapter.start()
    sent = await adapter.perform(
        Publish(key="publish-facets-test", platform=BLUESKY, purpose=Purpose.QUESTION, text=text)
    )
    stored = (await get_record(atproto_network.pds_url, sent.remote_id))["value"]
    assert stored["text"] == text
    raw = text.encode()
    spans = {}
    for facet in stored["facets"]:
        (feature,) = facet["features"]
        start, end = facet["index"]["byteStart"], facet["index"]["byteEnd"]
        spans[feature["$type"].rsplit("#", 1)[1]] = (raw[start:end].decode(), feature)
    assert spans["tag"] == ("#MHChat", {"$type": "app.bsky.richtext.facet#tag", "tag": "MHChat"})
    assert spans["link"][0] == "https://example.org/help"
    assert spans["link"][1]["uri"] == "https://example.org/help"
    assert spans["mention"][0] == "@alice.test"
    assert spans["mention"][1]["did"] == atproto_network.accounts["alice"].did
    # Character offsets would be wrong here: the text before the tag has multi-byte letters.
    assert raw.find(b"#MHChat") != text.find("#MHChat")


async def test_repost_then_unrepost(
    atproto_network: AtprotoNetwork,
    participants: dict[str, Any],
    make_adapter: Factory,
    host_state: MemoryState,
) -> None:
    post = await participants["carol"].send_post(tagged("A2 walking helps me "))
    target = PostRef(remote_id=RemoteId(post.uri), version=post.cid)
    adapter = make_adapter(RecordingSink(host_state))
    await adapter.start()
    reposted = await adapter.perform(
        Repost(key="repost-test", platform=BLUESKY, purpose=Purpose.REPOST, target=target)
    )
    record = await get_record(atproto_network.pds_url, reposted.remote_id)
    assert record["value"]["subject"]["uri"] == post.uri
    assert record["value"]["subject"]["cid"] == post.cid
    assert reposted.remote_id.startswith(f"at://{atproto_network.accounts[HOST].did}/")

    undone = await adapter.perform(
        Unrepost(
            key="unrepost-test",
            platform=BLUESKY,
            purpose=Purpose.UNDO_REPOST,
            target=target,
            repost_id=reposted.remote_id,
        )
    )
    assert undone.remote_id == reposted.remote_id
    with pytest.raises(AssertionError, match="RecordNotFound"):
        await get_record(atproto_network.pds_url, reposted.remote_id)


async def test_participant_delete_becomes_post_deleted(
    atproto_network: AtprotoNetwork,
    participants: dict[str, Any],
    make_adapter: Factory,
    host_state: MemoryState,
) -> None:
    alice = participants["alice"]
    sink = RecordingSink(host_state)
    adapter = make_adapter(sink)
    await adapter.start()
    post = await alice.send_post(tagged("A3 I would rather not have said that "))
    await sink.wait_for(lambda _: bool(posts_with(sink, post.uri)), 20)
    await alice.delete_post(post.uri)
    await sink.wait_for(lambda _: any(d.remote_id == post.uri for d in deleted(sink)), 20)
    (gone,) = [d for d in deleted(sink) if d.remote_id == post.uri]
    assert gone.platform == BLUESKY
    assert gone.author_id == atproto_network.accounts["alice"].did
    assert gone.deleted_at.tzinfo is not None


async def test_stream_drop_and_restart_with_saved_cursor_lose_nothing(
    participants: dict[str, Any],
    bridge: JetstreamBridge,
    make_adapter: Factory,
    host_state: MemoryState,
) -> None:
    alice, bob = participants["alice"], participants["bob"]
    first = RecordingSink(host_state)
    adapter = make_adapter(first)
    await adapter.start()
    before = await alice.send_post(tagged("A4 before the drop "))
    await first.wait_for(lambda _: bool(posts_with(first, before.uri)), 20)

    # Jetstream goes away; a post lands while the adapter reconnects.
    bridge.drop_streams()
    during_drop = await bob.send_post(tagged("A4 during the drop "))
    await first.wait_for(lambda _: bool(posts_with(first, during_drop.uri)), 20)
    assert adapter.counters["reconnects"] >= 1
    await adapter.stop()
    assert len(posts_with(first, during_drop.uri)) == 1

    # The service is down; participants go on posting.
    while_down = [await alice.send_post(tagged(f"A5 while down {n} ")) for n in range(3)]
    second = RecordingSink(host_state)
    restarted = make_adapter(second)
    await restarted.start()
    wanted = {p.uri for p in while_down}
    await second.wait_for(lambda _: wanted <= set(second.remote_ids()), 20)
    for post in while_down:
        assert len(posts_with(second, post.uri)) == 1


async def test_search_catch_up_finds_posts_made_while_down(
    participants: dict[str, Any], make_adapter: Factory, host_state: MemoryState
) -> None:
    alice = participants["alice"]
    sink = RecordingSink(host_state)
    adapter = make_adapter(sink)
    await adapter.start()
    seen = await alice.send_post(tagged("A6 seen live "))
    await sink.wait_for(lambda _: bool(posts_with(sink, seen.uri)), 20)
    await adapter.stop()

    missed = await alice.send_post(tagged("A6 posted while down "))

    async def indexed() -> bool:
        res = await alice.app.bsky.feed.search_posts(
            {"q": "#MHChat", "tag": ["MHChat"], "sort": "latest", "limit": 25}
        )
        return any(p.uri == missed.uri for p in res.posts)

    await eventually(indexed)
    # A saved cursor older than max_replay_seconds is not replayed: search catches up instead
    # and the stream starts live, so the post can only come from searchPosts.
    later = RecordingSink(host_state)
    restarted = make_adapter(later, max_replay_seconds=0)
    await restarted.start()
    await later.wait_for(lambda _: bool(posts_with(later, missed.uri)), 20)
    (post,) = posts_with(later, missed.uri)
    assert post.author.handle == "alice.test"
    assert restarted.counters["search_posts"] >= 1


async def test_post_over_300_graphemes_is_refused_with_a_clear_error(
    bridge: JetstreamBridge, make_adapter: Factory, host_state: MemoryState
) -> None:
    adapter = make_adapter(RecordingSink(host_state))
    await adapter.start()
    ok = "💙" * 292 + " #MHChat"
    assert grapheme.length(ok) == 300
    assert await adapter.perform(
        Publish(key="len-300", platform=BLUESKY, purpose=Purpose.QUESTION, text=ok)
    )
    too_long = "a" + ok
    with pytest.raises(PermanentFailure, match=r"301 graphemes.*at most 300"):
        await adapter.perform(
            Publish(key="len-301", platform=BLUESKY, purpose=Purpose.QUESTION, text=too_long)
        )
    await asyncio.sleep(0.2)
    texts = [
        e["commit"]["record"].get("text")
        for e in bridge.events()
        if e["kind"] == "commit" and e["commit"]["operation"] == "create"
    ]
    assert ok in texts
    assert too_long not in texts


async def test_malformed_frames_are_skipped_and_counted(
    participants: dict[str, Any],
    bridge: JetstreamBridge,
    make_adapter: Factory,
    host_state: MemoryState,
) -> None:
    sink = RecordingSink(host_state)
    adapter = make_adapter(sink)
    await adapter.start()
    await _healthy(adapter)
    # Both mention the tag, so they get past the cheap pre-filter and are parsed.
    bridge.inject_frame("{not json #MHChat")
    bridge.inject_frame(
        '{"did": "did:plc:x", "time_us": 1, "kind": "commit", "commit": "#MHChat"}'
    )
    post = await participants["bob"].send_post(tagged("A7 still here "))
    await sink.wait_for(lambda _: bool(posts_with(sink, post.uri)), 20)
    assert adapter.counters["malformed_frames"] == 2
    assert adapter.health().status is HealthStatus.OK
    assert ("malformed_frames", 2) in adapter.health().counters


async def test_create_session_429_backs_off_until_the_pds_reset(
    atproto_network: AtprotoNetwork, make_adapter: Factory
) -> None:
    dave = atproto_network.accounts["dave"]
    url = f"{atproto_network.pds_url}/xrpc/com.atproto.server.createSession"
    # The main password costs the PDS one scrypt check where an app password costs two.
    body = {"identifier": dave.handle, "password": dave.password}

    async def spend(http: aiohttp.ClientSession) -> tuple[int, int]:
        async with http.post(url, json=body) as resp:
            # Sent all at once, the last few may already be refused.
            assert resp.status in (200, 429)
            return int(resp.headers["ratelimit-remaining"]), int(resp.headers["ratelimit-reset"])

    async with aiohttp.ClientSession() as http:
        answers = await asyncio.gather(*(spend(http) for _ in range(30)))
    remaining, reset = min(answers)
    assert remaining == 0

    adapter = make_adapter(RecordingSink(MemoryState()), account="dave")
    await adapter.start()  # the login is refused with 429; start itself must not fail
    publish = Publish(
        key="after-429", platform=BLUESKY, purpose=Purpose.QUESTION, text="Q1 #MHChat"
    )
    for _ in range(2):
        with pytest.raises(RateLimited) as limited:
            await adapter.perform(publish)
        assert limited.value.retry_at is not None
        # The PDS's own reset time (unix seconds), not a guess.
        assert abs(limited.value.retry_at.timestamp() - reset) <= 1
    # Backing off: no second createSession before the reset.
    assert adapter.client.logins == 1


async def test_firehose_source_reads_the_real_pds_and_resumes_from_its_seq(
    atproto_network: AtprotoNetwork,
    participants: dict[str, Any],
    make_adapter: Factory,
    host_state: MemoryState,
) -> None:
    alice, bob = participants["alice"], participants["bob"]
    settings = {"source": "firehose", "firehose_url": atproto_network.firehose_url}
    first = RecordingSink(host_state)
    adapter = make_adapter(first, **settings)
    await adapter.start()
    # With no saved seq the firehose starts live: wait until frames flow before posting.
    await bob.send_post("warming up")
    await _healthy(adapter)
    post = await alice.send_post(tagged("A8 through the repo firehose "))
    await first.wait_for(lambda _: bool(posts_with(first, post.uri)), 20)
    await alice.delete_post(post.uri)
    await first.wait_for(lambda _: any(d.remote_id == post.uri for d in deleted(first)), 20)
    (got,) = posts_with(first, post.uri)
    assert got.version == post.cid
    assert got.author.handle == "alice.test"
    await adapter.stop()
    saved = int(host_state.values["firehose_cursor"])

    missed = await bob.send_post(tagged("A8 while the firehose reader was down "))
    second = RecordingSink(host_state)
    restarted = make_adapter(second, **settings)
    await restarted.start()
    await second.wait_for(lambda _: bool(posts_with(second, missed.uri)), 20)
    assert len(posts_with(second, missed.uri)) == 1
    assert int(host_state.values["firehose_cursor"]) > saved
