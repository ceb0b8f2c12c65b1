"""Benchmark 4: the Bluesky ingest path on one core, on a stream with the network's mix.

Every frame of a Jetstream stream meets the adapter's cheap pre-filter; the few that pass are
parsed, checked against the chat (tag, host, known authors) and normalised into events, as
``mhchat_bluesky`` does with each websocket frame. The stream is made from the recorded
Jetstream commit with the mix of the whole network (likes, follows, reposts, deletes, identity
events, posts of other people); half a percent of frames are the chat's own posts.

The limit is the real network's rate. Bluesky's relay operators reported "sustained traffic of
over 2,000 events per second" on the firehose in November 2024, the busiest period so far
(https://docs.bsky.app/blog/relay-ops, 2024-11-18); Jetstream carries the same commits, in JSON.
Measured in CPU time of this one thread, so the figure is what one core sustains.
"""

from __future__ import annotations

import time

from bench.harness import Parsers
from bench.payloads import jetstream_network
from bench.table import Result

NETWORK_PEAK = 2000.0
NETWORK_PEAK_SOURCE = "Bluesky relay ops, 2024-11-18: sustained >2,000 events/s"


def run_jetstream(n: int) -> tuple[float, float, int, int]:
    """Returns (events/s on CPU time, events/s on wall time, chat posts found, tagged sent)."""
    frames, tagged = jetstream_network(n)
    parsers = Parsers()
    found = 0
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for frame in frames:
        found += len(parsers.jetstream_frame(frame))
    cpu = time.process_time() - cpu0
    wall = time.perf_counter() - wall0
    return n / cpu, n / wall, found, tagged


async def bench_jetstream(*, short: bool) -> list[Result]:
    n = 50_000 if short else 500_000
    per_cpu, _per_wall, found, tagged = run_jetstream(n)
    if found != tagged:
        raise RuntimeError(f"the pre-filter path found {found} chat posts of {tagged}")
    return [
        Result(
            name=f"4. Jetstream: pre-filter + parse + normalise, one core ({n:,} frames,"
            f" {tagged:,} for the chat)",
            value=per_cpu,
            unit="events/s",
            limit_name=NETWORK_PEAK_SOURCE,
            limit_value=NETWORK_PEAK,
            goal=">= 10",
        )
    ]
