"""The running service's parts, shared by the web routes through one typed app key."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime

from mhchat.actions import Purpose
from mhchat.adapters import Adapter
from mhchat.bus import Bus
from mhchat.clock import Clock
from mhchat.config import Settings
from mhchat.controls import Controls
from mhchat.events import Health, HealthStatus
from mhchat.ingest import BatchHandler, IngestWorker, Observer
from mhchat.leases import LeaseManager
from mhchat.ledger import Mode
from mhchat.sender import Sender
from mhchat.spool import Spool
from mhchat.store.db import Database


class DbState:
    """``KeyValueState`` over the ``adapter_state`` table, one namespace per platform."""

    def __init__(self, db: Database, chat_id: str, platform: str, clock: Clock) -> None:
        self._db = db
        self._chat_id = chat_id
        self._platform = platform
        self._clock = clock

    async def get(self, key: str) -> str | None:
        async with self._db.read() as tx:
            row = await tx.fetchone(
                "SELECT value FROM adapter_state WHERE chat_id = ? AND platform = ? AND key = ?",
                (self._chat_id, self._platform, key),
            )
        return None if row is None else str(row[0])

    async def set(self, key: str, value: str) -> None:
        async with self._db.write() as tx:
            await tx.execute(
                "INSERT INTO adapter_state (chat_id, platform, key, value, updated_at)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (chat_id, platform, key)"
                " DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                (self._chat_id, self._platform, key, value, self._clock.now().isoformat()),
            )


@dataclass(slots=True)
class AdapterSlot:
    """One configured adapter: loaded, started, or the reason it is not."""

    name: str
    adapter: Adapter | None = None
    problem: str | None = None
    sender: Sender | None = None
    started: bool = False

    def health(self) -> Health:
        if self.adapter is None or self.problem:
            return Health(status=HealthStatus.DOWN, detail=self.problem or "not loaded")
        try:
            return self.adapter.health()
        except Exception as exc:  # noqa: BLE001 - a broken adapter must not break /readyz
            return Health(status=HealthStatus.DOWN, detail=f"health failed: {type(exc).__name__}")


Component = Callable[["Runtime"], Awaitable[None]]
"""A background duty (scheduler, backfill watcher...) run as a tracked task."""


@dataclass(slots=True)
class Runtime:
    settings: Settings
    clock: Clock
    started_at: datetime
    db: Database | None = None
    bus: Bus | None = None
    worker: IngestWorker | None = None
    controls: Controls | None = None
    modes: dict[Purpose, Mode] = field(default_factory=dict)
    """The live per-purpose modes, shared with Controls and the decision handlers."""
    slots: dict[str, AdapterSlot] = field(default_factory=dict)
    handlers: list[BatchHandler] = field(default_factory=list)
    observers: list[Observer] = field(default_factory=list)
    components: list[tuple[str, Component]] = field(default_factory=list)
    tasks: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    ready: bool = False
    leases: LeaseManager | None = None
    """With several processes: the duties this process holds or waits for (``mhchat.leases``)."""
    spool: Spool | None = None
    """Webhook deliveries on disk before they are parsed (``mhchat.spool``)."""

    def require_db(self) -> Database:
        if self.db is None:
            raise RuntimeError("the database is not open")
        return self.db

    def poke_senders(self) -> None:
        for slot in self.slots.values():
            if slot.sender is not None:
                slot.sender.poke()
