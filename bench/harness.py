"""The pieces the benchmarks share: the adapters' own parsers, and the core ingest path.

``Parsers`` runs each platform's real intake code on raw payload bytes (X stream line ->
``Normaliser``, Jetstream frame -> ``FrameParser`` + ``events_from_commit``, Facebook body ->
signature check + ``parse_delivery``). ``Pipeline`` is the bus, the ingest worker and the
facilitation handler on a migrated SQLite store, as ``build_service`` wires them.
"""

from __future__ import annotations

import gc
import json
import sqlite3
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from bench.payloads import APP_SECRET, HOST_DID, PAGE_ID
from bench.sql_clock import SqlClock, TimedDatabase
from mhchat.actions import Purpose
from mhchat.bus import BusSink, EventBus
from mhchat.clock import SystemClock
from mhchat.config import BusSettings
from mhchat.events import Event, PlatformName, PostReceived
from mhchat.facilitation.handler import FacilitationHandler
from mhchat.facilitation.settings import FacilitationSettings, parse_facilitation
from mhchat.ingest import IngestWorker, Observer
from mhchat.ledger import Mode
from mhchat.store.chats import ensure_chat
from mhchat.store.db import SqliteDatabase, split_sql
from mhchat.store.migrate import migrate, migrations_root
from mhchat.store.posts import INSERT_POST, post_row
from mhchat_bluesky.jetstream import FrameParser
from mhchat_bluesky.mapping import Profile, events_from_commit
from mhchat_facebook.mapping import parse_delivery
from mhchat_facebook.signature import signature_valid
from mhchat_x.mapping import HostIdentity, Normaliser

X = PlatformName("x")
BLUESKY = PlatformName("bluesky")
FACEBOOK = PlatformName("facebook")


class Parsers:
    """Each adapter's intake parsing, without its network code."""

    def __init__(self) -> None:
        self.x = Normaliser(X, HostIdentity(user_id="1", username="mhchathost"))
        self.authors: set[str] = set()
        self.counters: Counter[str] = Counter()
        self.jetstream = FrameParser(
            tag="MHChat",
            host_did=lambda: HOST_DID,
            authors=lambda: self.authors,
            note_author=self.authors.add,
            counters=self.counters,
        )
        self._profiles: dict[str, Profile] = {}

    def x_line(self, line: bytes) -> list[Event]:
        message: Any = orjson.loads(line)
        return self.x.parse(message).events

    def jetstream_frame(self, frame: str) -> list[Event]:
        """Pre-filter, parse, normalise: what the Bluesky adapter does with each frame."""
        if not self.jetstream.wanted(frame):
            return []
        _, item = self.jetstream.parse(frame)
        if item is None or item.commit is None:
            return []
        commit = item.commit
        profile = self._profiles.get(commit.did)
        if profile is None:
            # The adapter resolves handles in bulk over HTTP and caches them; a cache hit here.
            profile = self._profiles[commit.did] = Profile(handle=commit.did[8:] + ".bsky")
        return events_from_commit(commit, platform=BLUESKY, profile=profile, host_did=HOST_DID)

    def facebook_body(self, body: bytes, signature: str) -> list[Event]:
        if not signature_valid(body, signature, APP_SECRET):
            raise ValueError("bad signature")
        return parse_delivery(
            json.loads(body), platform=FACEBOOK, page_id=PAGE_ID, received_at=datetime.now(UTC)
        ).events


def bench_settings(*, generous: bool = False) -> FacilitationSettings:
    """The default rules; ``generous`` lifts the per-session budgets so every post can act."""
    doc: dict[str, Any] = {}
    if generous:
        doc = {"reposts": {"budget": 10_000_000}, "welcomes": {"budget": 10_000_000}}
    parsed, problems = parse_facilitation(doc)
    if problems:
        raise RuntimeError("; ".join(problems))
    return parsed


@dataclass
class Pipeline:
    db: SqliteDatabase
    bus: EventBus
    worker: IngestWorker
    sinks: dict[PlatformName, BusSink] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    async def close(self) -> None:
        await self.db.close()

    async def count(self, sql: str) -> int:
        async with self.db.read() as tx:
            row = await tx.fetchone(sql)
        return int(row[0]) if row else 0


async def open_pipeline(
    path: Path,
    *,
    settings: FacilitationSettings | None = None,
    observers: Sequence[Observer] = (),
    capacity: int = 1000,
    max_batch: int = BusSettings().max_batch,
    sql_clock: SqlClock | None = None,
) -> Pipeline:
    """``sql_clock``, when given, times every statement the ingest worker runs."""
    db = await SqliteDatabase.open(path)
    await migrate(db)
    clock = SystemClock()
    await ensure_chat(db, "default", "MHChat", clock.now())
    bus = EventBus(capacity=capacity)
    handler = FacilitationHandler(
        settings or bench_settings(), modes={Purpose.SIGNPOSTING: Mode.APPROVE_FIRST}
    )
    # The abuse model loads on first use (seconds): load it now so the figures are steady-state.
    _ = handler.triage.model
    # As a service process does once started (``freeze_heap_after_start``).
    gc.collect()
    gc.freeze()
    errors: list[str] = []
    worker = IngestWorker(
        bus=bus,
        db=db if sql_clock is None else TimedDatabase(db, sql_clock),
        clock=clock,
        chat_id="default",
        handlers=[handler],
        observers=observers,
        max_batch=max_batch,
        error_hook=lambda where, exc: errors.append(f"{where}: {type(exc).__name__}: {exc}"),
    )
    sinks = {p: BusSink(bus, p) for p in (X, BLUESKY, FACEBOOK)}
    return Pipeline(db=db, bus=bus, worker=worker, sinks=sinks, errors=errors)


def raw_executemany_rate(events: Sequence[Event], path: Path) -> float:
    """The limit: Python's sqlite3 inserting the same rows with the same statement, schema and
    pragmas, in one ``executemany`` and one transaction, on the same disk."""
    now = datetime.now(UTC).isoformat()
    rows = [
        post_row("default", e.post, now, keep_raw=False)
        for e in events
        if isinstance(e, PostReceived)
    ]
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    for sql_file in sorted((migrations_root() / "sqlite").glob("*.sql")):
        for statement in split_sql(sql_file.read_text()):
            conn.execute(statement)
    conn.execute("INSERT INTO chats VALUES ('default', 'MHChat', 'now')")
    started = time.perf_counter()
    conn.execute("BEGIN")
    conn.executemany(INSERT_POST, rows)
    conn.execute("COMMIT")
    elapsed = time.perf_counter() - started
    conn.close()
    return len(rows) / elapsed
