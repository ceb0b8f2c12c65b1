"""A service process keeps its long-lived heap out of the garbage collector's full passes."""

from __future__ import annotations

import gc

from aiohttp import web

from mhchat.service import freeze_heap_after_start


async def test_the_heap_alive_at_start_is_frozen() -> None:
    app = web.Application()
    freeze_heap_after_start(app)
    gc.unfreeze()
    assert gc.get_freeze_count() == 0
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        assert gc.get_freeze_count() > 10_000
    finally:
        gc.unfreeze()  # this test process builds many apps: give their objects back
        await runner.cleanup()
