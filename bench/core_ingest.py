"""Synthetic posts through the bus, the ingest worker and the store, beside raw executemany.

The limit is what Python's own sqlite3 does with the same rows, the same schema and the same
INSERT statement in one ``executemany`` and one transaction, on the same disk in the same run.
"""

from __future__ import annotations

import sqlite3
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.table import Result
from mhchat.bus import BusSink, EventBus
from mhchat.clock import SystemClock
from mhchat.config import BusSettings
from mhchat.events import PlatformName, PostReceived
from mhchat.ingest import IngestWorker
from mhchat.store.chats import ensure_chat
from mhchat.store.db import SqliteDatabase, split_sql
from mhchat.store.migrate import migrate, migrations_root
from mhchat.store.posts import INSERT_POST, post_row
from mhchat.testing import make_post

PLATFORMS = [PlatformName("x"), PlatformName("bluesky"), PlatformName("facebook")]


def synthetic_posts(n: int) -> list[PostReceived]:
    start = datetime(2026, 1, 7, 20, 0, tzinfo=UTC)
    return [
        PostReceived(
            post=make_post(
                f"{i}",
                author=f"p{i % 500}",
                text=f"A{i % 6 + 1} synthetic answer number {i} #MHChat",
                platform=PLATFORMS[i % 3],
                created_at=start + timedelta(milliseconds=i),
                parent=str(i - 1) if i % 4 else None,
            )
        )
        for i in range(n)
    ]


def raw_rate(rows: list[tuple[object, ...]], folder: Path) -> float:
    conn = sqlite3.connect(folder / "raw.db", isolation_level=None)
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


async def mhchat_rate(events: list[PostReceived], folder: Path, batch: int) -> float:
    db = await SqliteDatabase.open(folder / "mhchat.db")
    await migrate(db)
    clock = SystemClock()
    await ensure_chat(db, "default", "MHChat", clock.now())
    bus = EventBus(capacity=100_000)
    worker = IngestWorker(bus=bus, db=db, clock=clock, chat_id="default", max_batch=batch)
    sinks = {p: BusSink(bus, p) for p in PLATFORMS}
    started = time.perf_counter()
    # Adapters publish small groups, as a stream delivers them.
    for i in range(0, len(events), 10):
        group = events[i : i + 10]
        await sinks[group[0].post.platform].publish(group)
    while bus.depth:
        envelopes = await bus.get_batch(batch)
        await worker.process(envelopes)
        bus.task_done(len(envelopes))
    elapsed = time.perf_counter() - started
    async with db.read() as tx:
        row = await tx.fetchone("SELECT count(*) FROM posts")
    await db.close()
    if row is None or row[0] != len(events):
        raise RuntimeError("not every post was stored")
    return len(events) / elapsed


async def bench_core_ingest(*, short: bool) -> list[Result]:
    n = 5_000 if short else 100_000
    events = synthetic_posts(n)
    now = datetime.now(UTC).isoformat()
    rows = [post_row("default", e.post, now, keep_raw=False) for e in events]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        raw = raw_rate(rows, folder)
        ours = await mhchat_rate(events, folder, batch=BusSettings().max_batch)
    return [
        Result(
            name=f"core ingest: bus + store ({n:,} posts)",
            value=ours,
            unit="posts/s",
            limit_name="raw sqlite3 executemany",
            limit_value=raw,
            goal=">= 0.50",
        )
    ]
