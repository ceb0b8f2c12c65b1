"""Run every benchmark and print one table: ``python -m bench [--short] [--json FILE]``."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path

from bench.archive import bench_archive
from bench.core_ingest import bench_core_ingest
from bench.ingest import bench_ingest
from bench.jetstream import bench_jetstream
from bench.latency import bench_latency
from bench.machine import machine
from bench.table import Result, print_table
from bench.webhooks import bench_webhooks

BENCHMARKS = {
    "core-ingest": bench_core_ingest,
    "ingest": bench_ingest,
    "latency": bench_latency,
    "webhooks": bench_webhooks,
    "jetstream": bench_jetstream,
    "archive": bench_archive,
}


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--short", action="store_true", help="small sizes: a regression guard")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--only", action="append", choices=sorted(BENCHMARKS))
    args = parser.parse_args()
    results: list[Result] = []
    # Other work on the machine skews absolute figures (the ratios less): keep it on record.
    load: dict[str, float] = {}
    for name, bench in BENCHMARKS.items():
        if args.only and name not in args.only:
            continue
        load[name] = os.getloadavg()[0]
        print(f"running {name} (load average {load[name]:.1f}) ...", file=sys.stderr, flush=True)
        results.extend(asyncio.run(bench(short=args.short)))
    print_table(results)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "machine": machine(),
            "short": args.short,
            "load_average_before": load,
            "results": [r.as_dict() for r in results],
        }
        args.json.write_text(json.dumps(payload, indent=2))
    return 0


raise SystemExit(main())
