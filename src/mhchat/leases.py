"""Leases: singleton duties shared by several processes on one database.

A duty (a chat's scheduler, a chat's sender and stream intake for one platform, a chat's ingest
consumer) is held by one process at a time through a row in ``leases``. The row names the holder,
an expiry, and a fencing token that grows by one every time the lease changes hands. The holder
renews it well before the expiry; a process that stops renewing (killed, paused, cut off from the
database) loses it when it expires, and a standby takes it over.

A paused old leader may wake up and try to act before it has noticed. Writes that must not
happen twice are fenced: in the same transaction as the write, ``fence(tx)`` updates the lease
row only where holder and token are still ours and the lease has not expired. The update locks
the row until commit, so a take-over waits for that transaction, and a take-over that committed
first makes the update match nothing: the old leader's transaction is rolled back.

Lease times come from each process's clock, so hosts need synchronised clocks (NTP); the
timeout (15 s by default) is far above any usual skew.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog

from mhchat.store.db import Database, Tx

log = structlog.get_logger("mhchat.leases")

_CREATE = (
    "CREATE TABLE IF NOT EXISTS leases ("
    " name TEXT PRIMARY KEY, holder TEXT NOT NULL, token BIGINT NOT NULL,"
    " acquired_at TEXT NOT NULL, expires_at TEXT NOT NULL, renewed_at TEXT NOT NULL)"
)


class LeaseLost(Exception):
    """This process no longer holds the lease its work depends on."""


def utc_now() -> datetime:
    return datetime.now(UTC)


def stamp(value: datetime) -> str:
    # A fixed width keeps the text comparison of two times equal to their order.
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def default_holder() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


@dataclass(frozen=True, slots=True)
class Lease:
    name: str
    holder: str
    token: int
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class LeaseRow:
    name: str
    holder: str
    token: int
    acquired_at: datetime
    expires_at: datetime


class LeaseStore:
    """The ``leases`` table. Created on first use, like the runner's own table."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def ensure(self) -> None:
        lock = getattr(self.db, "migration_lock", None)
        if lock is None:
            async with self.db.write() as tx:
                await tx.execute(_CREATE)
            return
        async with lock(), self.db.write() as tx:
            await tx.execute(_CREATE)

    async def acquire(self, name: str, holder: str, ttl: float, now: datetime) -> Lease | None:
        """Take the lease if it is free, expired or already ours; the token grows on change."""
        expires = now + timedelta(seconds=ttl)
        async with self.db.write() as tx:
            row = await tx.fetchone(
                "INSERT INTO leases (name, holder, token, acquired_at, expires_at, renewed_at)"
                " VALUES (?, ?, 1, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET"
                " token = CASE WHEN leases.holder = excluded.holder THEN leases.token"
                " ELSE leases.token + 1 END,"
                " acquired_at = CASE WHEN leases.holder = excluded.holder THEN leases.acquired_at"
                " ELSE excluded.acquired_at END,"
                " holder = excluded.holder, expires_at = excluded.expires_at,"
                " renewed_at = excluded.renewed_at"
                " WHERE leases.holder = excluded.holder OR leases.expires_at <= ?"
                " RETURNING token",
                (name, holder, stamp(now), stamp(expires), stamp(now), stamp(now)),
            )
        if row is None:
            return None
        return Lease(name=name, holder=holder, token=int(row[0]), expires_at=expires)

    async def renew(self, lease: Lease, ttl: float, now: datetime) -> Lease | None:
        expires = now + timedelta(seconds=ttl)
        async with self.db.write() as tx:
            changed = await tx.execute(
                "UPDATE leases SET expires_at = ?, renewed_at = ?"
                " WHERE name = ? AND holder = ? AND token = ? AND expires_at > ?",
                (stamp(expires), stamp(now), lease.name, lease.holder, lease.token, stamp(now)),
            )
        if changed != 1:
            return None
        return Lease(lease.name, lease.holder, lease.token, expires)

    async def release(self, lease: Lease, now: datetime) -> None:
        """Hand the lease back at once (graceful stop): a standby takes it at its next try."""
        async with self.db.write() as tx:
            await tx.execute(
                "UPDATE leases SET expires_at = ? WHERE name = ? AND holder = ? AND token = ?",
                (stamp(now), lease.name, lease.holder, lease.token),
            )

    @staticmethod
    async def fence(tx: Tx, lease: Lease, now: datetime) -> bool:
        """In the caller's transaction: is the lease still ours? Locks the row until commit."""
        changed = await tx.execute(
            "UPDATE leases SET renewed_at = renewed_at"
            " WHERE name = ? AND holder = ? AND token = ? AND expires_at > ?",
            (lease.name, lease.holder, lease.token, stamp(now)),
        )
        return changed == 1

    async def rows(self, prefix: str = "") -> list[LeaseRow]:
        async with self.db.read() as tx:
            found = await tx.fetchall(
                "SELECT name, holder, token, acquired_at, expires_at FROM leases"
                " WHERE name LIKE ? ORDER BY name",
                (prefix + "%",),
            )
        return [
            LeaseRow(
                name=str(r[0]),
                holder=str(r[1]),
                token=int(r[2]),
                acquired_at=datetime.fromisoformat(str(r[3])),
                expires_at=datetime.fromisoformat(str(r[4])),
            )
            for r in found
        ]


DutyBody = Callable[["Fence"], Coroutine[Any, Any, None]]


class Fence:
    """What a duty's code calls, inside its write transaction, before an irreversible step."""

    def __init__(self, store: LeaseStore, lease: Lease, now: Callable[[], datetime]) -> None:
        self.store = store
        self.lease = lease
        self._now = now

    @property
    def token(self) -> int:
        return self.lease.token

    async def __call__(self, tx: Tx) -> bool:
        return await self.store.fence(tx, self.lease, self._now())

    async def check(self, tx: Tx) -> None:
        if not await self(tx):
            raise LeaseLost(f"lease {self.lease.name} was taken over")


@dataclass(slots=True)
class _Duty:
    name: str
    body: DutyBody
    lease: Lease | None = None
    task: asyncio.Task[None] | None = None
    taken_at: datetime | None = None
    takeovers: int = 0


@dataclass(slots=True)
class DutyEvent:
    """A duty changing hands in this process, for /readyz and the take-over figures."""

    name: str
    what: str  # "acquired", "lost", "released", "crashed"
    token: int
    at: datetime


@dataclass(slots=True)
class LeaseManager:
    """Holds this process's leases: tries to take each duty, renews, runs and stops bodies."""

    store: LeaseStore
    ttl: float = 15.0
    holder: str = field(default_factory=default_holder)
    interval: float | None = None
    """How often to renew and to try free duties; default a third of the timeout."""
    now: Callable[[], datetime] = utc_now
    on_change: Callable[[DutyEvent], Awaitable[None] | None] | None = None
    duties: dict[str, _Duty] = field(default_factory=dict)
    events: list[DutyEvent] = field(default_factory=list)
    _wake: asyncio.Event = field(default_factory=asyncio.Event)

    def add(self, name: str, body: DutyBody) -> None:
        """Register a duty: ``body(fence)`` runs while this process holds the lease."""
        self.duties[name] = _Duty(name=name, body=body)
        self._wake.set()

    @property
    def period(self) -> float:
        return self.interval if self.interval is not None else self.ttl / 3

    def held(self) -> dict[str, Lease]:
        return {n: d.lease for n, d in self.duties.items() if d.lease is not None}

    async def run(self) -> None:
        while True:
            for duty in list(self.duties.values()):
                try:
                    await self._step(duty)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # noqa: BLE001 - e.g. database down: try again later
                    log.warning("lease_step_failed", duty=duty.name, error_type=type(exc).__name__)
                    if duty.lease is not None and duty.lease.expires_at <= self.now():
                        await self._lose(duty, "lost")
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.period):
                    await self._wake.wait()

    async def _step(self, duty: _Duty) -> None:
        now = self.now()
        if duty.task is not None and duty.task.done():
            # The body ended (crash or lease lost inside it): hand the duty back to the pool.
            error = None if duty.task.cancelled() else duty.task.exception()
            what = "crashed" if error is not None else "ended"
            if error is not None:
                log.error(
                    "duty_crashed", duty=duty.name, error_type=type(error).__name__, exc_info=error
                )
            if duty.lease is not None:
                await self.store.release(duty.lease, now)
            await self._lose(duty, what)
            return
        if duty.lease is not None:
            renewed = await self.store.renew(duty.lease, self.ttl, now)
            if renewed is None:
                await self._lose(duty, "lost")
            else:
                duty.lease = renewed
            return
        lease = await self.store.acquire(duty.name, self.holder, self.ttl, now)
        if lease is None:
            return
        duty.lease = lease
        duty.taken_at = now
        duty.takeovers += 1
        fence = Fence(self.store, lease, self.now)
        duty.task = asyncio.create_task(duty.body(fence), name=f"duty.{duty.name}")
        log.info("lease_acquired", duty=duty.name, term=lease.token)
        await self._emit(DutyEvent(duty.name, "acquired", lease.token, now))

    async def _lose(self, duty: _Duty, what: str) -> None:
        token = duty.lease.token if duty.lease else 0
        duty.lease = None
        task, duty.task = duty.task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        log.warning("lease_given_up", duty=duty.name, why=what, term=token)
        await self._emit(DutyEvent(duty.name, what, token, self.now()))

    async def _emit(self, event: DutyEvent) -> None:
        self.events.append(event)
        del self.events[:-200]
        if self.on_change is not None:
            result = self.on_change(event)
            if result is not None:
                await result

    async def stop(self) -> None:
        """Stop every body, then hand the leases back so a standby takes over at once."""
        for duty in self.duties.values():
            if duty.task is not None and not duty.task.done():
                duty.task.cancel()
        for duty in self.duties.values():
            if duty.task is not None:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await duty.task
                duty.task = None
            if duty.lease is not None:
                with contextlib.suppress(Exception):
                    await self.store.release(duty.lease, self.now())
                duty.lease = None

    def report(self) -> dict[str, dict[str, Any]]:
        return {
            name: {
                "held": duty.lease is not None,
                "token": duty.lease.token if duty.lease else None,
                "since": duty.taken_at.isoformat() if duty.lease and duty.taken_at else None,
            }
            for name, duty in sorted(self.duties.items())
        }
