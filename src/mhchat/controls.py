"""Facilitator switches: the kill switch and per-purpose modes, persisted in ``switches``."""

from __future__ import annotations

import asyncio
from datetime import datetime

from mhchat.actions import Purpose
from mhchat.ledger import Mode
from mhchat.store.db import Database

KILL_SWITCH = "kill_switch"
MODE_PREFIX = "mode:"


class Controls:
    """In-memory view of the switches, written through to the database."""

    def __init__(self, db: Database, chat_id: str, modes: dict[Purpose, Mode]) -> None:
        self._db = db
        self._chat_id = chat_id
        # Shared, not copied: the decision handlers read the same dict, so a facilitator's
        # change of mode applies to the next decision.
        self.modes = modes
        self.killed = False
        self.changed = asyncio.Event()

    async def load(self) -> None:
        async with self._db.read() as tx:
            rows = await tx.fetchall(
                "SELECT name, value FROM switches WHERE chat_id = ?", (self._chat_id,)
            )
        for name, value in rows:
            if name == KILL_SWITCH:
                self.killed = value == "on"
            elif str(name).startswith(MODE_PREFIX):
                try:
                    self.modes[Purpose(str(name).removeprefix(MODE_PREFIX))] = Mode(str(value))
                except ValueError:
                    continue

    async def _save(self, name: str, value: str, now: datetime, actor: str) -> None:
        async with self._db.write() as tx:
            await tx.execute(
                "INSERT INTO switches (chat_id, name, value, updated_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (chat_id, name) DO UPDATE SET value = excluded.value,"
                " updated_at = excluded.updated_at",
                (self._chat_id, name, value, now.isoformat()),
            )
            await tx.execute(
                "INSERT INTO audit (chat_id, at, actor, what, detail) VALUES (?, ?, ?, ?, ?)",
                (self._chat_id, now.isoformat(), actor, f"set {name}", value),
            )
        self.changed.set()

    async def set_killed(self, killed: bool, *, now: datetime, actor: str) -> None:
        self.killed = killed
        await self._save(KILL_SWITCH, "on" if killed else "off", now, actor)

    async def set_mode(self, purpose: Purpose, mode: Mode, *, now: datetime, actor: str) -> None:
        if purpose is Purpose.SIGNPOSTING and mode is Mode.AUTO:
            raise ValueError("signposting replies always need a person's approval")
        self.modes[purpose] = mode
        await self._save(MODE_PREFIX + purpose.value, mode.value, now, actor)
