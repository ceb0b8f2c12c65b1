"""The Jetstream bridge against the real PDS firehose: output shape, filters, cursor replay."""

from __future__ import annotations

import asyncio
import base64
import warnings
from typing import Any

import aiohttp
import orjson
from atproto import models  # type: ignore[import-untyped]
from tests.adapters.bluesky_network.helpers import (
    get_record,
    recorded_jetstream,
    reply_ref,
    rkey,
    strong_ref,
    tagged,
)
from tests.adapters.bluesky_network.network import AtprotoNetwork

from mhchat.emulators.jetstream_bridge import JetstreamBridge, to_json_value


def _signature(event: dict[str, Any]) -> tuple[str, ...]:
    """What kind of event this is, to pair it with a recorded one of the same kind."""
    if event["kind"] != "commit":
        return (event["kind"],)
    commit = event["commit"]
    is_reply = "reply" in commit.get("record", {})
    return ("commit", commit["operation"], commit["collection"], str(is_reply))


def _shape(value: Any) -> Any:
    """Keys and value types, recursively (lists by their first item)."""
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_shape(value[0])] if value else []
    return type(value).__name__


async def test_commits_have_the_recorded_jetstream_shape(
    atproto_network: AtprotoNetwork, participants: dict[str, Any], bridge: JetstreamBridge
) -> None:
    alice, bob = participants["alice"], participants["bob"]
    post = await alice.send_post(tagged("A1 Sleep has been rough 😴 but today was kinder. "))
    ref = strong_ref(post.uri, post.cid)
    reply = await bob.send_post("Welcome to #MHChat, Be Kind 💙", reply_to=reply_ref(ref, ref))
    repost = await bob.repost(post.uri, post.cid)
    stored = {
        uri: (await get_record(atproto_network.pds_url, uri))
        for uri in (post.uri, reply.uri, repost.uri)
    }
    await bob.unrepost(repost.uri)
    await alice.delete_post(post.uri)

    ours = {rkey(u) for u in (post.uri, reply.uri, repost.uri)}
    done = await bridge.wait_for_event(
        lambda e: (
            e["kind"] == "commit"
            and e["commit"]["operation"] == "delete"
            and e["commit"]["rkey"] == rkey(post.uri)
        )
    )
    events = [e for e in bridge.events() if e["kind"] == "commit" and e["commit"]["rkey"] in ours]
    assert events[-1] == done
    assert [(e["commit"]["operation"], e["commit"]["collection"]) for e in events] == [
        ("create", "app.bsky.feed.post"),
        ("create", "app.bsky.feed.post"),
        ("create", "app.bsky.feed.repost"),
        ("delete", "app.bsky.feed.repost"),
        ("delete", "app.bsky.feed.post"),
    ]
    times = [e["time_us"] for e in events]
    assert times == sorted(times)
    assert len(set(times)) == len(times)

    recorded: dict[tuple[str, ...], list[Any]] = {}
    for example in recorded_jetstream():
        recorded.setdefault(_signature(example), []).append(_shape(example))
    for event in events:
        # Records are written by clients, so their optional fields vary between examples.
        assert _shape(event) in recorded[_signature(event)], event
        commit = event["commit"]
        if commit["operation"] == "create":
            uri = f"at://{event['did']}/{commit['collection']}/{commit['rkey']}"
            assert commit["record"] == stored[uri]["value"]
            assert commit["cid"] == stored[uri]["cid"]
        else:
            assert "record" not in commit
            assert "cid" not in commit
    assert bridge.counters["skipped_frames"] == 0
    assert bridge.firehose_error is None


async def test_identity_and_account_events_have_the_recorded_shape(
    atproto_network: AtprotoNetwork, bridge: JetstreamBridge
) -> None:
    alice = atproto_network.accounts["alice"]
    mine = [e for e in bridge.events() if e["did"] == alice.did and e["kind"] != "commit"]
    recorded = {e["kind"]: e for e in recorded_jetstream() if e["kind"] != "commit"}
    kinds = {e["kind"] for e in mine}
    assert kinds == {"identity", "account"}
    for event in mine:
        assert set(event) == set(recorded[event["kind"]])
        assert set(event[event["kind"]]) == set(recorded[event["kind"]][event["kind"]])
    handles = {e["identity"]["handle"] for e in mine if e["kind"] == "identity"}
    assert alice.handle in handles
    assert any(e["account"]["active"] for e in mine if e["kind"] == "account")


async def _collect(url: str, count: int, within: float = 5.0) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    async with aiohttp.ClientSession() as http, http.ws_connect(url) as ws:
        async with asyncio.timeout(within):
            while len(out) < count:
                msg = await ws.receive()
                assert msg.type == aiohttp.WSMsgType.TEXT, msg
                out.append(orjson.loads(msg.data))
    return out


async def test_subscribe_filters_and_replays_from_a_time_us_cursor(
    atproto_network: AtprotoNetwork, participants: dict[str, Any], bridge: JetstreamBridge
) -> None:
    alice, bob = participants["alice"], participants["bob"]
    posts = "wantedCollections=app.bsky.feed.post"
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(f"{bridge.jetstream_url}?{posts}") as live,
    ):
        first = await alice.send_post(tagged("A1 one "))
        liked = await bob.like(first.uri, first.cid)  # not a post: filtered out
        second = await bob.send_post(tagged("A1 two "))
        third = await alice.send_post(tagged("A1 three "))
        received: list[dict[str, Any]] = []
        async with asyncio.timeout(5):
            while len(received) < 3:
                msg = await live.receive()
                event = orjson.loads(msg.data)
                if event["kind"] == "commit":
                    received.append(event)
    assert [e["commit"]["rkey"] for e in received] == [
        rkey(first.uri),
        rkey(second.uri),
        rkey(third.uri),
    ]
    assert all(e["commit"]["collection"] == "app.bsky.feed.post" for e in received)
    assert rkey(liked.uri) not in {e["commit"]["rkey"] for e in received}

    # Replay starts AT the cursor (inclusive) and goes on in order.
    cursor = received[1]["time_us"]
    replayed = await _collect(f"{bridge.jetstream_url}?{posts}&cursor={cursor}", 2)
    assert replayed == received[1:]

    # A wantedDids filter keeps only that repo's events.
    only_bob = await _collect(
        f"{bridge.jetstream_url}?{posts}&wantedDids={bob.me.did}&cursor={received[0]['time_us']}",
        1,
    )
    assert only_bob == [received[1]]

    # A cursor in the future means live tail: nothing old is sent.
    future = bridge.last_time_us + 60_000_000
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(f"{bridge.jetstream_url}?{posts}&cursor={future}") as tail,
    ):
        fourth = await bob.send_post(tagged("A1 four "))
        msg = await tail.receive(timeout=5)
        assert orjson.loads(msg.data)["commit"]["rkey"] == rkey(fourth.uri)


async def test_options_update_and_require_hello(
    participants: dict[str, Any], bridge: JetstreamBridge
) -> None:
    alice = participants["alice"]
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(f"{bridge.jetstream_url}?requireHello=true") as ws,
    ):
        await ws.send_str(
            orjson.dumps(
                {
                    "type": "options_update",
                    "payload": {"wantedCollections": ["app.bsky.feed.*"], "wantedDids": []},
                }
            ).decode()
        )
        post = await alice.send_post(tagged("A4 hello "))
        msg = await ws.receive(timeout=5)
        event = orjson.loads(msg.data)
        assert event["commit"]["rkey"] == rkey(post.uri)


async def test_bad_queries_are_refused_and_drop_streams_closes(bridge: JetstreamBridge) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{bridge.base_url}/subscribe?cursor=yesterday") as bad:
            assert bad.status == 400
        async with http.ws_connect(bridge.jetstream_url) as ws:
            bridge.drop_streams()
            msg = await ws.receive(timeout=5)
            assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)


# A 1x1 PNG, for a post with an image: its blob ref is a CID link inside the record.
_PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


async def test_links_in_records_become_dollar_link_as_the_pds_shows_them(
    atproto_network: AtprotoNetwork, participants: dict[str, Any], bridge: JetstreamBridge
) -> None:
    alice = participants["alice"]
    with warnings.catch_warnings():
        # The SDK passes raw bytes to httpx the deprecated way; not ours to fix here.
        warnings.simplefilter("ignore", DeprecationWarning)
        uploaded = await alice.upload_blob(_PNG)
    image = models.AppBskyEmbedImages.Image(alt="a dot", image=uploaded.blob)
    post = await alice.send_post(
        tagged("A9 my view today "), embed=models.AppBskyEmbedImages.Main(images=[image])
    )
    stored = await get_record(atproto_network.pds_url, post.uri)
    event = await bridge.wait_for_event(
        lambda e: e["kind"] == "commit" and e["commit"]["rkey"] == rkey(post.uri)
    )
    assert event["commit"]["record"] == stored["value"]
    ref = event["commit"]["record"]["embed"]["images"][0]["image"]["ref"]
    assert set(ref) == {"$link"}


def test_plain_bytes_stay_bytes() -> None:
    assert to_json_value({"b": b"\x00\x01"}) == {"b": {"$bytes": "AAE"}}
