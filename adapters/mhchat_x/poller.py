"""Search backfill (gap filling after downtime) and the recent-search polling loop."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import structlog

from mhchat.clock import Clock
from mhchat.errors import AuthExpired, PermanentFailure, RateLimited, TransientFailure
from mhchat.events import Event, HealthStatus
from mhchat_x.cost import CostMeter
from mhchat_x.intake import Intake
from mhchat_x.ratelimit import RateBook
from mhchat_x.search import CostCapped, Searcher
from mhchat_x.status import HealthBoard


async def backfill(
    intake: Intake,
    searcher: Searcher,
    query: str,
    clock: Clock,
    *,
    since_id: str | None = None,
    start_time: datetime | None = None,
) -> int:
    """Search the gap and publish it; the cursor moves only with the last page."""
    intake.hold()
    pending: list[Event] = []
    newest: str | None = None
    count = 0
    try:
        async for page in searcher.pages(query, since_id=since_id, start_time=start_time):
            if pending:
                await intake.emit_uncursored(pending, clock.now())
            pending = page.events
            newest = page.newest_id
            count += len(page.events)
    except BaseException:
        intake.abandon()
        raise
    await intake.release(newest, pending, clock.now())
    return count


class SearchPoller:
    """Polls recent search at an interval the endpoint's rate limit allows."""

    def __init__(
        self,
        *,
        intake: Intake,
        searcher: Searcher,
        query: Callable[[], str],
        clock: Clock,
        board: HealthBoard,
        ratebook: RateBook,
        cost: CostMeter,
        log: structlog.typing.FilteringBoundLogger,
        base_interval: float,
        first_start: datetime | None,
    ) -> None:
        self.intake = intake
        self.searcher = searcher
        self.query = query
        self.clock = clock
        self.board = board
        self.ratebook = ratebook
        self.cost = cost
        self.log = log
        self.base_interval = base_interval
        self.first_start = first_start
        self.failures = 0

    def interval(self) -> float:
        """The base interval, stretched so the remaining budget lasts until its reset."""
        budget = self.ratebook.get("search")
        interval = self.base_interval
        if budget and budget.remaining is not None and budget.resets_at is not None:
            left = (budget.resets_at - self.clock.now()).total_seconds()
            if left > 0:
                interval = max(interval, left / max(budget.remaining, 1))
        return interval

    async def poll_once(self) -> int:
        since = self.intake.since_id
        start = None if since else self.first_start
        count = await backfill(
            self.intake, self.searcher, self.query(), self.clock, since_id=since, start_time=start
        )
        self.board.bump("polls")
        return count

    async def run(self) -> None:
        while True:
            delay = await self.step()
            if delay is None:
                return
            await self.clock.sleep(delay)

    async def step(self) -> float | None:
        """One poll; returns how long to wait before the next, or None to stop for good."""
        now = self.clock.now()
        try:
            await self.poll_once()
        except CostCapped:
            reason = self.cost.refuse(now)
            self.board.set("cost", HealthStatus.DEGRADED, reason.sentence() if reason else "")
            tomorrow = (now + timedelta(days=1)).replace(hour=0, minute=0, second=1)
            return max(self.base_interval, (tomorrow - now).total_seconds())
        except RateLimited as exc:
            retry_at = exc.retry_at or now + timedelta(seconds=60)
            self.board.set(
                "rate:search",
                HealthStatus.RATE_LIMITED,
                f"X search rate limit reached; polling resumes at {retry_at:%H:%M:%S} UTC",
            )
            return max(0.0, (retry_at - now).total_seconds()) + 0.5
        except AuthExpired:
            self.log.warning("x_search_stopped_auth")
            return None
        except (TransientFailure, PermanentFailure) as exc:
            self.failures += 1
            status = HealthStatus.DOWN if self.failures >= 5 else HealthStatus.DEGRADED
            self.board.set("search", status, f"X search failing ({type(exc).__name__})")
            self.log.info("x_search_failed", error=type(exc).__name__, failures=self.failures)
            return min(self.base_interval * (2.0 ** min(self.failures, 6)), 900.0)
        self.failures = 0
        self.board.clear("search")
        self.board.clear("rate:search")
        self.board.clear("cost")
        return self.interval()
