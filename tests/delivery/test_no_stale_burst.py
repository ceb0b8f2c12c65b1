"""Promise 3, no stale burst: after two hours of downtime the opening questions expire instead of
going out late, actions past their not-after time expire, and the backlog of reposts and
welcomes drains at the sender's bounded rate, not all at once (measured)."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import structlog

from mhchat import ledger
from mhchat.actions import Action, Publish, Purpose, Sent, Skipped
from mhchat.adapters import AdapterContext, ChatInfo
from mhchat.bus import Envelope, EventBus
from mhchat.controls import Controls
from mhchat.events import PlatformName, PostReceived
from mhchat.facilitation.handler import FacilitationHandler
from mhchat.facilitation.scheduler import Scheduler
from mhchat.facilitation.settings import parse_facilitation
from mhchat.ingest import IngestWorker
from mhchat.ledger import Decision
from mhchat.sender import Sender
from mhchat.store.db import SqliteDatabase
from mhchat.testing import FakeAdapter, FakeClock, MemoryState, RecordingSink, make_post

FAKE = PlatformName("fake")
# Wednesday 25 November 2026, 20:00 Europe/London (GMT) is 20:00 UTC.
START = datetime(2026, 11, 25, 20, 0, tzinfo=UTC)
MIN_INTERVAL = 0.03


class RunningClock:
    """Real elapsed time from a chosen moment: the sender's sleeps are real, so rates are."""

    def __init__(self, start: datetime) -> None:
        self._start = start
        self._t0 = time.monotonic()

    def now(self) -> datetime:
        return self._start + timedelta(seconds=time.monotonic() - self._t0)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class TimedAdapter(FakeAdapter):
    """The fake platform, noting when each action arrived."""

    def __init__(self, ctx: AdapterContext) -> None:
        super().__init__(ctx)
        self.times: list[float] = []

    async def perform(self, action: Action) -> Sent | Skipped:
        self.times.append(time.monotonic())
        return await super().perform(action)


async def pending(db: SqliteDatabase) -> int:
    async with db.read() as tx:
        row = await tx.fetchone("SELECT COUNT(*) FROM actions WHERE state = 'pending'")
    return int(row[0]) if row else 0


def questions(tmp_path: Path) -> Path:
    path = tmp_path / "questions.toml"
    lines = ["[default]", 'topic = "Rest"', 'intro = "Welcome to #{hashtag}!"']
    for n, offset in ((1, 5), (2, 15), (3, 30)):
        lines += ["[[default.questions]]", f"n = {n}", f"offset_minutes = {offset}"]
        lines += [f'text = "Question {n}?"']
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


async def test_after_two_hours_down_nothing_stale_goes_out_and_the_backlog_drains_slowly(
    db: SqliteDatabase, tmp_path: Path
) -> None:
    settings, problems = parse_facilitation(
        {"questions": {"file": str(questions(tmp_path))}, "schedule": {"lateness_minutes": 10}}
    )
    assert problems == []
    # 20:03, a few minutes into the chat: 40 first-timers answer; reposts and welcomes are
    # decided (pending), then the service goes down before sending any of them.
    worker = IngestWorker(
        bus=EventBus(),
        db=db,
        clock=FakeClock(START + timedelta(minutes=3)),
        chat_id="default",
        handlers=[FacilitationHandler(settings, modes={})],
    )
    posts = [
        make_post(f"p{i}", author=f"person{i}", created_at=START + timedelta(minutes=3))
        for i in range(40)
    ]
    await worker.process([Envelope(FAKE, [PostReceived(post=p) for p in posts], None)])
    # An action that was already stale when the service stopped (its not-after has passed).
    async with db.write() as tx:
        await ledger.record(
            tx,
            chat_id="default",
            decisions=[
                Decision(
                    action=Publish(
                        key="reminder:old",
                        platform=FAKE,
                        purpose=Purpose.REMINDER,
                        text="starts soon #MHChat",
                        not_after=START,
                    ),
                    reason="test",
                )
            ],
            modes={},
            now=START - timedelta(minutes=30),
        )

    # 22:03: back after two hours. The scheduler's first tick decides the opening sequence
    # and expires every item at once: each is far past its lateness.
    back = START + timedelta(hours=2, minutes=3)
    report = await Scheduler(
        db=db, clock=FakeClock(back), settings=settings, modes={}, platforms=["fake"]
    ).tick()
    assert sorted(report.expired) == sorted(report.decided)
    assert {k.split(":")[0] for k in report.decided} == {"intro", "question"}
    assert len(report.decided) == 4

    clock = RunningClock(back)
    async with aiohttp.ClientSession() as http:
        adapter = TimedAdapter(
            AdapterContext(
                platform=FAKE,
                chat=ChatInfo(chat_id="default", hashtag="MHChat"),
                sink=RecordingSink(),
                http=http,
                clock=clock,
                log=structlog.get_logger("test"),
                state=MemoryState(),
                settings={},
                secrets={},
            )
        )
        sender = Sender(
            platform=FAKE,
            adapter=adapter,
            db=db,
            clock=clock,
            controls=Controls(db, "default", {}),
            min_interval=MIN_INTERVAL,
            poll_seconds=0.05,
        )
        task = asyncio.create_task(sender.run())
        began = time.monotonic()
        try:
            async with asyncio.timeout(30):
                while await pending(db):  # noqa: ASYNC110 - polling the database
                    await asyncio.sleep(0.02)
        finally:
            task.cancel()
        drained = time.monotonic() - began

    assert {a.purpose for a in adapter.performed} == {Purpose.WELCOME, Purpose.REPOST}
    assert len(adapter.performed) == 80  # 40 reposts and 40 welcomes, each once
    async with db.read() as tx:
        rows = await tx.fetchall("SELECT key, state FROM actions WHERE state = 'expired'")
    assert {str(r[0]).split(":")[0] for r in rows} == {"intro", "question", "reminder"}
    # The bounded rate: consecutive sends at least min_interval apart, so no second holds
    # more than 1 / min_interval of them.
    gaps = [b - a for a, b in zip(adapter.times, adapter.times[1:], strict=False)]
    assert min(gaps) >= MIN_INTERVAL * 0.9
    window = max(sum(1 for t in adapter.times if s <= t < s + 1.0) for s in adapter.times)
    assert window <= 1 / MIN_INTERVAL + 1
    assert drained >= 79 * MIN_INTERVAL
    print(
        f"\nstale burst: 4 opening items expired after 2 h down, 1 stale reminder expired;"
        f" backlog of 80 drained in {drained:.2f} s (at most {window} sends in any second,"
        f" smallest gap {min(gaps) * 1000:.0f} ms)"
    )
