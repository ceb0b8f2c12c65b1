"""Hot standby: two real ``mhchat serve`` processes on PostgreSQL + JetStream, X emulator.

A session is live (questions due during the test) and participants post all along. The leader
is killed with SIGKILL again and again at random moments; the standby takes over its duties
(stream intake, sender, scheduler, ingest consumer) and the killed one comes back as the new
standby. At the end: every participant post stored once, every question posted once, no action
performed twice on the emulator, and the take-over times (p50/max) printed.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import nats
import pytest

from mhchat.emulators.x import XEmulator
from mhchat.testing import free_port
from mhchat.tomlwrite import to_toml

from .conftest import NATS_URL, PgDatabases, require_nats, unique
from .services import X_FAST, Figures, Service, questions_file, session_now

pytestmark = [pytest.mark.scale, pytest.mark.slow, pytest.mark.timeout(480)]

LEASE_TIMEOUT = 5.0


def service_config(
    tmp_path: Path,
    pg_url: str,
    stream: str,
    emu: XEmulator,
    questions: Path,
    schedule: dict[str, Any],
) -> Path:
    doc: dict[str, Any] = {
        "chat": {"id": "default", "hashtag": "MHChat"},
        "database": {"url": pg_url},
        "web": {"host": "127.0.0.1"},
        "bus": {
            "backend": "nats",
            "nats_url": NATS_URL,
            "stream": stream,
            "subject_prefix": stream.lower(),
            "ack_wait_seconds": 2.0,
        },
        "leases": {"timeout_seconds": LEASE_TIMEOUT, "renew_seconds": 0.5},
        "sender": {"min_interval_seconds": 0.05, "poll_seconds": 0.1},
        "logging": {"level": "info", "json": True},
        "schedule": schedule,
        "questions": {"file": str(questions)},
        "reposts": {"budget": 15},
        "adapters": {"x": {**X_FAST, "api_base": emu.base_url}},
    }
    path = tmp_path / "mhchat.toml"
    path.write_text(to_toml(doc), encoding="utf-8")
    return path


async def wait_for(predicate: Any, within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if await predicate():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


async def test_the_standby_takes_over_without_loss_or_double_action(
    tmp_path: Path, pg_databases: PgDatabases
) -> None:
    require_nats()
    pg_url = await pg_databases.create()
    stream = unique("MHCHAT_FAILOVER")
    emu = XEmulator(keepalive_seconds=0.3)
    await emu.start()
    for endpoint in (
        "create_tweet",
        "retweet",
        "search",
        "stream_connect",
        "lookup",
        "user_tweets",
    ):
        emu.set_limit(endpoint, 100_000, 100_000)
    start, schedule = session_now()
    questions = questions_file(tmp_path / "questions.toml", [1, 2], label="Failover")
    config = service_config(tmp_path, pg_url, stream, emu, questions, schedule)
    env = {f"MHCHAT_X_{k}": v for k, v in emu.adapter_secrets("oauth1").items()}
    services = [
        Service(name, config, env, free_port(), tmp_path / f"{name}.log") for name in ("a", "b")
    ]
    figures = Figures()
    posted: list[str] = []
    stop_posting = asyncio.Event()
    rng = random.Random()

    async def participants() -> None:
        n = 0
        while not stop_posting.is_set():
            n += 1
            who = f"person{n % 25}"
            posted.append(emu.post_tweet(who, f"A1 answer {n} from {who} #MHChat"))
            await asyncio.sleep(0.12)

    async with aiohttp.ClientSession() as http:
        poster: asyncio.Task[None] | None = None
        try:
            a, b = services
            a.start()
            await a.wait_ready(http)
            # The first instance takes every duty; their names are the set to hand over.
            duties: set[str] = set()

            async def a_leads_all() -> bool:
                nonlocal duties
                body = await a.readyz(http)
                if body is None:
                    return False
                known = set(body.get("leadership", {}).get("duties", {}))
                leads = set(body.get("leadership", {}).get("leads", []))
                duties = known
                return len(known) >= 3 and leads == known

            await wait_for(a_leads_all, 30, "the first instance to lead every duty")
            b.start()
            await b.wait_ready(http)
            poster = asyncio.create_task(participants())

            q2_due = start + timedelta(minutes=2)
            kills = 0
            while True:
                await asyncio.sleep(rng.uniform(2.0, 5.0))
                # A leader whose event loop stalls past the lease (a "paused" leader) loses
                # its duties to the other instance: find who leads right now.
                found: list[Service] = []

                async def one_leader(found: list[Service] = found) -> bool:
                    found[:] = [s for s in services if s.alive and duties <= await s.leads(http)]
                    return len(found) == 1

                await wait_for(one_leader, LEASE_TIMEOUT * 4, "one instance to lead every duty")
                leader = found[0]
                standby = b if leader is a else a
                leader.kill()
                killed_at = time.monotonic()
                kills += 1

                async def standby_leads(s: Service = standby) -> bool:
                    return duties <= await s.leads(http)

                await wait_for(standby_leads, LEASE_TIMEOUT * 6, "the standby to take over")
                figures.takeovers.append(time.monotonic() - killed_at)
                leader.start()
                await leader.wait_ready(http)
                if kills >= 4 and datetime.now(UTC) > q2_due + timedelta(seconds=20):
                    break
                if kills >= 40:
                    break

            stop_posting.set()
            await poster
            conn = await asyncpg.connect(pg_url)
            try:

                async def all_stored() -> bool:
                    rows = await conn.fetch(
                        "SELECT remote_id FROM posts WHERE chat_id = 'default' AND is_own = 0"
                    )
                    return {r[0] for r in rows} >= set(posted)

                await wait_for(all_stored, 60, "every participant post to be stored")

                async def questions_settled() -> bool:
                    rows = await conn.fetch("SELECT state FROM actions WHERE purpose = 'question'")
                    return len(rows) == 2 and all(r[0] in ("sent", "unknown") for r in rows)

                await wait_for(questions_settled, 60, "both questions to be sent")
                await asyncio.sleep(2.0)
                stored = await conn.fetch(
                    "SELECT remote_id, COUNT(*) FROM posts WHERE chat_id = 'default'"
                    " GROUP BY remote_id"
                )
                ledger = await conn.fetch("SELECT key, purpose, state FROM actions ORDER BY id")
            finally:
                await conn.close()
        finally:
            stop_posting.set()
            if poster is not None:
                with contextlib.suppress(Exception):
                    await poster
            for s in services:
                s.stop()
            await emu.stop()
            with contextlib.suppress(Exception):
                nc = await nats.connect(NATS_URL)
                await nc.jetstream().delete_stream(stream)
                await nc.close()

    # Every participant post stored, once.
    counts = {str(r[0]): int(r[1]) for r in stored}
    assert set(posted) <= set(counts)
    assert all(c == 1 for c in counts.values())
    # Every question posted once (an outcome left unknown by a kill is never resent).
    texts = Counter(t["text"] for t in emu.created_tweets)
    states = {str(r[0]): str(r[2]) for r in ledger}
    for n in (1, 2):
        posted_q = sum(c for text, c in texts.items() if f"question number {n}?" in text)
        key_state = [
            st for key, st in states.items() if key.startswith("question:") and f":{n}:" in key
        ]
        assert key_state, f"Q{n} was never decided"
        assert posted_q <= 1, f"Q{n} was posted {posted_q} times"
        assert posted_q == 1 or key_state == ["unknown"], f"Q{n} missing: {key_state}"
    # No action performed twice on the platform.
    tweet_keys = Counter(
        (t["text"], (t.get("reply") or {}).get("in_reply_to_tweet_id")) for t in emu.created_tweets
    )
    assert all(c == 1 for c in tweet_keys.values()), tweet_keys.most_common(3)
    retweeted = Counter(tweet_id for _, tweet_id in emu.retweets)
    assert all(c == 1 for c in retweeted.values()), retweeted.most_common(3)
    print(
        f"\nfailover: {len(figures.takeovers)} SIGKILLs of the leader; {figures.summary()};"
        f" {len(posted)} participant posts stored once;"
        f" {len(emu.created_tweets)} posts and"
        f" {len(emu.retweets)} reposts by the host, none twice;"
        f" ledger states {dict(Counter(states.values()))}"
    )
    assert max(figures.takeovers) < LEASE_TIMEOUT * 4
