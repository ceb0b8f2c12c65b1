"""Rate budgets from X's live headers, plus the per-account write window.

Every X API v2 response carries ``x-rate-limit-limit/-remaining/-reset`` (reset in epoch
seconds); writes may also carry ``x-app-limit-24hour-*`` and ``x-user-limit-24hour-*``. A 429 can
come from the 24-hour window while the 15-minute one looks fine, so the later reset wins.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from mhchat.events import Budget

_WINDOWS = (
    ("", "x-rate-limit-"),
    (":app_24h", "x-app-limit-24hour-"),
    (":user_24h", "x-user-limit-24hour-"),
)


def _int(headers: Mapping[str, str], name: str) -> int | None:
    value = headers.get(name)
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return None


def reset_of(headers: Mapping[str, str]) -> datetime | None:
    """The latest reset among the windows that are exhausted (or any, when none says so)."""
    exhausted: list[datetime] = []
    every: list[datetime] = []
    for _, prefix in _WINDOWS:
        reset = _int(headers, prefix + "reset")
        if reset is None:
            continue
        at = datetime.fromtimestamp(reset, UTC)
        every.append(at)
        if _int(headers, prefix + "remaining") == 0:
            exhausted.append(at)
    chosen = exhausted or every
    return max(chosen) if chosen else None


class RateBook:
    """The last known budget of each endpoint (and each 24-hour window) by name."""

    def __init__(self) -> None:
        self._budgets: dict[str, Budget] = {}

    def observe(self, endpoint: str, headers: Mapping[str, str]) -> None:
        for suffix, prefix in _WINDOWS:
            limit = _int(headers, prefix + "limit")
            remaining = _int(headers, prefix + "remaining")
            reset = _int(headers, prefix + "reset")
            if limit is None and remaining is None and reset is None:
                continue
            self._budgets[endpoint + suffix] = Budget(
                limit=limit,
                remaining=remaining,
                resets_at=datetime.fromtimestamp(reset, UTC) if reset is not None else None,
            )

    def exhaust(self, endpoint: str, until: datetime) -> None:
        """Record a 429 that came without usable headers."""
        old = self._budgets.get(endpoint)
        self._budgets[endpoint] = Budget(
            limit=old.limit if old else None, remaining=0, resets_at=until
        )

    def blocked_until(self, endpoint: str, now: datetime) -> datetime | None:
        """When a known-exhausted window of ``endpoint`` reopens, if it is still closed."""
        latest: datetime | None = None
        for suffix, _ in _WINDOWS:
            budget = self._budgets.get(endpoint + suffix)
            if budget is None or budget.remaining != 0 or budget.resets_at is None:
                continue
            if budget.resets_at > now and (latest is None or budget.resets_at > latest):
                latest = budget.resets_at
        return latest

    def get(self, endpoint: str) -> Budget | None:
        return self._budgets.get(endpoint)

    def budgets(self) -> tuple[tuple[str, Budget], ...]:
        return tuple(sorted(self._budgets.items()))


class WriteWindow:
    """X's shared per-account budget: about 300 posts plus reposts per 3 hours.

    Counted locally (X sends no header for it) so the adapter stops before X refuses.
    """

    PERIOD = timedelta(hours=3)

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._times: deque[datetime] = deque()

    def _prune(self, now: datetime) -> None:
        while self._times and self._times[0] <= now - self.PERIOD:
            self._times.popleft()

    def blocked_until(self, now: datetime) -> datetime | None:
        self._prune(now)
        if len(self._times) < self.limit:
            return None
        return self._times[0] + self.PERIOD

    def record(self, now: datetime) -> None:
        self._times.append(now)

    def budget(self, now: datetime) -> Budget:
        self._prune(now)
        return Budget(
            limit=self.limit,
            remaining=max(0, self.limit - len(self._times)),
            resets_at=(self._times[0] + self.PERIOD) if self._times else None,
        )

    def dump(self) -> list[str]:
        return [t.isoformat() for t in self._times]

    def load(self, values: list[str]) -> None:
        self._times = deque(sorted(datetime.fromisoformat(v) for v in values))
