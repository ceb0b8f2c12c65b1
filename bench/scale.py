"""The production shape measured beside the default one: ``python -m bench.scale [--short]``.

Three shapes, same machine, same run: SQLite + the in-process bus (the default), PostgreSQL +
the in-process bus, and PostgreSQL + NATS JetStream (the production shape: every event is
published to the stream, acknowledged by it, pulled by the ingest worker, stored, and
acknowledged back). Needs PostgreSQL on 127.0.0.1:5432 and NATS on 127.0.0.1:4222
(``scripts/services`` starts them).

1. Ingest: synthetic posts through bus + store + the facilitation handler, posts/s.
2. Decision latency: posts published at a steady rate, each from a new participant so each
   earns ledger actions; from publish to the commit of the batch that decided them, p50/p99.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg

from bench.core_ingest import synthetic_posts
from bench.harness import bench_settings
from bench.latency import percentile
from mhchat.actions import Purpose
from mhchat.bus import Bus, BusSink, EventBus
from mhchat.bus_nats import JetStreamBus
from mhchat.clock import SystemClock
from mhchat.config import BusSettings
from mhchat.events import PlatformName, PostReceived
from mhchat.facilitation.handler import FacilitationHandler
from mhchat.ingest import IngestWorker, Observer
from mhchat.ledger import Mode
from mhchat.store.chats import ensure_chat
from mhchat.store.db import Database, SqliteDatabase
from mhchat.store.migrate import migrate
from mhchat.store.postgres import PostgresDatabase
from mhchat.store.posts import StoredBatch
from mhchat.testing import make_post

ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
NATS = "nats://127.0.0.1:4222"
SHAPES = ("sqlite+memory", "postgresql+memory", "postgresql+jetstream")


@dataclass
class Shape:
    name: str
    db: Database
    bus: Bus


@asynccontextmanager
async def shape(name: str, folder: Path) -> AsyncIterator[Shape]:
    tag = f"bench_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    database: Database
    pg_name = None
    if name.startswith("sqlite"):
        database = await SqliteDatabase.open(folder / f"{tag}.db")
    else:
        admin = await asyncpg.connect(ADMIN)
        await admin.execute(f'CREATE DATABASE "{tag}"')
        await admin.close()
        pg_name = tag
        database = await PostgresDatabase.open(f"postgresql://postgres@127.0.0.1:5432/{tag}")
    await migrate(database)
    await ensure_chat(database, "default", "MHChat", datetime.now(UTC))
    bus: Bus
    js: JetStreamBus | None = None
    if name.endswith("jetstream"):
        settings = replace(
            BusSettings(),
            backend="nats",
            nats_url=NATS,
            stream=tag.upper(),
            subject_prefix=tag,
            capacity=100_000,
            max_ack_pending=20_000,
        )
        js = JetStreamBus(settings, "default")
        await js.connect()
        bus = js
    else:
        bus = EventBus(capacity=100_000)
    try:
        yield Shape(name, database, bus)
    finally:
        if js is not None:
            with contextlib.suppress(Exception):
                await js.js.delete_stream(js.settings.stream)
            await js.aclose()
        await database.close()
        if pg_name is not None:
            admin = await asyncpg.connect(ADMIN)
            await admin.execute(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)')
            await admin.close()


def worker_for(s: Shape, generous: bool, observers: Sequence[Observer] = ()) -> IngestWorker:
    handler = FacilitationHandler(
        bench_settings(generous=generous), modes={Purpose.SIGNPOSTING: Mode.APPROVE_FIRST}
    )
    _ = handler.triage.model  # load the abuse model now: steady-state figures
    return IngestWorker(
        bus=s.bus,
        db=s.db,
        clock=SystemClock(),
        chat_id="default",
        handlers=[handler],
        observers=observers,
        max_batch=500,
    )


async def count(db: Database, sql: str) -> int:
    async with db.read() as tx:
        row = await tx.fetchone(sql)
    return int(row[0]) if row else 0


async def ingest_rate(s: Shape, n: int) -> float:
    events = synthetic_posts(n)
    worker = worker_for(s, generous=False)
    sinks = {p: BusSink(s.bus, p) for p in (PlatformName(x) for x in ("x", "bluesky", "facebook"))}
    task = asyncio.create_task(worker.run())
    started = time.perf_counter()
    gate = asyncio.Semaphore(32)

    async def publish(group: list[PostReceived]) -> None:
        async with gate:
            await sinks[group[0].post.platform].publish(group)

    await asyncio.gather(*[publish(events[i : i + 10]) for i in range(0, n, 10)])
    while await count(s.db, "SELECT COUNT(*) FROM posts") < n:  # noqa: ASYNC110
        await asyncio.sleep(0.01)
    elapsed = time.perf_counter() - started
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return n / elapsed


async def decision_latency(s: Shape, rate: float, seconds: float) -> list[float]:
    n = int(rate * seconds)
    committed: dict[str, float] = {}

    def observe(batch: StoredBatch) -> None:
        done = time.perf_counter()
        for post in batch.new_posts:
            committed[post.remote_id] = done

    worker = worker_for(s, generous=True, observers=[observe])
    sink = BusSink(s.bus, PlatformName("x"))
    task = asyncio.create_task(worker.run())
    # Inside a live session of the default schedule (Wednesday 20:00, London): posts earn
    # welcomes and reposts.
    start = datetime(2026, 1, 7, 20, 5, tzinfo=UTC)
    arrived: dict[str, float] = {}
    pending: set[asyncio.Task[None]] = set()

    async def one(i: int) -> None:
        post = make_post(
            f"lat{i}",
            author=f"new{i}",
            text=f"A1 answer {i} #MHChat",
            platform=PlatformName("x"),
            created_at=start + timedelta(milliseconds=i),
        )
        arrived[post.remote_id] = time.perf_counter()
        await sink.publish([PostReceived(post=post)])

    began = time.perf_counter()
    sent = 0
    while sent < n:
        due = min(n, int((time.perf_counter() - began) * rate) + 1)
        while sent < due:
            t = asyncio.create_task(one(sent))
            pending.add(t)
            t.add_done_callback(pending.discard)
            sent += 1
        await asyncio.sleep(0.001)
    await asyncio.gather(*list(pending))
    deadline = time.perf_counter() + 60
    while len(committed) < n and time.perf_counter() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.01)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    acted = {
        str(r[0])
        for r in await _fetch(s.db, "SELECT remote_id FROM welcomes WHERE remote_id LIKE 'lat%'")
    }
    return [committed[k] - arrived[k] for k in acted if k in committed]


async def _fetch(db: Database, sql: str) -> list[tuple[object, ...]]:
    async with db.read() as tx:
        rows: list[tuple[object, ...]] = await tx.fetchall(sql)
    return rows


async def run(short: bool) -> list[tuple[str, float, float, float]]:
    n = 3_000 if short else 20_000
    rate, seconds = (200.0, 3.0) if short else (500.0, 10.0)
    rows: list[tuple[str, float, float, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in SHAPES:
            async with shape(name, Path(tmp)) as s:
                posts_per_s = await ingest_rate(s, n)
            async with shape(name, Path(tmp)) as s:
                lat = [x * 1000 for x in await decision_latency(s, rate, seconds)]
            rows.append((name, posts_per_s, statistics.median(lat), percentile(lat, 0.99)))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__)
    parser.add_argument("--short", action="store_true")
    args = parser.parse_args()
    rows = asyncio.run(run(args.short))
    print(f"{'shape':<24}{'ingest posts/s':>16}{'decision p50 ms':>18}{'decision p99 ms':>18}")
    for name, rate, p50, p99 in rows:
        print(f"{name:<24}{rate:>16,.0f}{p50:>18.1f}{p99:>18.1f}")


if __name__ == "__main__":
    main()
