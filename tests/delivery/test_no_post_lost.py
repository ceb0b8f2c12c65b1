"""Promise 1, no post lost: an event is acknowledged only once on disk, or it comes again.

The real service runs as a subprocess on the three emulators. The test takes the database's
write lock (as a stuck disk would), so the service receives posts on every platform (X filtered
stream, Bluesky Jetstream, signed Facebook webhooks) but cannot store them. Meanwhile no cursor
moves, and a webhook is answered 200 only once its signed body is in the intake spool (a file
of its own). Then the service is killed with SIGKILL, the lock released, the service started
again: every post arrives (X search catch-up from the saved cursor, Jetstream replay from the
saved cursor, the spooled Facebook deliveries) and is stored exactly once.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections import Counter
from pathlib import Path

import aiohttp
import pytest

from mhchat.emulators.facebook import Person
from mhchat.testing import free_port

from .harness import (
    Platforms,
    Service,
    leaks,
    meta_retries,
    query,
    questions_file,
    schedule_now,
    service_config,
)

pytestmark = [pytest.mark.timeout(300)]


async def test_posts_received_but_not_stored_when_killed_are_delivered_again(
    tmp_path: Path,
) -> None:
    p = await Platforms.start()
    # A session that started 50 minutes ago: its questions have expired, so nothing is sent
    # and the only writes are the posts'.
    _, schedule = schedule_now(minutes_ago=50)
    questions = questions_file(tmp_path / "questions.toml", [0])
    config = service_config(tmp_path, p, schedule=schedule, questions=questions)
    port = free_port()
    p.fb.webhook_url = f"http://127.0.0.1:{port}/webhooks/facebook"
    service = Service(config, p.env(), port, tmp_path / "mhchat.log")
    db_path = tmp_path / "mhchat.db"
    posted: dict[tuple[str, str], str] = {}
    try:
        page_post = await p.fb.page_post("Tonight's #MHChat thread")
        async with aiohttp.ClientSession() as http:
            service.start()
            await service.wait_ready(http)
            # Something stored first, so every platform has a cursor to keep.
            bob = p.bsky.create_account("bob.test")
            posted[("x", p.x.post_tweet("bob", "A1 first #MHChat"))] = ""
            posted[("bluesky", p.bsky.post(bob, "A1 first #MHChat"))] = ""

            def stored() -> set[tuple[str, str]]:
                rows = query(db_path, "SELECT platform, remote_id FROM posts WHERE is_own = 0")
                return {(str(r[0]), str(r[1])) for r in rows}

            await until(lambda: set(posted) <= stored(), 30, "the first posts")
            await asyncio.sleep(1.0)  # the Jetstream cursor is saved every half second
            cursors_before = query(
                db_path, "SELECT platform, key, value FROM adapter_state ORDER BY 1, 2"
            )

            lock = sqlite3.connect(db_path, timeout=30, isolation_level=None)
            lock.execute("BEGIN IMMEDIATE")  # the disk is stuck: nobody can write
            try:
                deliveries_before = len(p.fb.deliveries)
                alice = p.bsky.create_account("alice.test")
                for i in range(5):
                    text = f"A1 stuck {i} #MHChat"
                    posted[("x", p.x.post_tweet("alice", text))] = text
                    posted[("bluesky", p.bsky.post(alice, text))] = text
                    who = Person("139560936749100", "Alice")
                    posted[("facebook", await p.fb.comment(who, text, page_post))] = text
                await asyncio.sleep(4.0)  # received by the service, which cannot store them
                answered = [
                    status for d in p.fb.deliveries[deliveries_before:] for status in d.attempts
                ]
                assert answered, "no webhook reached the service"
                # Acknowledged because each delivery is on disk in the spool, not yet stored.
                assert set(answered) == {200}
                spooled = query(tmp_path / "mhchat.db.spool", "SELECT count(*) FROM spool")
                assert int(spooled[0][0]) >= 5
                assert (
                    query(db_path, "SELECT platform, key, value FROM adapter_state ORDER BY 1, 2")
                    == cursors_before
                )  # no cursor moved past what is stored
                assert {k for k in posted if posted[k]} & stored() == set()
                service.kill()
            finally:
                lock.execute("ROLLBACK")
                lock.close()

            service.start()
            await service.wait_ready(http)
            rounds = await meta_retries(p.fb)
            await until(lambda: set(posted) <= stored(), 40, "every post after the restart")
            rows = query(db_path, "SELECT platform, remote_id, COUNT(*) FROM posts GROUP BY 1, 2")
            service.stop()
    finally:
        service.stop()
        await p.stop()
    assert all(int(r[2]) == 1 for r in rows)
    assert set(posted) <= {(str(r[0]), str(r[1])) for r in rows}
    log_text = service.log_path.read_text(errors="replace")
    assert not leaks(log_text, p.env().values(), [t for t in posted.values() if t])
    print(
        f"\nno post lost: {len(posted)} posts ({dict(Counter(k[0] for k in posted))}), 15 of"
        f" them received while the disk was stuck and the service SIGKILLed; all stored once"
        f" after the restart (the Facebook ones from the spool; {rounds} rounds of Meta"
        f" retries)"
    )


async def until(check: object, within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")
