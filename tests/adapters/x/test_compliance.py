"""Deletion compliance and the cost of reading."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from mhchat.actions import Publish, Purpose, Skipped
from mhchat.emulators.x import XEmulator
from mhchat.events import HealthStatus, PostDeleted
from mhchat_x.compliance import DeletionWatch

from .conftest import Rig, X, received_ids, until

PAYLOADS = Path(__file__).parent / "payloads"


class TestDeletions:
    async def test_deleted_posts_found_by_lookup_become_post_deleted(
        self, rig: Callable[..., Rig], emulator: XEmulator
    ) -> None:
        adapter, sink = rig(settings={"compliance_interval": 0.3}).adapter()
        await adapter.start()
        try:
            await until(lambda: emulator.open_streams == 1)
            keep = emulator.post_tweet("alice", "A1 stays #MHChat")
            gone = emulator.post_tweet("bob", "A2 regretted #MHChat")
            original = emulator.post_tweet("carol", "A3 first #MHChat")
            edited = emulator.edit_tweet(original, "A3 second #MHChat")
            await until(lambda: {keep, gone} <= set(received_ids(sink)) and len(sink.events) >= 4)
            emulator.delete_tweet(gone)
            emulator.delete_tweet(edited)
            await until(lambda: len([e for e in sink.events if isinstance(e, PostDeleted)]) == 2)
        finally:
            await adapter.stop()
        deleted = sorted(e.remote_id for e in sink.events if isinstance(e, PostDeleted))
        # The edited post is reported under the id it is stored by: the original's.
        assert deleted == sorted([gone, original])
        assert emulator.calls("lookup") >= 1

    def test_partial_errors_of_the_documented_shape(self) -> None:
        body = json.loads((PAYLOADS / "partial-error.response.json").read_text())
        assert DeletionWatch._gone(body, {"123", "456"}) == ["456"]


class TestReadCost:
    async def test_stream_reads_are_billed_and_the_cap_pauses_ingest(
        self, rig: Callable[..., Rig], emulator: XEmulator
    ) -> None:
        # One post read ($0.005) plus its author ($0.010) per post: the cap allows two.
        adapter, sink = rig(settings={"max_cost_usd": 0.03}).adapter()
        await adapter.start()
        try:
            await until(lambda: emulator.open_streams == 1)
            first = emulator.post_tweet("alice", "A1 #MHChat")
            await until(lambda: first in received_ids(sink))
            second = emulator.post_tweet("bob", "A2 #MHChat")
            await until(lambda: second in received_ids(sink))
            await until(lambda: adapter.health().status is HealthStatus.DEGRADED)
            await until(lambda: emulator.open_streams == 0)
            assert "raise max_cost_usd" in adapter.health().detail
            skipped = await adapter.perform(
                Publish(key="q", platform=X, purpose=Purpose.QUESTION, text="Q1 #MHChat")
            )
        finally:
            await adapter.stop()
        assert isinstance(skipped, Skipped)
        assert "cost cap" in skipped.reason
        counters = dict(adapter.health().counters)
        assert counters["cost_microusd"] == 30_000

    async def test_the_day_total_survives_a_restart(
        self, rig: Callable[..., Rig], emulator: XEmulator
    ) -> None:
        r = rig(settings={"ingest": "off"})
        adapter, _ = r.adapter()
        await adapter.start()
        try:
            await adapter.perform(
                Publish(key="q", platform=X, purpose=Purpose.QUESTION, text="Q1 #MHChat")
            )
        finally:
            await adapter.stop()
        again, _ = r.adapter()
        await again.start()
        try:
            assert dict(again.health().counters)["cost_microusd"] == 15_000
        finally:
            await again.stop()
