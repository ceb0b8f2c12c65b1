"""Rate budgets: the PDS's write points, kept locally, and what its RateLimit-* headers say.

A PDS (bsky.social) charges each account points for repo writes: a create costs 3, an update 2, a
delete 1, within 5,000 per hour and 35,000 per day. Counting them here lets the adapter refuse a
write before the PDS answers 429, and a 429 (or a header saying nothing is left) blocks that kind
of call until the reset time, so callers back off instead of spinning.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from mhchat.clock import Clock
from mhchat.errors import RateLimited
from mhchat.events import Budget

POINTS = {"create": 3, "update": 2, "delete": 1}
_HOUR = timedelta(hours=1)
_DAY = timedelta(days=1)
_DEFAULT_BACKOFF = timedelta(seconds=60)


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


class RateBudget:
    """Local points ledger plus the live header budgets, per scope (``write``, ``session``...)."""

    def __init__(self, clock: Clock, *, per_hour: int, per_day: int, reserve: int) -> None:
        self._clock = clock
        self.per_hour = per_hour
        self.per_day = per_day
        self.reserve = reserve
        self._spent: deque[tuple[datetime, int]] = deque()
        self._headers: dict[str, Budget] = {}
        self._blocked: dict[str, datetime] = {}

    # ------------------------------------------------------------------ points

    def _used(self, window: timedelta) -> int:
        cutoff = self._clock.now() - window
        return sum(points for at, points in self._spent if at > cutoff)

    def check_points(self, operation: str) -> None:
        """Raise ``RateLimited`` if ``operation`` would cross the hourly or daily allowance."""
        cost = POINTS[operation]
        now = self._clock.now()
        while self._spent and self._spent[0][0] <= now - _DAY:
            self._spent.popleft()
        for window, limit in ((_HOUR, self.per_hour), (_DAY, self.per_day)):
            if self._used(window) + cost > limit - self.reserve:
                retry_at = self._free_at(window, limit, cost)
                raise RateLimited(
                    f"the account's write points for the last {int(window.total_seconds())} s "
                    "are spent",
                    retry_at=retry_at,
                )

    def _free_at(self, window: timedelta, limit: int, cost: int) -> datetime:
        """When enough old writes leave the window for ``cost`` more points."""
        need = self._used(window) + cost - (limit - self.reserve)
        freed = 0
        for at, points in self._spent:
            if at <= self._clock.now() - window:
                continue
            freed += points
            if freed >= need:
                return at + window
        return self._clock.now() + window

    def spend(self, operation: str) -> None:
        self._spent.append((self._clock.now(), POINTS[operation]))

    # ----------------------------------------------------------------- headers

    def check_blocked(self, scope: str) -> None:
        until = self._blocked.get(scope)
        if until is not None and until > self._clock.now():
            raise RateLimited(f"Bluesky asked to wait before more {scope} calls", retry_at=until)

    def blocked_until(self, scope: str) -> datetime | None:
        until = self._blocked.get(scope)
        return until if until is not None and until > self._clock.now() else None

    def observe(self, scope: str, headers: Mapping[str, str]) -> None:
        """Record the RateLimit-* headers of an answer to a call of kind ``scope``."""
        limit = _int(headers.get("ratelimit-limit"))
        remaining = _int(headers.get("ratelimit-remaining"))
        reset = _int(headers.get("ratelimit-reset"))
        if limit is None and remaining is None:
            return
        resets_at = datetime.fromtimestamp(reset, tz=UTC) if reset is not None else None
        self._headers[scope] = Budget(limit=limit, remaining=remaining, resets_at=resets_at)
        if remaining == 0 and resets_at is not None and resets_at > self._clock.now():
            self._blocked[scope] = resets_at

    def limited(self, scope: str, retry_at: datetime | None) -> datetime:
        """Block ``scope`` after a 429; return when to try again."""
        until = retry_at if retry_at and retry_at > self._clock.now() else None
        until = until or self._clock.now() + _DEFAULT_BACKOFF
        self._blocked[scope] = until
        return until

    def budgets(self) -> tuple[tuple[str, Budget], ...]:
        now = self._clock.now()
        hour_left = self.per_hour - self._used(_HOUR)
        day_left = self.per_day - self._used(_DAY)
        local = (
            ("points_hour", Budget(limit=self.per_hour, remaining=hour_left, resets_at=None)),
            ("points_day", Budget(limit=self.per_day, remaining=day_left, resets_at=None)),
        )
        live = tuple(
            (scope, budget)
            for scope, budget in sorted(self._headers.items())
            if budget.resets_at is None or budget.resets_at > now
        )
        return local + live
