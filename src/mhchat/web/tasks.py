"""Named, tracked background tasks of the running service."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any

import structlog

from mhchat.runtime import Runtime

log = structlog.get_logger("mhchat.app")


def spawn(runtime: Runtime, name: str, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
    """Start a named, tracked task whose failure is logged, never lost."""
    task = asyncio.create_task(coro, name=name)
    runtime.tasks[name] = task

    def done(t: asyncio.Task[None]) -> None:
        runtime.tasks.pop(name, None)
        if not t.cancelled() and t.exception() is not None:
            runtime.errors.append(f"{name}: {type(t.exception()).__name__}")
            log.error("task_failed", task=name, exc_info=t.exception())

    task.add_done_callback(done)
    return task


async def cancel_tasks(runtime: Runtime, prefix: str) -> None:
    """Cancel every tracked task whose name starts with ``prefix`` and wait for them."""
    tasks = [t for n, t in list(runtime.tasks.items()) if n.startswith(prefix)]
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
