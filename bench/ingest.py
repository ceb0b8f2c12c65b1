"""Benchmark 1: real-format payloads through the whole intake, beside raw executemany.

X stream lines, Jetstream commits and Facebook webhook batches (made from the recorded
payloads) go through each adapter's parser, the bus, the ingest worker, the store and the
facilitation handler (threads, triage, reposts, welcomes, ledger), as in the service. The limit
is Python's sqlite3 inserting the same posts in one ``executemany``, in the same run.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
from pathlib import Path

from bench.harness import (
    BLUESKY,
    FACEBOOK,
    Parsers,
    X,
    open_pipeline,
    raw_executemany_rate,
)
from bench.payloads import facebook_bodies, jetstream_posts, signed, x_stream_lines
from bench.sql_clock import SqlClock
from bench.table import Result
from mhchat.events import Event

JETSTREAM_GROUP = 50
"""Frames per publish: the Bluesky intake batches what the socket delivers."""
FACEBOOK_PER_DELIVERY = 20
"""Changes per webhook body: Meta batches changes of one page into one delivery."""


async def run_ingest(
    n: int, folder: Path, sql_clock: SqlClock | None = None
) -> tuple[float, int, list[Event]]:
    """Returns (seconds, posts stored, every event produced) for ``n`` posts."""
    third = n // 3
    x_lines = x_stream_lines(third)
    frames = [f.decode() for f in jetstream_posts(third)]
    bodies = facebook_bodies(n - 2 * third, FACEBOOK_PER_DELIVERY)
    signatures = [signed(b) for b in bodies]
    parsers = Parsers()
    pipe = await open_pipeline(folder / "ingest.db", sql_clock=sql_clock)
    produced: list[Event] = []

    async def produce() -> None:
        sinks = pipe.sinks
        fb = 0
        for start in range(0, third, JETSTREAM_GROUP):
            # Interleave the platforms, as a live chat does.
            for line in x_lines[start : start + JETSTREAM_GROUP]:
                events = parsers.x_line(line)
                produced.extend(events)
                await sinks[X].publish(events)
            group: list[Event] = []
            for frame in frames[start : start + JETSTREAM_GROUP]:
                group += parsers.jetstream_frame(frame)
            produced.extend(group)
            await sinks[BLUESKY].publish(group)
            want = (start + JETSTREAM_GROUP) * len(bodies) // max(third, 1)
            while fb < min(want, len(bodies)):
                events = parsers.facebook_body(bodies[fb], signatures[fb])
                produced.extend(events)
                await sinks[FACEBOOK].publish(events)
                fb += 1
        for body, sig in zip(bodies[fb:], signatures[fb:], strict=True):
            events = parsers.facebook_body(body, sig)
            produced.extend(events)
            await sinks[FACEBOOK].publish(events)

    started = time.perf_counter()
    worker = asyncio.create_task(pipe.worker.run())
    await produce()
    await pipe.bus.join()
    elapsed = time.perf_counter() - started
    worker.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await worker
    stored = await pipe.count("SELECT count(*) FROM posts")
    await pipe.close()
    if pipe.errors:
        raise RuntimeError(f"ingest errors: {pipe.errors[:3]}")
    if stored != n:
        raise RuntimeError(f"stored {stored} of {n} posts")
    return elapsed, stored, produced


async def bench_ingest(*, short: bool) -> list[Result]:
    n = 6_000 if short else 60_000
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        clock = SqlClock()
        elapsed, stored, events = await run_ingest(n, folder, clock)
        raw = raw_executemany_rate(events, folder / "raw.db")
    heaviest = ", ".join(
        f"{sql} {seconds * 1e6 / stored:.1f}" for sql, seconds in clock.heaviest(3)
    )
    return [
        Result(
            name=f"1. ingest: X/Jetstream/Facebook payloads -> parsers, bus, store,"
            f" facilitation ({stored:,} posts)",
            value=stored / elapsed,
            unit="posts/s",
            limit_name="raw sqlite3 executemany, same rows",
            limit_value=raw,
            goal=">= 0.50",
        ),
        Result(
            name=f"1. ingest: the same run's SQL alone, {clock.seconds * 1e6 / stored:.1f} us a"
            f" post ({heaviest} us): the rate if parsing, triage, threads and decisions took"
            " no time",
            value=stored / clock.seconds,
            unit="posts/s",
            limit_name="raw sqlite3 executemany, same rows",
            limit_value=raw,
            goal="(ceiling)",
        ),
    ]
