"""One sender per adapter: takes pending actions from the ledger in order and performs them.

The ledger row moves to ``sending`` (committed) before the platform call, so a crash during
the call is visible at start-up as ``sending`` and becomes ``unknown``: checked against the
platform where the adapter can, otherwise shown to the facilitator, never blindly retried.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import structlog

from mhchat import ledger
from mhchat.actions import Sent, Skipped
from mhchat.adapters import Adapter, OutcomeCheckable
from mhchat.clock import Clock
from mhchat.controls import Controls
from mhchat.errors import (
    AuthExpired,
    NotAllowed,
    OutcomeUnknown,
    PermanentFailure,
    RateLimited,
    TransientFailure,
    Unsupported,
)
from mhchat.ledger import LedgerRow, State
from mhchat.store.db import Database, Tx

log = structlog.get_logger("mhchat.sender")


Fence = Callable[[Tx], Awaitable[bool]]
"""Checked in the transaction that moves an action to ``sending``: is this process still the
platform's leader? (``mhchat.leases``.) A paused old leader's step is rolled back."""


class SenderFenced(Exception):
    """Another process took over this platform's sending; this sender must stop."""


@dataclass(slots=True)
class SenderStats:
    sent: int = 0
    skipped: int = 0
    failed: int = 0
    unknown: int = 0
    expired: int = 0
    retried: int = 0
    paused_until: datetime | None = None
    last_error: str = ""
    by_purpose: dict[str, int] = field(default_factory=dict)


class Sender:
    """Performs one platform's actions, one at a time, at a bounded rate."""

    def __init__(
        self,
        *,
        platform: str,
        adapter: Adapter,
        db: Database,
        clock: Clock,
        controls: Controls,
        min_interval: float = 1.0,
        poll_seconds: float = 0.5,
        max_attempts: int = 5,
        perform_timeout: float = 60.0,
        chat_id: str | None = None,
        fence: Fence | None = None,
    ) -> None:
        self.platform = platform
        self.adapter = adapter
        self.db = db
        self.clock = clock
        self.controls = controls
        self.min_interval = min_interval
        self.poll_seconds = poll_seconds
        self.max_attempts = max_attempts
        self.perform_timeout = perform_timeout
        self.chat_id = chat_id
        self.fence = fence
        self.stats = SenderStats()
        self.wakeup = asyncio.Event()
        self._log = log.bind(platform=platform)

    def poke(self) -> None:
        """New work may be waiting."""
        self.wakeup.set()

    async def _idle(self, seconds: float) -> None:
        self.wakeup.clear()
        try:
            async with asyncio.timeout(seconds):
                await self.wakeup.wait()
        except TimeoutError:
            return

    async def run(self) -> None:
        while True:
            if self.controls.killed:
                await self._idle(self.poll_seconds)
                continue
            paused = self.stats.paused_until
            now = self.clock.now()
            if paused is not None and now < paused:
                await self.clock.sleep(min((paused - now).total_seconds(), self.poll_seconds * 4))
                continue
            try:
                did_work = await self.step()
            except SenderFenced:
                self._log.warning("sender_fenced")
                return
            if did_work:
                if self.min_interval:
                    await self.clock.sleep(self.min_interval)
            else:
                await self._idle(self.poll_seconds)

    async def step(self) -> bool:
        """Take and perform at most one action; return whether there was one."""
        now = self.clock.now()
        async with self.db.write() as tx:
            row = await ledger.next_pending(tx, self.platform, now=now, chat_id=self.chat_id)
            if row is None:
                return False
            if self.fence is not None and not await self.fence(tx):
                raise SenderFenced(f"{self.platform} sending was taken over")
            deadline = row.action.not_after
            if deadline is not None and now > deadline:
                await ledger.transition(
                    tx, row.id, to=State.EXPIRED, now=now, detail="past its not-after time"
                )
                self.stats.expired += 1
                return True
            await ledger.transition(
                tx, row.id, to=State.SENDING, now=now, expect=[State.PENDING], count_attempt=True
            )
        await self._perform(row)
        return True

    async def _perform(self, row: LedgerRow) -> None:
        bound = self._log.bind(action_key=row.key)
        try:
            async with asyncio.timeout(self.perform_timeout):
                result = await self.adapter.perform(row.action)
        except RateLimited as exc:
            retry_at = exc.retry_at or self.clock.now() + timedelta(seconds=60)
            jitter = timedelta(seconds=random.uniform(0, 2))  # noqa: S311 - jitter, not crypto
            self.stats.paused_until = retry_at + jitter
            await self._finish(row, State.PENDING, "rate limited; waiting for the reset")
            bound.warning("rate_limited", retry_at=retry_at.isoformat())
        except AuthExpired:
            self.stats.paused_until = self.clock.now() + timedelta(seconds=60)
            await self._finish(row, State.PENDING, "credentials expired; a host must renew them")
            bound.error("auth_expired")
        except NotAllowed as exc:
            await self._finish(row, State.SKIPPED, f"the platform does not allow this: {exc}")
            self.stats.skipped += 1
        except (Unsupported, PermanentFailure) as exc:
            await self._finish(row, State.FAILED, f"{type(exc).__name__}: {exc}")
            self.stats.failed += 1
            bound.warning("action_failed", error_type=type(exc).__name__)
        except TransientFailure as exc:
            await self._retry_or_fail(row, exc)
        except (OutcomeUnknown, TimeoutError) as exc:
            await self._unknown(row, f"{type(exc).__name__}: {str(exc) or 'no answer in time'}")
        except Exception as exc:  # noqa: BLE001 - unknown errors may have reached the platform
            await self._unknown(row, f"unexpected {type(exc).__name__}")
            bound.exception("perform_crashed")
        else:
            if isinstance(result, Sent):
                await self._finish(row, State.SENT, "sent", remote_id=result.remote_id)
                self.stats.sent += 1
                purpose = row.action.purpose.value
                self.stats.by_purpose[purpose] = self.stats.by_purpose.get(purpose, 0) + 1
            elif isinstance(result, Skipped):
                await self._finish(row, State.SKIPPED, result.reason)
                self.stats.skipped += 1

    async def _retry_or_fail(self, row: LedgerRow, exc: Exception) -> None:
        attempts = row.attempts + 1
        if attempts >= self.max_attempts:
            await self._finish(row, State.FAILED, f"gave up after {attempts} attempts: {exc}")
            self.stats.failed += 1
            return
        backoff = min(300.0, 2.0**attempts) * random.uniform(0.5, 1.0)  # noqa: S311
        now = self.clock.now()
        async with self.db.write() as tx:
            await tx.execute(
                "UPDATE actions SET not_before = ? WHERE id = ?",
                ((now + timedelta(seconds=backoff)).isoformat(), row.id),
            )
            await ledger.transition(
                tx, row.id, to=State.PENDING, now=now, detail=f"will retry: {exc}"
            )
        self.stats.retried += 1

    async def _unknown(self, row: LedgerRow, detail: str) -> None:
        await self._finish(row, State.UNKNOWN, detail)
        self.stats.unknown += 1
        await self.check_unknown(row)

    async def check_unknown(self, row: LedgerRow) -> bool:
        """Ask the platform whether an unknown action took effect; resolve it if it did."""
        if not isinstance(self.adapter, OutcomeCheckable):
            return False
        try:
            found = await self.adapter.check_outcome(row.action)
        except Exception:  # noqa: BLE001 - a failed check leaves it for the facilitator
            return False
        if found is None:
            return False
        async with self.db.write() as tx:
            moved = await ledger.transition(
                tx,
                row.id,
                to=State.SENT,
                now=self.clock.now(),
                detail="found on the platform after an unknown outcome",
                remote_id=found.remote_id,
                expect=[State.UNKNOWN],
            )
        if moved:
            self.stats.unknown -= 1
            self.stats.sent += 1
        return moved

    async def check_unknowns(self, limit: int = 200) -> int:
        """At start-up: ask the platform about this platform's unknown outcomes (the newest
        ``limit``); return how many it confirmed. The rest stay for a facilitator."""
        where = "platform = ? AND state = ?"
        params: tuple[object, ...] = (self.platform, State.UNKNOWN.value)
        if self.chat_id is not None:
            where += " AND chat_id = ?"
            params = (*params, self.chat_id)
        async with self.db.read() as tx:
            rows = await tx.fetchall(
                f"SELECT id FROM actions WHERE {where} ORDER BY id DESC LIMIT ?",  # noqa: S608 - constant text
                (*params, limit),
            )
            found = [await ledger.get(tx, int(r[0])) for r in rows]
        confirmed = 0
        for row in found:
            if row is not None and await self.check_unknown(row):
                confirmed += 1
        if found:
            self._log.warning("unknown_outcomes_checked", count=len(found), confirmed=confirmed)
        return confirmed

    async def resume(self) -> None:
        """Check what a crash left unknown, then run: never resend an unknown action blindly."""
        await self.check_unknowns()
        await self.run()

    async def _finish(
        self, row: LedgerRow, state: State, detail: str, remote_id: str | None = None
    ) -> None:
        async with self.db.write() as tx:
            await ledger.transition(
                tx, row.id, to=state, now=self.clock.now(), detail=detail, remote_id=remote_id
            )


async def recover(
    db: Database, clock: Clock, *, chat_id: str | None = None, platform: str | None = None
) -> list[LedgerRow]:
    """At start-up: actions left ``sending`` by a crash become ``unknown``; return them.

    With several processes, the process that takes over one chat's platform recovers just that
    chat and platform (``chat_id``, ``platform``), never another leader's work in flight.
    """
    now = clock.now()
    scope: str = ""
    params: tuple[str, ...] = ()
    if chat_id is not None:
        scope, params = " AND chat_id = ?", (chat_id,)
    if platform is not None:
        scope, params = scope + " AND platform = ?", (*params, platform)
    async with db.write() as tx:
        rows = await tx.fetchall(
            "SELECT id FROM actions WHERE state = ?" + scope,  # noqa: S608 - constant text
            (State.SENDING.value, *params),
        )
        for (action_id,) in rows:
            await ledger.transition(
                tx,
                int(action_id),
                to=State.UNKNOWN,
                now=now,
                detail="mhchat stopped while sending; outcome unknown",
            )
        unknown = await tx.fetchall(
            "SELECT id FROM actions WHERE state = ?" + scope,  # noqa: S608 - constant text
            (State.UNKNOWN.value, *params),
        )
        result: list[LedgerRow] = []
        for (action_id,) in unknown:
            row = await ledger.get(tx, int(action_id))
            if row is not None:
                result.append(row)
    return result
