"""Benchmark 2: decision latency at 1,000 posts/s, from a payload's arrival to its action.

A paced producer hands one payload every millisecond (X stream lines, Jetstream commits and
single-change Facebook webhooks in turn) to the adapter's parser and publishes the events, as
the live intake does. The clock starts before parsing. It stops when the transaction that
wrote the post's action to the ledger has committed (the ingest worker's observers run right
after the commit). Every post comes from a new participant and the budgets are lifted, so
every post earns ledger actions (a welcome and a repost): the heaviest decision path.

The limit beside it is the disk: one-row sqlite3 INSERT + COMMIT transactions on the same
file system, same pragmas, same run.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

from bench.harness import BLUESKY, FACEBOOK, Parsers, X, bench_settings, open_pipeline
from bench.payloads import facebook_bodies, jetstream_posts, signed, x_stream_lines
from bench.table import Result
from mhchat.events import Event, PostReceived
from mhchat.store.posts import StoredBatch

RATE = 1000.0


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def disk_commit_latencies(path: Path, n: int) -> list[float]:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, key TEXT UNIQUE, payload TEXT)")
    out = []
    for i in range(n):
        started = time.perf_counter()
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO t (key, payload) VALUES (?, ?)", (f"k{i}", "x" * 200))
        conn.execute("COMMIT")
        out.append(time.perf_counter() - started)
    conn.close()
    return out


async def run_latency(seconds: float, folder: Path) -> tuple[list[float], float, int]:
    """Returns (latencies of posts that led to ledger actions, achieved rate, posts sent)."""
    n = int(RATE * seconds)
    per = n // 3 + 1
    x_lines = x_stream_lines(per, authors=per)
    frames = [f.decode() for f in jetstream_posts(per, authors=per)]
    bodies = facebook_bodies(per, 1, authors=per)
    signatures = [signed(b) for b in bodies]
    parsers = Parsers()
    committed: dict[tuple[str, str], float] = {}

    def observe(batch: StoredBatch) -> None:
        done = time.perf_counter()
        for post in batch.new_posts:
            committed[(post.platform, post.remote_id)] = done

    pipe = await open_pipeline(
        folder / "latency.db", settings=bench_settings(generous=True), observers=[observe]
    )
    arrived: dict[tuple[str, str], float] = {}

    async def one(i: int) -> None:
        started = time.perf_counter()
        k = i // 3
        events: list[Event]
        if i % 3 == 0:
            platform, events = X, parsers.x_line(x_lines[k])
        elif i % 3 == 1:
            platform, events = BLUESKY, parsers.jetstream_frame(frames[k])
        else:
            platform, events = FACEBOOK, parsers.facebook_body(bodies[k], signatures[k])
        for event in events:
            if isinstance(event, PostReceived):
                arrived[(event.post.platform, event.post.remote_id)] = started
        await pipe.sinks[platform].publish(events)

    worker = asyncio.create_task(pipe.worker.run())
    sent = 0
    began = time.perf_counter()
    while sent < n:
        due = min(n, int((time.perf_counter() - began) * RATE) + 1)
        while sent < due:
            await one(sent)
            sent += 1
        await asyncio.sleep(0.0005)
    achieved = sent / (time.perf_counter() - began)
    await pipe.bus.join()
    worker.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await worker
    async with pipe.db.read() as tx:
        acted = {
            (str(r[0]), str(r[1]))
            for r in await tx.fetchall(
                "SELECT platform, remote_id FROM welcomes UNION SELECT platform, remote_id"
                " FROM session_reposts"
            )
        }
    await pipe.close()
    if pipe.errors:
        raise RuntimeError(f"ingest errors: {pipe.errors[:3]}")
    latencies = [committed[k] - arrived[k] for k in acted if k in committed and k in arrived]
    if len(latencies) < n * 0.95:
        raise RuntimeError(f"only {len(latencies)} of {n} posts led to ledger actions")
    return latencies, achieved, n


async def bench_latency(*, short: bool) -> list[Result]:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        latencies, achieved, n = await run_latency(2.0 if short else 20.0, folder)
        disk = disk_commit_latencies(folder / "disk.db", 300 if short else 2000)
    ms = [x * 1000 for x in latencies]
    disk_ms = [x * 1000 for x in disk]
    label = f"2. decision latency at {achieved:,.0f} posts/s ({n:,} posts, all with actions)"
    return [
        Result(
            name=f"{label}: p50",
            value=statistics.median(ms),
            unit="ms",
            limit_name="one-row sqlite3 INSERT+COMMIT p50",
            limit_value=statistics.median(disk_ms),
            goal="(p99 < 10 ms)",
            higher_is_better=False,
        ),
        Result(
            name=f"{label}: p99",
            value=percentile(ms, 0.99),
            unit="ms",
            limit_name="one-row sqlite3 INSERT+COMMIT p99",
            limit_value=percentile(disk_ms, 0.99),
            goal="p99 < 10 ms",
            higher_is_better=False,
        ),
    ]
