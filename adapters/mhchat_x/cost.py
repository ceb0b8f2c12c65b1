"""An estimate of what X's pay-per-use pricing charges, and the host's cap on it.

Prices per https://docs.x.com/x-api/getting-started/pricing (2026). X bills each post or user
read once per UTC day (a "soft guarantee"), so the meter dedupes resource ids per day; the total
and the cap are per UTC day too, which covers a weekly one-hour chat with room to spare.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class Charge(StrEnum):
    POST_READ = "post_read"
    USER_READ = "user_read"
    OWNED_READ = "owned_read"
    POST_CREATE = "post_create"
    POST_CREATE_URL = "post_create_url"
    POST_CREATE_SUMMONED = "post_create_summoned"
    INTERACTION_CREATE = "interaction_create"
    INTERACTION_DELETE = "interaction_delete"


PRICES_MICROUSD: dict[Charge, int] = {
    Charge.POST_READ: 5_000,
    Charge.USER_READ: 10_000,
    Charge.OWNED_READ: 1_000,
    Charge.POST_CREATE: 15_000,
    Charge.POST_CREATE_URL: 200_000,
    Charge.POST_CREATE_SUMMONED: 10_000,
    Charge.INTERACTION_CREATE: 15_000,
    Charge.INTERACTION_DELETE: 10_000,
}


@dataclass(frozen=True, slots=True)
class CapReached:
    spent_microusd: int
    cap_microusd: int

    def sentence(self) -> str:
        return (
            f"the X cost cap of ${self.cap_microusd / 1e6:.2f} for today (UTC) is reached "
            f"(estimated ${self.spent_microusd / 1e6:.2f}); raise max_cost_usd to continue"
        )


class CostMeter:
    """Counts estimated spend in micro-dollars; ``charge_*`` return what was added."""

    def __init__(self, cap_usd: float | None, *, billed: bool) -> None:
        self.cap_microusd = None if cap_usd is None else round(cap_usd * 1_000_000)
        self.billed = billed
        """False on subscription tiers: nothing is charged per call, the cap does not apply."""
        self.day = ""
        self.spent_microusd = 0
        self._seen: set[str] = set()

    def _roll(self, now: datetime) -> None:
        day = now.date().isoformat()
        if day != self.day:
            self.day = day
            self.spent_microusd = 0
            self._seen.clear()

    def charge_reads(
        self, now: datetime, post_ids: Iterable[str], user_ids: Iterable[str] = ()
    ) -> int:
        self._roll(now)
        if not self.billed:
            return 0
        added = 0
        for kind, prefix, ids in (
            (Charge.POST_READ, "p", post_ids),
            (Charge.USER_READ, "u", user_ids),
        ):
            for rid in ids:
                key = f"{prefix}:{rid}"
                if key not in self._seen:
                    self._seen.add(key)
                    added += PRICES_MICROUSD[kind]
        self.spent_microusd += added
        return added

    def charge(self, now: datetime, kind: Charge, count: int = 1) -> int:
        self._roll(now)
        if not self.billed:
            return 0
        added = PRICES_MICROUSD[kind] * count
        self.spent_microusd += added
        return added

    def refuse(self, now: datetime, upcoming: Charge | None = None) -> CapReached | None:
        """A reason to refuse the next call, or None when it fits under the cap."""
        self._roll(now)
        if not self.billed or self.cap_microusd is None:
            return None
        extra = PRICES_MICROUSD[upcoming] if upcoming else 0
        if self.spent_microusd + extra > self.cap_microusd or (
            upcoming is None and self.spent_microusd >= self.cap_microusd
        ):
            return CapReached(self.spent_microusd, self.cap_microusd)
        return None

    def dump(self) -> str:
        return json.dumps(
            {"day": self.day, "spent": self.spent_microusd, "seen": sorted(self._seen)}
        )

    def load(self, text: str | None) -> None:
        if not text:
            return
        try:
            data = json.loads(text)
            self.day = str(data["day"])
            self.spent_microusd = int(data["spent"])
            self._seen = {str(s) for s in data.get("seen", [])}
        except (ValueError, KeyError, TypeError):
            return
