"""Sessions follow the clock time in the host's zone, across DST changes and midnight UTC,
and the scheduler expires stale items after downtime instead of bursting them."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

from mhchat.actions import Purpose
from mhchat.facilitation.questions import parse_questions
from mhchat.facilitation.schedule import Phase, Schedule
from mhchat.facilitation.scheduler import Scheduler
from mhchat.facilitation.sessions_store import ensure_session
from mhchat.ledger import Mode
from mhchat.store.db import SqliteDatabase
from mhchat.testing import FakeClock

from .conftest import add_chat, settings_from

QUESTIONS = {
    "default": {
        "topic": "Rest",
        "reminder": "#{hashtag} starts in 1 hour ({times})",
        "intro": "Welcome to #{hashtag}: {topic}",
        "questions": [
            {"n": 1, "offset_minutes": 5, "text": "How are you?"},
            {"n": 2, "offset_minutes": 15, "text": "What helps?"},
            {"n": 3, "offset_minutes": 30, "text": "Who helps?"},
            {"n": 4, "offset_minutes": 45, "text": "What would you tell a friend?"},
        ],
    }
}


def utc(year: int, month: int, day: int, hour: int, minute: int) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


class TestDaylightSaving:
    """The chat starts at 20:00 London clock time whether GMT or BST applies."""

    def test_wednesday_before_and_after_spring_change(self) -> None:
        schedule = Schedule(settings_from().schedule)
        # Clocks go forward on Sunday 29 March 2026.
        assert schedule.by_id("2026-03-25").starts_at == utc(2026, 3, 25, 20, 0)
        assert schedule.by_id("2026-04-01").starts_at == utc(2026, 4, 1, 19, 0)

    def test_wednesday_before_and_after_autumn_change(self) -> None:
        schedule = Schedule(settings_from().schedule)
        # Clocks go back on Sunday 25 October 2026.
        assert schedule.by_id("2026-10-21").starts_at == utc(2026, 10, 21, 19, 0)
        assert schedule.by_id("2026-10-28").starts_at == utc(2026, 10, 28, 20, 0)

    def test_a_chat_on_the_change_night_itself(self) -> None:
        """A Sunday 01:30 chat: the time does not exist in March and happens twice in October."""
        schedule = Schedule(
            settings_from({"schedule": {"weekday": "sunday", "time": "01:30"}}).schedule
        )
        spring = schedule.by_id("2026-03-29")
        autumn = schedule.by_id("2026-10-25")
        # 01:30 is skipped in March: it resolves with the GMT offset, i.e. 02:30 BST.
        assert spring.starts_at == utc(2026, 3, 29, 1, 30)
        # 01:30 happens twice in October: the first (BST) one is used.
        assert autumn.starts_at == utc(2026, 10, 25, 0, 30)
        assert schedule.by_id("2026-11-01").starts_at == utc(2026, 11, 1, 1, 30)

    async def test_scheduler_posts_q1_at_the_new_utc_time_after_the_change(
        self, db: SqliteDatabase
    ) -> None:
        await add_chat(db)
        clock = FakeClock(utc(2026, 4, 1, 18, 0))
        scheduler = make_scheduler(db, clock)
        await scheduler.tick()
        assert await published(db) == ["reminder:2026-04-01:x"]
        clock.set(utc(2026, 4, 1, 19, 4))
        await scheduler.tick()
        assert await published(db) == ["intro:2026-04-01:x", "reminder:2026-04-01:x"]
        clock.set(utc(2026, 4, 1, 19, 5))
        await scheduler.tick()
        assert "question:2026-04-01:1:x" in await published(db)


class TestMidnightUtc:
    """A Pacific-time chat at 20:00 starts on the next UTC day but keeps its local date."""

    async def test_session_spanning_midnight_utc(self, db: SqliteDatabase) -> None:
        await add_chat(db)
        settings = settings_from({"schedule": {"zone": "America/Los_Angeles"}})
        schedule = Schedule(settings.schedule)
        session = schedule.by_id("2026-11-25")
        assert session.starts_at == utc(2026, 11, 26, 4, 0)
        assert schedule.session_at(utc(2026, 11, 26, 4, 30)) == session
        assert session.phase(utc(2026, 11, 26, 4, 30)) is Phase.LIVE
        assert session.phase(utc(2026, 11, 26, 3, 30)) is Phase.PRE_CHAT
        assert session.phase(utc(2026, 11, 26, 5, 30)) is Phase.AFTER_HOURS

        clock = FakeClock(utc(2026, 11, 26, 4, 16))
        scheduler = make_scheduler(db, clock, settings)
        await scheduler.tick()
        keys = await published(db)
        assert "question:2026-11-25:2:x" in keys
        assert "question:2026-11-25:3:x" not in keys
        assert all(":2026-11-26:" not in k for k in keys)


class TestLateStart:
    """After downtime, items past their lateness expire (recorded with the reason)."""

    async def test_stale_questions_expire_and_only_the_current_one_goes_out(
        self, db: SqliteDatabase
    ) -> None:
        await add_chat(db)
        # Down from 19:50 to 20:46 on 25 November (GMT): Q4 (20:45) is within its 10 minutes.
        clock = FakeClock(utc(2026, 11, 25, 20, 46))
        scheduler = make_scheduler(db, clock, platforms=["x", "bluesky"])
        report = await scheduler.tick()
        states = await states_by_key(db)
        assert {k for k, s in states.items() if s == "pending"} == {
            "question:2026-11-25:4:x",
            "question:2026-11-25:4:bluesky",
        }
        expired = {k for k, s in states.items() if s == "expired"}
        assert "question:2026-11-25:1:x" in expired
        assert "question:2026-11-25:3:bluesky" in expired
        assert "reminder:2026-11-25:x" in expired
        assert len(report.expired) == 10
        details = await db_rows(
            db, "SELECT detail FROM actions WHERE key = 'question:2026-11-25:2:x'"
        )
        assert "due 31 minutes ago" in str(details[0][0])

    async def test_ticks_are_idempotent(self, db: SqliteDatabase) -> None:
        await add_chat(db)
        clock = FakeClock(utc(2026, 11, 25, 20, 16))
        scheduler = make_scheduler(db, clock)
        first = await scheduler.tick()
        second = await scheduler.tick()
        assert first.decided
        assert not second.decided
        rows = await db_rows(db, "SELECT COUNT(*) FROM actions")
        assert rows[0][0] == len(first.decided)

    async def test_a_run_loop_follows_the_fake_clock(self, db: SqliteDatabase) -> None:
        import asyncio  # noqa: PLC0415 - imported on first use

        await add_chat(db)
        clock = FakeClock(utc(2026, 11, 25, 18, 59))
        scheduler = make_scheduler(db, clock)
        task = asyncio.create_task(scheduler.run())
        try:
            for _ in range(8 * 4):  # two hours in 15 s steps would be slow; jump 4 min at a time
                await asyncio.sleep(0)
                clock.advance(240)
                for _ in range(5):
                    await asyncio.sleep(0.001)
        finally:
            task.cancel()
        states = await states_by_key(db)
        assert states["question:2026-11-25:4:x"] == "pending"
        assert "expired" not in states.values()


def make_scheduler(
    db: SqliteDatabase,
    clock: FakeClock,
    settings: object | None = None,
    platforms: list[str] | None = None,
) -> Scheduler:
    qfile, problems = parse_questions(QUESTIONS)
    assert problems == []
    return Scheduler(
        db=db,
        clock=clock,
        settings=settings or settings_from(),  # type: ignore[arg-type]
        modes={Purpose.SIGNPOSTING: Mode.APPROVE_FIRST},
        platforms=platforms or ["x"],
        questions=qfile,
        interval_seconds=15,
    )


async def db_rows(db: SqliteDatabase, sql: str) -> list[tuple[object, ...]]:
    async with db.read() as tx:
        return await tx.fetchall(sql)


async def published(db: SqliteDatabase) -> list[str]:
    return sorted(
        str(r[0]) for r in await db_rows(db, "SELECT key FROM actions WHERE state = 'pending'")
    )


async def states_by_key(db: SqliteDatabase) -> dict[str, str]:
    return {str(r[0]): str(r[1]) for r in await db_rows(db, "SELECT key, state FROM actions")}


class TestQuestionsFileEdits:
    """The host edits the questions file during the week: the next tick uses the new text."""

    async def test_an_edited_file_is_read_again_and_a_broken_one_keeps_the_last_good(
        self, db: SqliteDatabase, tmp_path: Path
    ) -> None:
        await add_chat(db)
        path = tmp_path / "questions.toml"
        path.write_text(_questions_toml("How are you?"))
        settings = settings_from({"questions": {"file": str(path)}})
        clock = FakeClock(utc(2026, 11, 25, 20, 5))
        scheduler = Scheduler(
            db=db, clock=clock, settings=settings, modes={}, platforms=["x"], interval_seconds=15
        )
        path.write_text(_questions_toml("How has your week been?"))
        os.utime(path, ns=(1, 2_000_000_000))  # a new modification time, whatever the clock
        await scheduler.tick()
        payload = await db_rows(
            db, "SELECT payload FROM actions WHERE key = 'question:2026-11-25:1:x'"
        )
        assert "How has your week been?" in str(payload[0][0])
        path.write_text("this is [not toml")
        os.utime(path, ns=(1, 3_000_000_000))
        assert scheduler.questions.default.questions[0].text == "How has your week been?"


def _questions_toml(q1: str) -> str:
    return f'[default]\n[[default.questions]]\nn = 1\noffset_minutes = 5\ntext = "{q1}"\n'


async def test_moving_the_chat_to_another_day_does_not_break_the_repost_round(
    db: SqliteDatabase,
) -> None:
    """A session row from the old weekday is still closed off by the scheduler."""
    await add_chat(db)
    old = Schedule(settings_from().schedule).by_id("2026-11-25")
    async with db.write() as tx:
        await ensure_session(tx, "default", old, zone="Europe/London", now=old.starts_at)
    thursday = settings_from({"schedule": {"weekday": "thursday"}})
    clock = FakeClock(utc(2026, 11, 25, 21, 30))
    await make_scheduler(db, clock, thursday).tick()
    rows = await db_rows(db, "SELECT fill_done_at FROM chat_sessions")
    assert rows[0][0] is not None
