"""The Bluesky emulator's state: settings, accounts, records, tokens, windows, the commit log."""

from __future__ import annotations

import asyncio

from aiohttp import web

from mhchat.clock import Clock, SystemClock
from mhchat.emulators.bluesky.model import (
    _TID_ALPHABET,
    Account,
    RecordedRequest,
    StoredRecord,
    XrpcError,
    _Fault,
    _LogEntry,
    _Token,
    _Window,
)
from mhchat.emulators.common import FaultQueues


class BlueskyState:
    """Everything the emulator holds; the layers above add the PDS's, appview's and Jetstream's
    behaviour on top of it."""

    def __init__(
        self,
        *,
        clock: Clock | None = None,
        access_ttl: float = 7200.0,
        session_limit: int = 30,
        points_per_hour: int = 5000,
        points_per_day: int = 35000,
        search_lag: float = 0.0,
    ) -> None:
        self.clock: Clock = clock or SystemClock()
        self.access_ttl = access_ttl
        self.session_limit = session_limit
        self.points_per_hour = points_per_hour
        self.points_per_day = points_per_day
        self.search_lag = search_lag
        self.accounts: dict[str, Account] = {}
        self.requests: list[RecordedRequest] = []
        self.deleted: list[str] = []
        self._records: dict[str, StoredRecord] = {}
        self._tokens: dict[str, _Token] = {}
        self._session_windows: dict[str, _Window] = {}
        self._points: dict[str, tuple[_Window, _Window]] = {}
        self._faults: FaultQueues[_Fault] = FaultQueues()
        self._log: list[_LogEntry] = []
        self._last_us = 0
        self._last_tid = 0
        self._subscribers: set[asyncio.Queue[_LogEntry | str | None]] = set()
        self._stopping = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    def _next_time_us(self) -> int:
        now = int(self.clock.now().timestamp() * 1_000_000)
        self._last_us = max(self._last_us + 1, now)
        return self._last_us

    def _tid(self) -> str:
        micros = max(self._last_tid + 1, int(self.clock.now().timestamp() * 1_000_000))
        self._last_tid = micros
        value = (micros << 10) | 7
        out = []
        for _ in range(13):
            out.append(_TID_ALPHABET[value & 31])
            value >>= 5
        return "".join(reversed(out))

    def _account(self, actor: str) -> Account | None:
        actor = actor.lower()
        return next((a for a in self.accounts.values() if actor in (a.did, a.handle)), None)

    def _require(self, uri: str) -> StoredRecord:
        found = self._records.get(uri)
        if found is None:
            raise XrpcError(400, "RecordNotFound", f"Could not locate record: {uri}")
        return found

    def records(self, did: str, collection: str) -> list[StoredRecord]:
        """What an account currently has in one collection, oldest first."""
        return sorted(
            (r for r in self._records.values() if r.did == did and r.collection == collection),
            key=lambda r: r.rkey,
        )

    def record(self, uri: str) -> StoredRecord | None:
        return self._records.get(uri)

    def records_all(self, collection: str) -> list[StoredRecord]:
        return sorted(
            (r for r in self._records.values() if r.collection == collection),
            key=lambda r: r.indexed_at,
        )

    def calls(self, nsid: str) -> int:
        return sum(1 for r in self.requests if r.nsid == nsid)
