"""The session clock: the opening sequence goes out on time, stale items expire, and after the
live hour what is left of the repost budget is shared out fairly.

``tick`` is idempotent (ledger keys ``question:<session>:<n>:<platform>`` and friends), so it
can run every few seconds, after a restart, or on two machines, without posting twice. An item
decided later than its lateness allows (the service was down at 20:15) is recorded and expired
at once, with the reason, instead of going out late: no burst of old questions after downtime.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import structlog

from mhchat.actions import Publish, Purpose
from mhchat.clock import Clock
from mhchat.events import PlatformName
from mhchat.facilitation.formatting import fit
from mhchat.facilitation.handler import repost_decision
from mhchat.facilitation.questions import (
    Item,
    QuestionsFile,
    QuestionsSource,
    audience_times,
    session_items,
)
from mhchat.facilitation.reposts import Candidate, fill_round, reason_for
from mhchat.facilitation.schedule import Schedule, Session
from mhchat.facilitation.sessions_store import ensure_session
from mhchat.facilitation.settings import FacilitationSettings
from mhchat.ledger import Decision, Mode, State, record, transition
from mhchat.store.db import Database, Tx

log = structlog.get_logger("mhchat.facilitation.scheduler")

PURPOSES = {"reminder": Purpose.REMINDER, "intro": Purpose.INTRO, "question": Purpose.QUESTION}


@dataclass(slots=True)
class TickReport:
    decided: list[str] = field(default_factory=list)
    expired: list[str] = field(default_factory=list)
    filled: int = 0
    flags_purged: int = 0


class Scheduler:
    def __init__(
        self,
        *,
        db: Database,
        clock: Clock,
        settings: FacilitationSettings,
        modes: dict[Purpose, Mode],
        platforms: Sequence[str],
        questions: QuestionsFile | None = None,
        interval_seconds: float = 15.0,
        on_decided: Callable[[], None] | None = None,
    ) -> None:
        self.db = db
        self.clock = clock
        self.settings = settings
        self.schedule = Schedule(settings.schedule)
        self.modes = modes
        self.platforms = list(platforms)
        self._fixed = questions
        self._source = (
            None
            if questions is not None
            else QuestionsSource(settings.questions.file, on_problem=self._questions_problem)
        )
        self.interval = interval_seconds
        self.on_decided = on_decided

    @property
    def questions(self) -> QuestionsFile:
        if self._fixed is not None:
            return self._fixed
        assert self._source is not None
        return self._source.current()

    def _questions_problem(self, problems: list[str]) -> None:
        # Problems name sections and settings, never a question's text.
        log.warning("questions_file_invalid_keeping_last_good", problems=len(problems))

    async def run(self) -> None:
        """Tick until cancelled; a failing tick is logged and retried at the next interval."""
        while True:
            try:
                await self.tick()
            except Exception as exc:
                log.exception("scheduler_tick_failed", error_type=type(exc).__name__)
            await self.clock.sleep(self.interval)

    async def tick(self) -> TickReport:
        now = self.clock.now()
        report = TickReport()
        session = self.schedule.next_session(now)
        async with self.db.write() as tx:
            plan = self.questions.plan_for(session.session_id)
            if now >= session.opens_at:
                await ensure_session(
                    tx,
                    self.settings.chat_id,
                    session,
                    zone=self.settings.schedule.zone,
                    now=now,
                    topic=plan.topic,
                )
                await self._questions_rows(tx, session, plan_items := self._items(session), now)
                await self._publish_due(tx, session, plan_items, now, report)
            await self._fill_finished(tx, now, report)
            report.flags_purged = await tx.execute(
                "DELETE FROM safety_flags WHERE chat_id = ? AND expires_at <= ?",
                (self.settings.chat_id, now.isoformat()),
            )
        if (report.decided or report.filled) and self.on_decided is not None:
            self.on_decided()
        if report.decided or report.expired or report.filled:
            log.info(
                "scheduler_tick",
                decided=len(report.decided),
                expired=len(report.expired),
                filled=report.filled,
            )
        return report

    def _items(self, session: Session) -> list[Item]:
        plan = self.questions.plan_for(session.session_id)
        return session_items(
            plan,
            session,
            hashtag=self.settings.hashtag,
            zone=self.settings.schedule.zone,
            reminder_at=session.reminder_at,
        )

    async def _questions_rows(
        self, tx: Tx, session: Session, items: list[Item], now: datetime
    ) -> None:
        await tx.executemany(
            "INSERT INTO session_questions (chat_id, session_id, n, text, scheduled_at) VALUES"
            " (?, ?, ?, ?, ?)"
            " ON CONFLICT (chat_id, session_id, n) DO NOTHING",
            [
                (self.settings.chat_id, session.session_id, i.n, i.text, i.at.isoformat())
                for i in items
                if i.kind == "question"
            ],
        )

    async def _publish_due(
        self, tx: Tx, session: Session, items: list[Item], now: datetime, report: TickReport
    ) -> None:
        lateness = timedelta(minutes=self.settings.schedule.lateness_minutes)
        zone = self.settings.schedule.zone
        decisions: list[Decision] = []
        for item in items:
            if item.at > now:
                continue
            label = f"Q{item.n}" if item.kind == "question" else item.kind
            for platform in self.platforms:
                decisions.append(
                    Decision(
                        action=Publish(
                            key=item.key(session.session_id, platform),
                            platform=PlatformName(platform),
                            purpose=PURPOSES[item.kind],
                            text=fit(item.text, self.settings.hashtag, platform),
                            not_after=item.at + lateness,
                        ),
                        reason=(
                            f"{label} of session {session.session_id},"
                            f" due {audience_times(item.at, zone)}"
                        ),
                    )
                )
        if not decisions:
            return
        new = await record(
            tx, chat_id=self.settings.chat_id, decisions=decisions, modes=self.modes, now=now
        )
        report.decided.extend(new)
        fresh = set(new)
        for decision in decisions:
            deadline = decision.action.not_after
            if decision.action.key not in fresh or deadline is None or deadline >= now:
                continue
            row = await tx.fetchone(
                "SELECT id FROM actions WHERE chat_id = ? AND key = ?",
                (self.settings.chat_id, decision.action.key),
            )
            if row is None:
                continue
            late = int((now - (deadline - lateness)).total_seconds() // 60)
            moved = await transition(
                tx,
                int(row[0]),
                to=State.EXPIRED,
                now=now,
                detail=(
                    f"not sent: it was due {late} minutes ago, more than the"
                    f" {self.settings.schedule.lateness_minutes}-minute lateness allowed"
                    " (the service was not running)"
                ),
                expect=(State.PENDING, State.AWAITING_APPROVAL),
            )
            if moved:
                report.expired.append(decision.action.key)

    async def _fill_finished(self, tx: Tx, now: datetime, report: TickReport) -> None:
        """Second round of fair reposts for sessions whose live hour is over."""
        rows = await tx.fetchall(
            "SELECT session_id, starts_at, ends_at, closes_at FROM chat_sessions"
            " WHERE chat_id = ? AND fill_done_at IS NULL AND ends_at <= ?",
            (self.settings.chat_id, now.isoformat()),
        )
        for row in rows:
            # Built from the stored row, not the schedule: the host may have moved the chat
            # to another weekday since.
            session = _stored_session(row)
            if (
                self.settings.reposts.enabled
                and self.settings.reposts.second_round
                and now < session.closes_at
            ):
                report.filled += await self._fill(tx, session, now)
            await tx.execute(
                "UPDATE chat_sessions SET fill_done_at = ? WHERE chat_id = ? AND session_id = ?",
                (now.isoformat(), self.settings.chat_id, session.session_id),
            )

    async def _fill(self, tx: Tx, session: Session, now: datetime) -> int:
        chat_id = self.settings.chat_id
        rows = await tx.fetchall(
            "SELECT p.platform, p.remote_id, p.version, p.author_id, p.created_at, p.question_n,"
            " pa.first_post_id FROM posts p JOIN participants pa ON pa.chat_id = p.chat_id"
            " AND pa.platform = p.platform AND pa.author_id = p.author_id"
            " WHERE p.chat_id = ? AND p.session_id = ? AND p.is_own = 0 AND p.is_bot = 0"
            " AND p.author_checked = 1 AND p.triage = 'ok' AND pa.opted_out = 0"
            " AND pa.blocked = 0 AND NOT EXISTS"
            " (SELECT 1 FROM session_reposts r WHERE r.chat_id = p.chat_id"
            " AND r.platform = p.platform AND r.remote_id = p.remote_id)",
            (chat_id, session.session_id),
        )
        blocked = self.settings.safety.blocklist
        by_platform: dict[str, list[Candidate]] = defaultdict(list)
        for r in rows:
            author = (str(r[0]), str(r[3]))
            if author in blocked:
                continue
            by_platform[author[0]].append(
                Candidate(
                    platform=author[0],
                    remote_id=str(r[1]),
                    version=None if r[2] is None else str(r[2]),
                    author=author,
                    created_at=datetime.fromisoformat(str(r[4])),
                    is_answer=r[5] is not None,
                    is_first_post=r[6] is not None and str(r[6]) == str(r[1]),
                    session_id=session.session_id,
                )
            )
        total = 0
        decisions: list[Decision] = []
        for platform, candidates in by_platform.items():
            budget = self.settings.reposts.budget.for_platform(platform)
            tallies = await tx.fetchall(
                "SELECT author_id, COUNT(*) FROM session_reposts"
                " WHERE chat_id = ? AND session_id = ? AND platform = ? GROUP BY author_id",
                (chat_id, session.session_id, platform),
            )
            counts = {(platform, str(t[0])): int(t[1]) for t in tallies}
            used = sum(counts.values())
            chosen = fill_round(candidates, counts, budget - used)
            await tx.executemany(
                "INSERT INTO session_reposts (chat_id, session_id, platform, author_id,"
                " remote_id, round, decided_at) VALUES (?, ?, ?, ?, ?, 2, ?)"
                " ON CONFLICT (chat_id, platform, remote_id) DO NOTHING",
                [
                    (
                        chat_id,
                        session.session_id,
                        platform,
                        c.author[1],
                        c.remote_id,
                        now.isoformat(),
                    )
                    for c in chosen
                ],
            )
            decisions.extend(
                repost_decision(c, session, reason_for(c, 2, used + i, budget))
                for i, c in enumerate(chosen)
            )
            total += len(chosen)
        if decisions:
            await record(tx, chat_id=chat_id, decisions=decisions, modes=self.modes, now=now)
        return total


def _stored_session(row: tuple[object, ...]) -> Session:
    starts = datetime.fromisoformat(str(row[1]))
    return Session(
        session_id=str(row[0]),
        local_date=date.fromisoformat(str(row[0])),
        starts_at=starts,
        ends_at=datetime.fromisoformat(str(row[2])),
        opens_at=starts,
        closes_at=datetime.fromisoformat(str(row[3])),
        reminder_at=starts,
    )
