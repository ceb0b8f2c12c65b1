"""The weekly chat session: when it starts (clock time in the host's zone), its phases.

A session is named by its local start date ("2026-11-25"), so it keeps its name whatever the
UTC date is (a Pacific-time chat at 20:00 starts on the next UTC day). Start times are built
from the local date and the clock time each week, so they follow daylight saving time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum

from mhchat.clock import ensure_utc, plausible_post_time
from mhchat.facilitation.settings import ScheduleSettings


class Phase(StrEnum):
    PRE_CHAT = "pre_chat"
    LIVE = "live"
    AFTER_HOURS = "after_hours"
    IDLE = "idle"


@dataclass(frozen=True, slots=True, kw_only=True)
class Session:
    session_id: str
    local_date: date
    starts_at: datetime
    ends_at: datetime
    opens_at: datetime
    """Start of the pre-chat phase."""
    closes_at: datetime
    """End of the after-hours phase: posts later than this belong to no session."""
    reminder_at: datetime

    def phase(self, when: datetime) -> Phase:
        if self.opens_at <= when < self.starts_at:
            return Phase.PRE_CHAT
        if self.starts_at <= when < self.ends_at:
            return Phase.LIVE
        if self.ends_at <= when < self.closes_at:
            return Phase.AFTER_HOURS
        return Phase.IDLE


class Schedule:
    """Weekly recurrence in a zone."""

    def __init__(self, settings: ScheduleSettings) -> None:
        self.settings = settings
        self.tz = settings.tz
        # Every post asks for its session; building one (zone lookups) cost ~50 us a post.
        self._sessions: dict[date, Session] = {}
        self._near: dict[date, list[Session]] = {}

    def session_on(self, local_date: date) -> Session:
        found = self._sessions.get(local_date)
        if found is None:
            found = self._sessions[local_date] = self._build(local_date)
        return found

    def _build(self, local_date: date) -> Session:
        s = self.settings
        # Wall-clock time on that local date; zoneinfo resolves the UTC offset for that day.
        starts = datetime.combine(local_date, s.start, tzinfo=self.tz).astimezone(UTC)
        ends = starts + timedelta(minutes=s.length_minutes)
        return Session(
            session_id=local_date.isoformat(),
            local_date=local_date,
            starts_at=starts,
            ends_at=ends,
            opens_at=starts
            - timedelta(minutes=max(s.pre_chat_minutes, s.reminder_minutes_before)),
            closes_at=ends + timedelta(minutes=s.after_hours_minutes),
            reminder_at=starts - timedelta(minutes=s.reminder_minutes_before),
        )

    def by_id(self, session_id: str) -> Session:
        """The session named by its local date; raises ValueError for a wrong weekday."""
        day = date.fromisoformat(session_id)
        if day.weekday() != self.settings.weekday:
            raise ValueError(f"{session_id} is not a chat day")
        return self.session_on(day)

    def _around(self, when: datetime) -> list[Session]:
        local = ensure_utc(when).astimezone(self.tz).date()
        found = self._near.get(local)
        if found is None:
            days = (local + timedelta(days=offset) for offset in range(-8, 9))
            found = [self.session_on(d) for d in days if d.weekday() == self.settings.weekday]
            self._near[local] = found
        return found

    def session_at(self, when: datetime) -> Session | None:
        """The session whose window (pre-chat to end of after-hours) contains ``when``."""
        utc = ensure_utc(when)
        if not plausible_post_time(utc):
            return None  # no session near the ends of the calendar (nor room to look for one)
        for session in self._around(utc):
            if session.opens_at <= utc < session.closes_at:
                return session
        return None

    def next_session(self, when: datetime) -> Session:
        """The session that is open at ``when``, or else the next one to open."""
        utc = ensure_utc(when)
        for session in self._around(utc):
            if utc < session.closes_at:
                return session
        raise AssertionError("a weekly schedule always has a session within 8 days")

    def previous_session(self, when: datetime) -> Session:
        """The most recent session that has started by ``when``."""
        utc = ensure_utc(when)
        started = [s for s in self._around(utc) if s.starts_at <= utc]
        return started[-1]
