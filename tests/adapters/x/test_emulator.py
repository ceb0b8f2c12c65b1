"""The emulator enforces X's auth, rate limits and shapes on its own (raw HTTP, no adapter)."""

from __future__ import annotations

import time

import aiohttp
from authlib.oauth1 import ClientAuth  # type: ignore[import-untyped]

from mhchat.emulators.x import XEmulator


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class TestAuth:
    async def test_stream_rules_take_the_app_token_only(
        self, emulator: XEmulator, http: aiohttp.ClientSession
    ) -> None:
        url = emulator.base_url + "/2/tweets/search/stream/rules"
        access, _ = emulator.host_oauth2
        async with http.get(url, headers=bearer(access)) as resp:
            body = await resp.json()
            assert resp.status == 403
        assert body["type"].endswith("/unsupported-authentication")
        async with http.get(url, headers=bearer(emulator.app_bearer)) as resp:
            assert resp.status == 200
            assert resp.headers["x-rate-limit-limit"] == "450"

    async def test_writes_take_user_context_only(
        self, emulator: XEmulator, http: aiohttp.ClientSession
    ) -> None:
        url = emulator.base_url + "/2/tweets"
        async with http.post(url, json={"text": "hi"}, headers=bearer(emulator.app_bearer)) as r:
            assert r.status == 403
        async with http.post(url, json={"text": "hi"}, headers=bearer("nonsense")) as r:
            body = await r.json()
            assert r.status == 401
        assert body == {
            "title": "Unauthorized",
            "detail": "Unauthorized",
            "status": 401,
            "type": "about:blank",
        }

    async def test_oauth1_signatures_are_verified(
        self, emulator: XEmulator, http: aiohttp.ClientSession
    ) -> None:
        token, secret = emulator.host_oauth1
        url = emulator.base_url + "/2/users/me"
        good = ClientAuth(emulator.consumer_key, emulator.consumer_secret, token, secret)
        _, headers, _ = good.sign("GET", url, {}, b"")
        async with http.get(url, headers=headers) as resp:
            assert resp.status == 200
            assert (await resp.json())["data"]["id"] == emulator.host_id
        forged = ClientAuth(emulator.consumer_key, "wrong-secret", token, secret)
        _, headers, _ = forged.sign("GET", url, {}, b"")
        async with http.get(url, headers=headers) as resp:
            assert resp.status == 401


class TestLimitsAndShapes:
    async def test_window_runs_out_with_headers_then_429(
        self, emulator: XEmulator, http: aiohttp.ClientSession
    ) -> None:
        emulator.set_limit("lookup", 2)
        post = emulator.post_tweet("alice", "A1 #MHChat")
        url = emulator.base_url + f"/2/tweets?ids={post}"
        remaining = []
        reset = 0
        for _ in range(3):
            async with http.get(url, headers=bearer(emulator.app_bearer)) as resp:
                remaining.append((resp.status, resp.headers["x-rate-limit-remaining"]))
                reset = int(resp.headers["x-rate-limit-reset"])
        assert remaining == [(200, "1"), (200, "0"), (429, "0")]
        assert time.time() < reset <= time.time() + 900

    async def test_search_pages_and_hides_retweets(
        self, emulator: XEmulator, http: aiohttp.ClientSession
    ) -> None:
        ids = [emulator.post_tweet("alice", f"A{i} #MHChat") for i in range(12)]
        emulator.retweet_as("bob", ids[0])
        params = {
            "query": "#MHChat",
            "max_results": "10",
            "tweet.fields": "author_id,created_at",
            "expansions": "author_id",
        }
        url = emulator.base_url + "/2/tweets/search/recent"
        async with http.get(url, params=params, headers=bearer(emulator.app_bearer)) as resp:
            first = await resp.json()
        assert first["meta"]["result_count"] == 10
        assert first["meta"]["newest_id"] == ids[-1]
        assert first["includes"]["users"][0]["username"] == "alice"
        assert set(first["data"][0]) == {
            "id",
            "text",
            "edit_history_tweet_ids",
            "author_id",
            "created_at",
        }
        params["next_token"] = first["meta"]["next_token"]
        async with http.get(url, params=params, headers=bearer(emulator.app_bearer)) as resp:
            second = await resp.json()
        assert [t["id"] for t in second["data"]] == [ids[1], ids[0]]
        assert "next_token" not in second["meta"]

    async def test_reply_rule_403_and_duplicate_text(
        self, emulator: XEmulator, http: aiohttp.ClientSession
    ) -> None:
        access, _ = emulator.host_oauth2
        url = emulator.base_url + "/2/tweets"
        plain = emulator.post_tweet("alice", "A1 #MHChat")
        body = {"text": "Welcome!", "reply": {"in_reply_to_tweet_id": plain}}
        async with http.post(url, json=body, headers=bearer(access)) as resp:
            refused = await resp.json()
            assert resp.status == 403
        assert refused["detail"].startswith("Reply to this conversation is not allowed")
        async with http.post(url, json={"text": "Q1 #MHChat"}, headers=bearer(access)) as resp:
            assert resp.status == 201
            assert resp.headers["location"].endswith(
                "/2/tweets/" + (await resp.json())["data"]["id"]
            )
            assert "x-user-limit-24hour-remaining" in resp.headers
        async with http.post(url, json={"text": "Q1 #MHChat"}, headers=bearer(access)) as resp:
            assert resp.status == 403
            assert "duplicate content" in (await resp.json())["detail"]
