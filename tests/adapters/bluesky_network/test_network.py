"""The local network itself: the facts the Bluesky adapter relies on, checked on the real PDS.

These use the raw atproto SDK and plain HTTP, not the adapter, so a failure here points at the
network (or a changed platform behaviour) rather than at the adapter.
"""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from atproto import exceptions  # type: ignore[import-untyped]
from tests.adapters.bluesky_network.helpers import (
    eventually,
    get_record,
    indexed_chain,
    reply_ref,
    strong_ref,
    tagged,
)
from tests.adapters.bluesky_network.network import AtprotoNetwork


async def test_create_session_carries_the_real_rate_limit_headers(
    atproto_network: AtprotoNetwork,
) -> None:
    bob = atproto_network.accounts["bob"]
    url = f"{atproto_network.pds_url}/xrpc/com.atproto.server.createSession"
    async with aiohttp.ClientSession() as http:
        async with http.post(
            url, json={"identifier": bob.handle, "password": bob.app_password}
        ) as ok:
            body = await ok.json()
            assert ok.status == 200
            assert body["did"] == bob.did
            assert ok.headers["ratelimit-policy"] == "30;w=300"
            first = int(ok.headers["ratelimit-remaining"])
        async with http.post(url, json={"identifier": bob.handle, "password": "wrong"}) as bad:
            assert bad.status == 401
            assert (await bad.json())["error"] == "AuthenticationRequired"
            # A failed login spends the same budget, keyed by identifier and address.
            assert int(bad.headers["ratelimit-remaining"]) == first - 1


async def test_tag_facet_offsets_are_utf8_bytes(
    atproto_network: AtprotoNetwork, participants: dict[str, Any]
) -> None:
    prefix = "A3 Noson dda, ça va mieux 💙 "
    created = await participants["alice"].send_post(tagged(prefix), langs=["cy", "fr"])
    stored = (await get_record(atproto_network.pds_url, created.uri))["value"]
    text: str = stored["text"]
    (facet,) = stored["facets"]
    start, end = facet["index"]["byteStart"], facet["index"]["byteEnd"]
    assert start == len(prefix.encode()) != len(prefix)
    assert text.encode()[start:end].decode() == "#MHChat"
    assert facet["features"] == [{"$type": "app.bsky.richtext.facet#tag", "tag": "MHChat"}]


async def test_thread_on_the_appview_has_root_and_parent(
    participants: dict[str, Any],
) -> None:
    alice, bob, carol = participants["alice"], participants["bob"], participants["carol"]
    root = await alice.send_post(tagged("Q1 How was your week? "))
    root_ref = strong_ref(root.uri, root.cid)
    first = await bob.send_post("A1 steady", reply_to=reply_ref(root_ref, root_ref))
    second = await carol.send_post(
        "same here", reply_to=reply_ref(root_ref, strong_ref(first.uri, first.cid))
    )

    async def indexed() -> Any:
        try:
            thread = (await alice.get_post_thread(second.uri)).thread
        except exceptions.BadRequestError:
            return None  # "Post not found" until the appview has indexed it
        return thread if indexed_chain(thread, 3) else None

    thread = await eventually(indexed)
    assert thread.post.record.reply.root.uri == root.uri
    assert thread.post.record.reply.parent.uri == first.uri
    assert thread.parent.post.uri == first.uri
    assert thread.parent.parent.post.uri == root.uri


async def test_search_posts_finds_tagged_posts(participants: dict[str, Any]) -> None:
    alice = participants["alice"]
    created = await alice.send_post(tagged("A2 search me ", suffix=" findable"))

    async def found() -> bool:
        res = await alice.app.bsky.feed.search_posts(
            {"q": "#MHChat", "tag": ["MHChat"], "sort": "latest", "limit": 100}
        )
        return any(p.uri == created.uri for p in res.posts)

    assert await eventually(found)


async def test_post_over_300_graphemes_is_refused_by_the_pds(
    participants: dict[str, Any],
) -> None:
    alice = participants["alice"]
    # Flags are one grapheme each but eight UTF-8 bytes: the limit counts graphemes.
    assert await alice.send_post("🇬🇧" * 300)
    with pytest.raises(exceptions.BadRequestError) as refused:
        await alice.send_post("a" * 301)
    assert refused.value.response.status_code == 400
    assert "grapheme" in refused.value.response.content.message


async def test_repost_and_delete_round_trip(
    atproto_network: AtprotoNetwork, participants: dict[str, Any]
) -> None:
    alice, bob = participants["alice"], participants["bob"]
    post = await alice.send_post(tagged("Q2 Who helps you? "))
    repost = await bob.repost(post.uri, post.cid)
    stored = (await get_record(atproto_network.pds_url, repost.uri))["value"]
    assert (stored["subject"]["uri"], stored["subject"]["cid"]) == (post.uri, post.cid)
    assert await bob.unrepost(repost.uri)
    assert await alice.delete_post(post.uri)
    async with aiohttp.ClientSession() as http:
        repo, coll, key = post.uri.removeprefix("at://").split("/")
        async with http.get(
            f"{atproto_network.pds_url}/xrpc/com.atproto.repo.getRecord",
            params={"repo": repo, "collection": coll, "rkey": key},
        ) as gone:
            assert gone.status == 400
            assert (await gone.json())["error"] == "RecordNotFound"
