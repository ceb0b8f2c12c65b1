"""The webhook with the service's intake spool: answered once on disk, parsed in batches."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mhchat.adapters import Checkpoint
from mhchat.events import Event, PostReceived
from mhchat.spool import Spool, SpoolPort
from mhchat.testing import RecordingSink

from .conftest import ALICE, RECORDED_PAGE, RigFactory, content, envelope, load

SOURCE = "default:facebook"


@pytest.fixture
async def spool(tmp_path: Path) -> AsyncIterator[Spool]:
    opened = await Spool(tmp_path / "intake.spool", quiet=0.01).open()
    yield opened
    await opened.close()


async def until(check: object, within: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not check():  # type: ignore[operator]
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def test_a_signed_delivery_is_answered_once_spooled_then_stored(
    make_rig: RigFactory, spool: Spool
) -> None:
    rig = await make_rig(spool=SpoolPort(spool, SOURCE))
    emu = rig.emulator
    question = await emu.page_post("Q1 #MHChat")
    comment = await emu.comment(ALICE, "A1 hello from the spool #MHChat", on_post=question)
    await emu.drain()
    assert [d.attempts for d in emu.deliveries] == [[200], [200]]
    await until(lambda: rig.sink.remote_ids() == [question, comment])
    await until(lambda: spool.depth() == 0)
    counters = dict(rig.adapter.health().counters)
    assert counters["spooled"] == 2
    assert counters["spool_stored"] == 2


async def test_refusals_still_happen_at_the_door(make_rig: RigFactory, spool: Spool) -> None:
    rig = await make_rig(page_id=RECORDED_PAGE, spool=SpoolPort(spool, SOURCE))
    body = envelope([load("feed-change-comment-add.json")], RECORDED_PAGE)
    assert (await rig.deliver(body, signature="sha256=" + "0" * 64)).status == 403
    assert (await rig.deliver(b"{not json")).status == 400
    assert spool.depth() == 0
    assert spool.written == 0


async def test_a_full_spool_is_503_so_meta_delivers_again(
    make_rig: RigFactory, tmp_path: Path
) -> None:
    class Stuck(RecordingSink):
        async def publish_and_wait(
            self,
            events: Sequence[Event],
            *,
            checkpoint: Checkpoint | None = None,
            timeout: float | None = None,
        ) -> None:
            await asyncio.Event().wait()  # a store that never finishes

    small = await Spool(tmp_path / "small.spool", capacity=1, quiet=0.01).open()
    try:
        rig = await make_rig(page_id=RECORDED_PAGE, sink=Stuck(), spool=SpoolPort(small, SOURCE))
        body = envelope([load("feed-change-comment-add.json")], RECORDED_PAGE)
        assert (await rig.deliver(body)).status == 200
        assert (await rig.deliver(body)).status == 503
        assert dict(rig.adapter.health().counters)["spool_full"] == 1
    finally:
        await small.close()


async def test_a_store_failure_keeps_the_delivery_until_it_is_stored(
    make_rig: RigFactory, spool: Spool
) -> None:
    class Failing(RecordingSink):
        failures = 2

        async def publish_and_wait(
            self,
            events: Sequence[Event],
            *,
            checkpoint: Checkpoint | None = None,
            timeout: float | None = None,
        ) -> None:
            if self.failures:
                self.failures -= 1
                raise RuntimeError("the store is down")
            await super().publish_and_wait(events, checkpoint=checkpoint, timeout=timeout)

    sink = Failing()
    rig = await make_rig(page_id=RECORDED_PAGE, sink=sink, spool=SpoolPort(spool, SOURCE))
    rig.adapter.ctx.clock.sleep = _no_wait  # type: ignore[method-assign,assignment]
    body = envelope([load("feed-change-comment-add.json")], RECORDED_PAGE)
    assert (await rig.deliver(body)).status == 200
    await until(lambda: len(content(sink)) == 1)
    assert isinstance(content(sink)[0], PostReceived)
    assert sink.failures == 0
    await until(lambda: spool.depth() == 0)
    assert dict(rig.adapter.health().counters)["spool_store_failed"] == 2


async def test_deliveries_left_in_the_spool_are_stored_after_a_restart(
    make_rig: RigFactory, tmp_path: Path
) -> None:
    path = tmp_path / "restart.spool"
    first = await Spool(path).open()
    body = envelope([load("feed-change-comment-add.json")], RECORDED_PAGE)
    assert await first.put(SOURCE, body, datetime(2026, 11, 25, 20, 0, tzinfo=UTC))
    await first.close()  # the service died before the reader ran

    again = await Spool(path).open()
    try:
        rig = await make_rig(page_id=RECORDED_PAGE, spool=SpoolPort(again, SOURCE))
        await until(lambda: len(content(rig.sink)) == 1)
        await until(lambda: again.depth() == 0)
    finally:
        await again.close()


async def _no_wait(_seconds: float) -> None:
    await asyncio.sleep(0)
