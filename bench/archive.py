"""Benchmark 5: a years-long archive: peak memory, live view, transcript export, and growth.

Archives of three sizes keep the size of a session fixed (2,000 posts) and add sessions (10k
posts in 5 sessions, 100k in 50, 1M in 500), so a flat figure means the live view and the
export do not depend on how much history is stored. For each, the whole service starts on
the archive in its own process (``bench.archive_probe``) and times the reads that open the
live view and the export of the newest session's transcript, and reports its peak RSS.

Growth is the least-squares slope of log(time) against log(archive size) over the sizes: 0 is
flat, 1 is linear. The limit beside the times is the floor: Python's
sqlite3 reading the same session's rows from the same file.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import ROOT
from bench.archive_data import build_archive, prepare
from bench.table import Result

PER_SESSION = 2000
MEMORY_BUDGET_MB = 300.0


def probe(db: Path, session_id: str) -> dict[str, Any]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT), str(ROOT / "src"), str(ROOT / "adapters"), env.get("PYTHONPATH", "")]
    )
    out = subprocess.run(
        [sys.executable, "-m", "bench.archive_probe", str(db), session_id],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    if out.returncode != 0:
        raise RuntimeError(f"archive probe failed: {out.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def raw_session_read(db: Path, session_id: str) -> float:
    conn = sqlite3.connect(db)
    times = []
    for _ in range(3):
        started = time.perf_counter()
        conn.execute(
            "SELECT * FROM posts WHERE chat_id = 'default' AND session_id = ? ORDER BY created_at",
            (session_id,),
        ).fetchall()
        times.append(time.perf_counter() - started)
    conn.close()
    return sorted(times)[1]


def slope(points: list[tuple[int, float]]) -> float:
    """Least-squares slope of log(figure) against log(size): 0 flat, 1 linear."""
    xs = [math.log(n) for n, _ in points]
    ys = [math.log(max(v, 1e-6)) for _, v in points]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum(
        (x - mx) ** 2 for x in xs
    )


async def bench_archive(*, short: bool) -> list[Result]:
    # Short mode (CI) checks two sizes: each size starts a service process (seconds).
    sizes = [1, 10] if short else [5, 50, 500]
    per = 500 if short else PER_SESSION
    rows: list[tuple[int, dict[str, Any], float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for sessions in sizes:
            db = Path(tmp) / f"archive-{sessions}.db"
            await prepare(db)
            latest = await asyncio.to_thread(
                build_archive, db, sessions=sessions, posts_per_session=per
            )
            figures = probe(db, latest)
            rows.append((sessions * per, figures, raw_session_read(db, latest)))
            db.unlink()
    for size, figures, raw_s in rows:
        print(f"archive {size:,} posts: {figures}, raw session read {raw_s * 1000:.1f} ms",
              file=sys.stderr)  # fmt: skip
    n, biggest, raw = rows[-1]
    live = [(size, f["live_s"]) for size, f, _ in rows]
    export = [(size, f["export_s"]) for size, f, _ in rows]
    rss = [(size, f["peak_rss_mb"]) for size, f, _ in rows]
    sizes_text = "/".join(_size(size) for size, _, _ in rows)
    return [
        Result(
            name=f"5. archive {n:,} posts: peak RSS of the service",
            value=biggest["peak_rss_mb"],
            unit="MB",
            limit_name="budget",
            limit_value=MEMORY_BUDGET_MB,
            goal="< 300 MB",
            higher_is_better=False,
        ),
        Result(
            name=f"5. archive {n:,} posts: open the live view",
            value=biggest["live_s"] * 1000,
            unit="ms",
            limit_name="sqlite3 read of the session's rows",
            limit_value=raw * 1000,
            goal="< 1 s",
            higher_is_better=False,
        ),
        Result(
            name=f"5. archive {n:,} posts: export one session's transcript ({per:,} posts)",
            value=biggest["export_s"] * 1000,
            unit="ms",
            limit_name="sqlite3 read of the session's rows",
            limit_value=raw * 1000,
            goal="< 1 s",
            higher_is_better=False,
        ),
        Result(
            name=f"5. archive growth {sizes_text}: live view (log-log slope)",
            value=slope(live),
            unit="",
            limit_name="linear",
            limit_value=1.0,
            goal="flat/log (~0)",
            higher_is_better=False,
        ),
        Result(
            name=f"5. archive growth {sizes_text}: transcript export (log-log slope)",
            value=slope(export),
            unit="",
            limit_name="linear",
            limit_value=1.0,
            goal="flat/log (~0)",
            higher_is_better=False,
        ),
        Result(
            name=f"5. archive growth {sizes_text}: peak RSS (log-log slope)",
            value=slope(rss),
            unit="",
            limit_name="linear",
            limit_value=1.0,
            goal="flat/log (~0)",
            higher_is_better=False,
        ),
    ]


def _size(n: int) -> str:
    if n >= 1_000_000:
        return f"{n / 1_000_000:g}M"
    return f"{n / 1000:g}k" if n >= 1000 else str(n)
