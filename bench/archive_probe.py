"""The service process for the archive benchmark: ``python -m bench.archive_probe DB SESSION``.

Starts the whole service (``build_service``, serving on 127.0.0.1) on an existing archive,
then times, inside that process, the reads that open the live view and the export of one
session's transcript, and prints JSON with the timings and the process's peak memory.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import resource
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

import bench  # noqa: F401 - puts the adapters on the import path
from mhchat.config import parse_settings
from mhchat.facilitation import views
from mhchat.service import build_service
from mhchat.store.db import Database
from mhchat.web.keys import RUNTIME


def _dashboard_queries() -> Any:
    try:
        return importlib.import_module("mhchat.web.dashboard.queries")
    except ImportError:  # a tree without the dashboard: its read models only
        return None


queries = _dashboard_queries()

CHAT = "default"
RUNS = 5


async def live_view(db: Database, session_id: str, now: Any) -> int:
    """What the facilitator's live page reads: the safety queue, the approval and unknown
    lists, recent decisions, the post feed and the live session's activity chart."""
    async with db.read() as tx:
        items = len(await views.safety_queue(tx, CHAT, now))
        if queries is None:
            return items + len((await views.figures(tx, CHAT, session_id)).posts_by_platform)
        lists = await queries.ledger_lists(tx, CHAT)
        items += sum(len(v) for v in lists.values())
        items += len(await queries.recent_decisions(tx, CHAT))
        items += len(await queries.recent_posts(tx, CHAT))
        items += len(await queries.activity(tx, CHAT, session_id))
    return items


async def transcript(db: Database, session_id: str) -> int:
    try:
        from mhchat import transcript as export  # noqa: PLC0415
    except ImportError:
        async with db.read() as tx:
            return len(await views.grouped(tx, CHAT, session_id))
    text = await export.export(db, CHAT, session_id, export.Format.MARKDOWN)
    return len(text)


def peak_rss_mb() -> float:
    """This process's peak resident memory. ``VmHWM`` belongs to the address space made at
    exec; ``ru_maxrss`` would also count the parent's memory at fork, which Linux carries
    across exec."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def timed(step: Callable[[], Awaitable[int]]) -> tuple[float, float, int]:
    """(first run, median of the runs, size of the result) in seconds."""
    times: list[float] = []
    size = 0
    for _ in range(RUNS):
        started = time.perf_counter()
        size = await step()
        times.append(time.perf_counter() - started)
    return times[0], statistics.median(times), size


async def main(db_path: str, session_id: str) -> dict[str, Any]:
    settings = parse_settings(
        {"database": {"url": f"sqlite:///{db_path}"}, "web": {"host": "127.0.0.1", "port": 0}},
        {},
    )
    started = time.perf_counter()
    app = await build_service(settings)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    startup = time.perf_counter() - started
    try:
        runtime = app[RUNTIME]
        db = runtime.require_db()
        now = runtime.clock.now()
        live = await timed(lambda: live_view(db, session_id, now))
        export = await timed(lambda: transcript(db, session_id))
    finally:
        await runner.cleanup()
    return {
        "startup_s": startup,
        "live_first_s": live[0],
        "live_s": live[1],
        "export_first_s": export[0],
        "export_s": export[1],
        "export_chars": export[2],
        "peak_rss_mb": peak_rss_mb(),
    }


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(sys.argv[1], sys.argv[2]))))
