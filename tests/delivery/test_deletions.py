"""Promise 5, deletions honoured, through the whole service and the platforms' own paths.

- A participant deletes a Bluesky post we reposted: the deletion arrives on Jetstream, the post
  leaves the store, its thread and the transcript read models, and our repost record is
  deleted on the platform.
- A person asks Meta to delete their data (the signed data-deletion callback): their posts,
  their participant row, their safety flags and the reply waiting for approval are gone, and a
  redelivered webhook cannot bring the posts back.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiohttp import web

from mhchat import transcript
from mhchat.config import parse_settings
from mhchat.emulators.bluesky import REPOST
from mhchat.emulators.facebook import Person
from mhchat.facilitation import views
from mhchat.service import build_service
from mhchat.testing import free_port
from mhchat.web.keys import RUNTIME

from .harness import Platforms

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


def live_schedule() -> dict[str, Any]:
    """A session that started 50 minutes ago; its questions are long expired."""
    start = datetime.now(UTC) - timedelta(minutes=50)
    return {
        "zone": "UTC",
        "weekday": WEEKDAYS[start.weekday()],
        "time": f"{start:%H:%M}",
        "length_minutes": 120,
        "lateness_minutes": 1,
    }


async def eventually(check: Callable[[], Any], what: str, within: float = 20.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


async def test_deletions_and_forget_me_through_the_platforms(tmp_path: Path) -> None:
    p = await Platforms.start()
    adapters = p.adapters()
    settings = parse_settings(
        {
            "database": {"url": f"sqlite:///{tmp_path / 'mhchat.db'}"},
            "sender": {"min_interval_seconds": 0.0, "poll_seconds": 0.05},
            "schedule": live_schedule(),
            "adapters": {"bluesky": adapters["bluesky"], "facebook": adapters["facebook"]},
        },
        p.env(),
    )
    session_id = (datetime.now(UTC) - timedelta(minutes=50)).date().isoformat()
    app = await build_service(settings)
    runtime = app[RUNTIME]
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    base = f"http://127.0.0.1:{port}"
    p.fb.webhook_url = f"{base}/webhooks/facebook"
    db = runtime.require_db()

    async def rows(sql: str, params: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
        async with db.read() as tx:
            return list(await tx.fetchall(sql, params))

    try:
        # -- a Bluesky deletion -----------------------------------------------------------
        alice = p.bsky.create_account("alice.test")
        bob = p.bsky.create_account("bob.test")
        first = p.bsky.post(alice, "A1 a walk every morning helps me #MHChat")
        reply = p.bsky.post(bob, "A1 same here, mornings are the best #MHChat", reply_to=first)

        def our_reposts() -> set[str]:
            return {r.value["subject"]["uri"] for r in p.bsky.records(p.bsky.host_did, REPOST)}

        await eventually(lambda: first in our_reposts(), "our repost of alice's post")
        async with db.read() as tx:
            before = await views.session_posts(tx, "default", session_id)
        assert {v.remote_id for v in before} >= {first, reply}
        thread_of_reply = [v.thread_root for v in before if v.remote_id == reply]
        assert thread_of_reply == [first]

        p.bsky.delete(first)

        async def gone() -> bool:
            return not await rows("SELECT 1 FROM posts WHERE remote_id = ?", (first,))

        await eventually(gone, "the deleted post to leave the store")
        await eventually(lambda: first not in our_reposts(), "our repost to be undone")
        async with db.read() as tx:
            after = await views.session_posts(tx, "default", session_id)
            groups = await views.grouped(tx, "default", session_id)
        assert first not in {v.remote_id for v in after}
        assert reply in {v.remote_id for v in after}  # bob's answer stays
        shown = {v.remote_id for g in groups for t in g.threads for v in t.posts}
        exported = transcript.to_markdown(await transcript.build(db, "default", session_id))
        assert "a walk every morning" not in exported
        assert "mornings are the best" in exported
        assert first not in shown
        assert reply in shown
        states = dict(await rows("SELECT key, state FROM actions WHERE target_id = ?", (first,)))
        assert states[f"repost:bluesky:{first}"] == "sent"
        assert states[f"unrepost:bluesky:{first}"] == "sent"
        # The deletion is remembered: the post arriving again (a search catch-up, a replayed
        # stream) is not stored again.
        assert await rows("SELECT 1 FROM tombstones WHERE remote_id = ?", (first,))

        # -- forget me (Meta's data-deletion callback) -------------------------------------
        carol = Person("139560936749001", "Carol")
        dave = Person("139560936749002", "Dave")
        page_post = await p.fb.page_post("Tonight's #MHChat thread")
        c1 = await p.fb.comment(carol, "A1 I can't go on like this", page_post)
        c2 = await p.fb.comment(carol, "A2 sleep has been hard #MHChat", page_post)
        d1 = await p.fb.comment(dave, "A1 talking helps #MHChat", page_post)

        async def stored_fb() -> bool:
            found = {str(r[0]) for r in await rows("SELECT remote_id FROM posts")}
            return {c1, c2, d1} <= found

        await eventually(stored_fb, "the comments to be stored")
        await eventually(
            lambda: rows("SELECT 1 FROM safety_flags WHERE remote_id = ?", (c1,)),
            "carol's post to be flagged for a person to look at",
        )
        status, body = await p.fb.request_data_deletion(
            f"{base}/webhooks/facebook/data-deletion", carol.id
        )
        assert status == 200
        assert "confirmation_code" in body

        async def forgotten() -> bool:
            return not await rows(
                "SELECT 1 FROM participants WHERE platform = 'facebook' AND author_id = ?",
                (carol.id,),
            )

        await eventually(forgotten, "carol to be forgotten")
        assert not await rows("SELECT 1 FROM posts WHERE author_id = ?", (carol.id,))
        assert not await rows("SELECT 1 FROM safety_flags WHERE remote_id IN (?, ?)", (c1, c2))
        assert not await rows("SELECT 1 FROM welcomes WHERE author_id = ?", (carol.id,))
        waiting = await rows(
            "SELECT state FROM actions WHERE target_id IN (?, ?) AND state IN"
            " ('pending', 'awaiting_approval')",
            (c1, c2),
        )
        assert waiting == []
        assert await rows("SELECT 1 FROM posts WHERE remote_id = ?", (d1,))  # dave stays
        exported = transcript.to_markdown(await transcript.build(db, "default", session_id))
        assert "sleep has been hard" not in exported
        assert "talking helps" in exported
        # Meta redelivers an old webhook with carol's comment: it stays forgotten.
        for delivery in p.fb.deliveries:
            delivery.delivered = False
        await p.fb.redeliver_failed()
        assert not await rows("SELECT 1 FROM posts WHERE author_id = ?", (carol.id,))
    finally:
        await runner.cleanup()
        await p.stop()
