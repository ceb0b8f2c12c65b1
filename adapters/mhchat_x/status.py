"""The adapter's health board: open problems by area, counters, and change notification."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from mhchat.events import HealthStatus

_SEVERITY = {
    HealthStatus.OK: 0,
    HealthStatus.DEGRADED: 1,
    HealthStatus.RATE_LIMITED: 2,
    HealthStatus.DOWN: 3,
    HealthStatus.AUTH_EXPIRED: 4,
    HealthStatus.STOPPED: 5,
}


class HealthBoard:
    """Problems are keyed by area (``auth:app``, ``stream``, ``cost``, ...); the worst wins."""

    def __init__(self, on_change: Callable[[], None] | None = None) -> None:
        self.counters: Counter[str] = Counter()
        self.notes: list[str] = []
        """Standing remarks shown in the detail even when healthy (what the tier cannot do)."""
        self._problems: dict[str, tuple[HealthStatus, str]] = {}
        self._on_change = on_change
        self.running = False
        self._last = self.status()

    def set(self, area: str, status: HealthStatus, detail: str) -> None:
        self._problems[area] = (status, detail)
        self._changed()

    def clear(self, area: str) -> None:
        if self._problems.pop(area, None) is not None:
            self._changed()

    def has(self, area: str) -> bool:
        return area in self._problems

    def bump(self, name: str, amount: int = 1) -> None:
        self.counters[name] += amount

    def status(self) -> HealthStatus:
        if not self.running:
            return HealthStatus.STOPPED
        worst = HealthStatus.OK
        for status, _ in self._problems.values():
            if _SEVERITY[status] > _SEVERITY[worst]:
                worst = status
        return worst

    def detail(self) -> str:
        ordered = sorted(self._problems.values(), key=lambda p: -_SEVERITY[p[0]])
        parts = [d for _, d in ordered] + self.notes
        return "; ".join(parts)

    def _changed(self) -> None:
        now = self.status()
        if now != self._last:
            self._last = now
            if self._on_change is not None:
                self._on_change()

    def set_running(self, running: bool) -> None:
        self.running = running
        self._changed()
