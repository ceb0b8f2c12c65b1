"""Time as a port: every "now" in mhchat comes from a Clock so tests can control it."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    """Source of aware UTC time and of waiting."""

    def now(self) -> datetime:
        """Return the current time as an aware UTC datetime."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait for ``seconds`` of this clock's time."""
        ...


class SystemClock:
    """The real clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


def ensure_utc(value: datetime) -> datetime:
    """Reject naive datetimes and normalise aware ones to UTC."""
    if value.tzinfo is None:
        raise ValueError("naive datetime: mhchat only handles aware times")
    return value.astimezone(UTC)


EARLIEST_POST = datetime(2004, 1, 1, tzinfo=UTC)
"""Older than the first post on any platform mhchat reads (Facebook, 2004)."""
LATEST_POST = datetime(2200, 1, 1, tzinfo=UTC)


def plausible_post_time(value: datetime) -> bool:
    """Whether a platform's (or a poster's) claimed time can be a post's.

    A time the payload claims is data, not truth: a Bluesky record's ``createdAt`` is whatever
    its author wrote, and a year such as 9999 leaves no room for the date arithmetic of
    schedules and retention. Adapters use their own receipt time instead.
    """
    return EARLIEST_POST <= value < LATEST_POST
