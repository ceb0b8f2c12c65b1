"""A burst of 10,000 Facebook webhook events on a slow disk.

The whole service (facilitation included) serves the real Facebook adapter's webhook on
127.0.0.1; the emulator delivers Meta's signed ``feed`` changes and retries what is refused, as
Meta does. Every write transaction is slowed down (a slow disk), and the intake spool and the
bus are small, so they fill. The service answers 503 (Meta retries) and never 500, never 200
before the delivery is on disk; in the end every comment is stored exactly once. The JSON logs
are captured to a file and scanned for secrets and post text.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import structlog
from aiohttp import web

from mhchat.bus import Bus
from mhchat.config import parse_settings
from mhchat.emulators.facebook import FacebookEmulator, Person
from mhchat.logs import configure_logging
from mhchat.service import build_service
from mhchat.spool import Spool
from mhchat.testing import free_port
from mhchat.web.keys import RUNTIME

from .harness import leaks, meta_retries

pytestmark = [pytest.mark.timeout(300)]

EVENTS = 10_000
PER_DELIVERY = 5
DISK_DELAY = 0.01


def live_schedule() -> dict[str, Any]:
    start = datetime.now(UTC) - timedelta(minutes=50)
    weekday = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
    return {
        "zone": "UTC",
        "weekday": weekday[start.weekday()],
        "time": f"{start:%H:%M}",
        "length_minutes": 120,
        "lateness_minutes": 1,
    }


@contextlib.asynccontextmanager
async def json_logs(path: Path, secret_values: list[str]) -> AsyncIterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    with path.open("w", encoding="utf-8") as out:
        configure_logging(level="info", json=True, secrets=secret_values, stream=out)
        try:
            yield
        finally:
            structlog.reset_defaults()
            root.handlers[:] = handlers
            root.setLevel(level)


async def drained(spool: Spool, bus: Bus, *, within: float) -> None:
    """Wait until every spooled delivery has been parsed and stored."""
    for _ in range(int(within / 0.1)):
        if not (spool.depth() or bus.depth):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{spool.depth()} deliveries still in the spool after {within} s")


def slow_disk(db: Any, delay: float) -> None:
    """Every write transaction takes ``delay`` longer, as on a saturated disk."""
    write = db.write

    @contextlib.asynccontextmanager
    async def slow_write() -> AsyncIterator[Any]:
        async with write() as tx:
            await asyncio.sleep(delay)
            yield tx

    db.write = slow_write


async def test_ten_thousand_webhook_events_on_a_slow_disk_are_stored_once(
    tmp_path: Path,
) -> None:
    fb = FacebookEmulator(
        page_token="EAAGpage" + secrets.token_urlsafe(24),
        app_secret="fbsecret" + secrets.token_hex(16),
        retry_delays=(0.0, 0.5, 1.0, 2.0, 4.0, 8.0),
        call_budget=10**7,
    )
    await fb.start()
    verify = "verify-" + secrets.token_urlsafe(12)
    env = {
        "MHCHAT_FACEBOOK_APP_SECRET": fb.app_secret,
        "MHCHAT_FACEBOOK_VERIFY_TOKEN": verify,
        "MHCHAT_FACEBOOK_PAGE_ACCESS_TOKEN": fb.page_token,
    }
    settings = parse_settings(
        {
            "database": {"url": f"sqlite:///{tmp_path / 'mhchat.db'}", "spool_capacity": 100},
            "bus": {"capacity": 20, "max_batch": 200},
            "sender": {"min_interval_seconds": 0.0, "poll_seconds": 0.2},
            "schedule": live_schedule(),
            "adapters": {
                "facebook": {
                    "page_id": fb.page.id,
                    "graph_url": fb.base_url,
                    "ack_timeout": 0.5,
                    "request_timeout": 2.0,
                }
            },
        },
        env,
    )
    log_path = tmp_path / "mhchat.log"
    texts: list[str] = []
    began = time.monotonic()
    async with json_logs(log_path, list(env.values())):
        app = await build_service(settings)
        runtime = app[RUNTIME]
        runner = web.AppRunner(app)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        try:
            slow_disk(runtime.require_db(), DISK_DELAY)
            post = await fb.page_post("Tonight's #MHChat: say hello below")
            # The comments are made while the subscription is lapsed, then Meta sends them
            # all at once, several changes per delivery.
            fb.lapse_subscription()
            for i in range(EVENTS):
                text = f"A1 hello {i} {secrets.token_hex(4)} #MHChat"
                texts.append(text)
                await fb.comment(Person(str(139560936760000 + i % 800), f"P{i % 800}"), text, post)
            changes = [
                c for body in fb.undelivered for c in json.loads(body)["entry"][0]["changes"]
            ]
            assert len(changes) == EVENTS + 1
            fb.undelivered.clear()
            fb.restore_subscription()
            fb.webhook_url = f"http://127.0.0.1:{port}/webhooks/facebook"
            for start in range(0, len(changes), PER_DELIVERY):
                fb.deliver_changes(changes[start : start + PER_DELIVERY])
            await fb.drain()
            first_pass = Counter(d.attempts[-1] for d in fb.deliveries)
            rounds = await meta_retries(fb)
            spool = runtime.spool
            assert spool is not None
            assert runtime.bus is not None
            await drained(spool, runtime.bus, within=120)
            burst = time.monotonic() - began
            db = runtime.require_db()
            async with db.read() as tx:
                rows = await tx.fetchall(
                    "SELECT remote_id, COUNT(*) FROM posts WHERE is_own = 0 GROUP BY remote_id"
                )
        finally:
            await runner.cleanup()
            await fb.stop()

    statuses = Counter(status for d in fb.deliveries for status in d.attempts)
    assert all(d.delivered for d in fb.deliveries)
    assert statuses[500] == 0
    assert statuses[0] == 0
    assert set(statuses) <= {200, 503}
    assert statuses[503] > 0, "the spool never filled: the burst did not test back-pressure"
    comments = {n.id for n in fb.nodes.values() if n.post_id is not None and n.author != fb.page}
    assert len(comments) == EVENTS
    assert {str(r[0]) for r in rows} == comments
    assert all(int(r[1]) == 1 for r in rows)
    log_text = log_path.read_text(encoding="utf-8")
    assert "facebook_spool_stored" in log_text
    assert not leaks(log_text, env.values(), texts)
    print(
        f"\nburst: {EVENTS} events in {len(fb.deliveries)} signed deliveries, disk +"
        f"{DISK_DELAY * 1000:.0f} ms per transaction, spool capacity 100: first pass"
        f" {dict(first_pass)}, every attempt {dict(statuses)}, {rounds} rounds of Meta"
        f" retries; {len(rows)} comments stored once each in {burst:.1f} s; no 500"
    )
