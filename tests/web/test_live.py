"""The live feed: posts pushed by server-sent events, grouped, with decisions; bounded fan-out."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import orjson
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient, TestServer

from mhchat.web.dashboard import DASHBOARD, DASHBOARD_APP
from mhchat.web.dashboard.live import Client, LiveHub

from .conftest import Rig, now_post


async def next_event(resp: ClientResponse, name: str, within: float = 10.0) -> Any:
    """Read the stream until an event called ``name``; return its decoded data."""
    event = None
    async with asyncio.timeout(within):
        while True:
            line = (await resp.content.readline()).decode().rstrip("\n")
            if line.startswith("event: "):
                event = line.removeprefix("event: ")
            elif line.startswith("data: ") and event == name:
                return orjson.loads(line.removeprefix("data: "))


async def next_post(resp: ClientResponse, remote_id: str, **wanted: Any) -> Any:
    """The next post event about ``remote_id`` (posts are re-sent when their decisions move)."""
    while True:
        post = await next_event(resp, "post")
        if post["remote_id"] == remote_id and all(post[k] == v for k, v in wanted.items()):
            return post


async def test_posts_arrive_live_with_thread_question_and_decisions(rig: Rig) -> None:
    await rig.sign_in()
    resp = await rig.client.get("/dashboard/events")
    assert resp.status == 200
    assert resp.headers["Content-Type"] == "text/event-stream"
    assert resp.headers["X-Frame-Options"] == "DENY"
    await next_event(resp, "hello")
    await rig.inject(now_post("L1", author="lee", text="A2 a good week #MHChat"))
    post = await next_post(resp, "L1")
    assert post["platform"] == "fake"
    assert post["question"] == 2
    assert post["first_timer"] is True
    assert post["thread"] == "fake:L1"
    purposes = {d["purpose"]: d for d in post["decisions"]}
    assert purposes["repost"]["reason"].startswith("fair reposts")
    assert "welcome" in purposes
    # When the sender performs the repost, the post is pushed again with the new state. On a
    # busy machine the sender can finish before the feed's first read, and then that first
    # push already carries it.
    async with asyncio.timeout(10):
        again = post
        while {d["purpose"]: d["state"] for d in again["decisions"]}["repost"] != "sent":
            again = await next_post(resp, "L1")

    await rig.inject(now_post("L2", author="max", text="same here #MHChat", parent="L1"))
    reply = await next_post(resp, "L2")
    assert reply["thread"] == "fake:L1"
    assert reply["is_reply"] is True
    assert reply["question"] == 2  # a reply joins its parent's question

    await rig.delete("L2")
    gone = await next_event(resp, "deleted")
    assert gone == {"platform": "fake", "remote_id": "L2"}
    resp.close()


async def test_a_crisis_post_tells_the_page_to_refresh_the_safety_queue(rig: Rig) -> None:
    await rig.sign_in()
    resp = await rig.client.get("/dashboard/events")
    await next_event(resp, "hello")
    await rig.inject(now_post("C1", author="cat", text="I want to end my life #MHChat"))
    post = await next_event(resp, "post")
    assert post["triage"] == "crisis"
    assert [d["state"] for d in post["decisions"]] == ["awaiting_approval"]
    await next_event(resp, "panels")
    panels = await (await rig.client.get("/dashboard/api/panels")).json()
    assert panels["counts"]["queue"] == 1
    resp.close()


async def test_feed_snapshot_and_live_page(rig: Rig) -> None:
    await rig.sign_in()
    await rig.inject(now_post("S1", author="sue", text="A1 hello #MHChat"))
    feed = await (await rig.client.get("/dashboard/api/feed")).json()
    assert [p["remote_id"] for p in feed["posts"]] == ["S1"]
    html = await (await rig.client.get("/dashboard/")).text()
    assert 'id="feed-groups" aria-live="polite"' in html
    assert html.index('id="queue"') < html.index('id="feed"')  # the safety queue comes first
    assert "<script>" not in html
    assert 'src="/dashboard/static/app.js"' in html
    # Everything the page loads is served by the dashboard itself: no CDN, no remote fonts.
    assert re.findall(r'(?:src|href)="(?!/dashboard/|#)([^"]*)"', html) == []
    hub = rig.app[DASHBOARD_APP][DASHBOARD].hub
    assert rig.runtime.observers.count(hub.observe) == 1


async def test_a_slow_client_is_dropped_not_buffered(rig: Rig) -> None:
    hub = LiveHub(rig.runtime, queue_size=2)
    slow = Client(asyncio.Queue(2))
    fast = Client(asyncio.Queue(10))
    hub.clients |= {slow, fast}
    for i in range(3):
        hub.broadcast("post", {"n": i})
    assert slow.dropped
    assert slow not in hub.clients
    assert slow.queue.get_nowait() is None  # told to close, nothing else kept
    assert fast.queue.qsize() == 3
    assert fast in hub.clients
    assert hub.dropped_clients == 1


async def test_post_text_is_never_logged(rig: Rig, capsys: Any) -> None:
    await rig.sign_in()
    resp = await rig.client.get("/dashboard/events")
    await next_event(resp, "hello")
    secret_text = "A3 my very private words zebra-quartz #MHChat"
    await rig.inject(now_post("P1", author="pat", text=secret_text))
    await next_event(resp, "post")
    resp.close()
    out = capsys.readouterr()
    assert "zebra-quartz" not in out.out + out.err


async def test_installing_twice_mounts_one_dashboard(tmp_path: Any) -> None:
    from mhchat.service import build_service  # noqa: PLC0415
    from mhchat.web.dashboard import install_dashboard  # noqa: PLC0415
    from mhchat.web.keys import RUNTIME  # noqa: PLC0415

    from .conftest import dashboard_settings  # noqa: PLC0415

    app = await build_service(
        dashboard_settings(tmp_path), extra_hooks=[install_dashboard, install_dashboard]
    )
    runtime = app[RUNTIME]
    async with TestClient(TestServer(app)) as client:
        assert len([r for r in app.router.resources() if "dashboard" in str(r)]) == 1
        assert len(runtime.observers) == 1
        assert [n for n, _ in runtime.components].count("dashboard-live") == 1
        assert (await client.get("/dashboard/login")).status == 200
