"""Promise 4, no tight loops: a 429 waits for its reset, errors back off with jitter for a bounded
number of attempts, and the service never answers its own posts or a bot's."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest
import structlog

from mhchat import ledger
from mhchat.actions import Purpose, Reply, Repost
from mhchat.adapters import AdapterContext, ChatInfo
from mhchat.bus import Envelope, EventBus
from mhchat.controls import Controls
from mhchat.errors import RateLimited, TransientFailure
from mhchat.events import Author, PlatformName, Post, PostReceived, PostRef, RemoteId
from mhchat.facilitation.handler import FacilitationHandler
from mhchat.facilitation.settings import parse_facilitation
from mhchat.ingest import IngestWorker
from mhchat.ledger import Decision
from mhchat.sender import Sender
from mhchat.store.db import SqliteDatabase
from mhchat.testing import FakeAdapter, FakeClock, MemoryState, RecordingSink

FAKE = PlatformName("fake")
START = datetime(2026, 11, 25, 20, 0, tzinfo=UTC)


@pytest.fixture
async def adapter() -> AsyncIterator[FakeAdapter]:
    async with aiohttp.ClientSession() as http:
        yield FakeAdapter(
            AdapterContext(
                platform=FAKE,
                chat=ChatInfo(chat_id="default", hashtag="MHChat"),
                sink=RecordingSink(),
                http=http,
                clock=FakeClock(),
                log=structlog.get_logger("test"),
                state=MemoryState(),
                settings={},
                secrets={},
            )
        )


async def decide(db: SqliteDatabase, clock: FakeClock, *ns: int) -> None:
    async with db.write() as tx:
        await ledger.record(
            tx,
            chat_id="default",
            decisions=[
                Decision(
                    action=Repost(
                        key=f"repost:fake:{n}",
                        platform=FAKE,
                        purpose=Purpose.REPOST,
                        target=PostRef(remote_id=RemoteId(str(n))),
                    ),
                    reason="test",
                )
                for n in ns
            ],
            modes={},
            now=clock.now(),
        )


def sender_for(db: SqliteDatabase, clock: FakeClock, adapter: FakeAdapter) -> Sender:
    return Sender(
        platform=FAKE,
        adapter=adapter,
        db=db,
        clock=clock,
        controls=Controls(db, "default", {}),
        min_interval=0.0,
        poll_seconds=0.01,
    )


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)
    await asyncio.sleep(0.02)


async def test_a_rate_limit_waits_for_its_reset(db: SqliteDatabase, adapter: FakeAdapter) -> None:
    clock = FakeClock(START)
    await decide(db, clock, 1, 2)
    reset = START + timedelta(seconds=60)
    adapter.fail_next(RateLimited("429 Too Many Requests", retry_at=reset))
    sender = sender_for(db, clock, adapter)
    task = asyncio.create_task(sender.run())
    try:
        await settle()
        # Until the reset (plus up to 2 s of jitter) nothing is tried, however long we wait.
        for _ in range(11):
            clock.advance(5)
            await settle()
            assert clock.now() < reset
            assert adapter.performed == []
        assert sender.stats.paused_until is not None
        assert reset <= sender.stats.paused_until <= reset + timedelta(seconds=2)
        for _ in range(10):
            clock.advance(1)
            await settle()
        assert [a.key for a in adapter.performed] == ["repost:fake:1", "repost:fake:2"]
    finally:
        task.cancel()


async def test_errors_back_off_with_jitter_and_give_up(
    db: SqliteDatabase, adapter: FakeAdapter
) -> None:
    clock = FakeClock(START)
    sender = sender_for(db, clock, adapter)
    for _ in range(10):
        adapter.fail_next(TransientFailure("503 Service Unavailable"))
    waits: dict[str, list[float]] = {}
    for n in (1, 2):
        key = f"repost:fake:{n}"
        await decide(db, clock, n)
        waits[key] = []
        while await pending(db):
            assert await sender.step()
            async with db.read() as tx:
                row = await tx.fetchone(
                    "SELECT state, not_before FROM actions WHERE key = ?", (key,)
                )
            assert row is not None
            if str(row[0]) == "pending":
                due = datetime.fromisoformat(str(row[1]))
                waits[key].append((due - clock.now()).total_seconds())
                assert not await sender.step()  # nothing to do before the backoff is over
                clock.set(due)
    async with db.read() as tx:
        rows = await tx.fetchall("SELECT key, state, attempts FROM actions ORDER BY key")
    # Bounded: five attempts each, then failed for a person to see.
    assert [(str(k), str(s), int(a)) for k, s, a in rows] == [
        ("repost:fake:1", "failed", 5),
        ("repost:fake:2", "failed", 5),
    ]
    for gaps in waits.values():
        # Exponential: each wait within [2^n / 2, 2^n] for attempt n = 1..4.
        assert len(gaps) == 4
        for n, gap in enumerate(gaps, start=1):
            assert 2**n * 0.5 <= gap <= 2**n
    # Jittered: two actions failing alike do not retry in lockstep.
    assert waits["repost:fake:1"] != waits["repost:fake:2"]
    assert adapter.performed == []


async def pending(db: SqliteDatabase) -> int:
    async with db.read() as tx:
        row = await tx.fetchone("SELECT COUNT(*) FROM actions WHERE state = 'pending'")
    return int(row[0]) if row else 0


def post(
    platform: str,
    remote_id: str,
    author: str,
    text: str,
    *,
    is_own: bool = False,
    is_bot: bool = False,
    parent: str | None = None,
) -> Post:
    name = PlatformName(platform)
    return Post(
        platform=name,
        remote_id=RemoteId(remote_id),
        author=Author(platform=name, author_id=f"id-{author}", handle=author),
        text=text,
        created_at=START + timedelta(minutes=6),
        reply_parent=PostRef(remote_id=RemoteId(parent)) if parent else None,
        reply_root=PostRef(remote_id=RemoteId(parent)) if parent else None,
        hashtags=("mhchat",),
        mentions_host=True,
        is_own=is_own,
        is_bot=is_bot,
    )


async def test_our_own_questions_and_bots_are_never_answered_or_amplified(
    db: SqliteDatabase,
) -> None:
    """Each platform echoes our own question back (stream, firehose, webhook), a bot answers
    it, and the bot answers the bot: no reply, no repost, no welcome for any of them."""
    settings, problems = parse_facilitation({})
    assert problems == []
    worker = IngestWorker(
        bus=EventBus(),
        db=db,
        clock=FakeClock(START + timedelta(minutes=6)),
        chat_id="default",
        handlers=[FacilitationHandler(settings, modes={})],
    )
    events = []
    for platform in ("x", "bluesky", "facebook"):
        q = f"{platform}-q1"
        events += [
            post(platform, q, "host", "Q1: How are you? #MHChat", is_own=True),
            post(
                platform,
                f"{platform}-b1",
                "helperbot",
                "A1 I am a bot #MHChat",
                is_bot=True,
                parent=q,
            ),
            post(
                platform,
                f"{platform}-b2",
                "otherbot",
                "A1 me too #MHChat",
                is_bot=True,
                parent=f"{platform}-b1",
            ),
            post(
                platform,
                f"{platform}-own-reply",
                "host",
                "Welcome! #MHChat",
                is_own=True,
                parent=f"{platform}-b1",
            ),
        ]
    for p in events:
        await worker.process([Envelope(p.platform, [PostReceived(post=p)], None)])
    async with db.read() as tx:
        rows = await tx.fetchall("SELECT payload FROM actions")
    from mhchat.codec import action_from_json  # noqa: PLC0415

    actions = [action_from_json(str(r[0])) for r in rows]
    targets = {
        a.parent.remote_id if isinstance(a, Reply) else a.target.remote_id
        for a in actions
        if isinstance(a, Reply | Repost)
    }
    assert targets == set()
    async with db.read() as tx:
        notes = await tx.fetchall("SELECT remote_id, note FROM posts WHERE is_bot = 1")
    assert all("automated" in str(n) for _, n in notes)
    assert len(notes) == 6
