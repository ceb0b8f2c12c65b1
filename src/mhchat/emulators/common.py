"""What the emulators share: serving an aiohttp app on a free port, and queued faults.

X and Bluesky inject faults the same way: a queue per endpoint (or ``"*"`` for any), each fault
firing ``times`` times in order, and the faults that happen before a call has any effect (a
dropped connection, a hang, a slow answer) behave alike. What differs between them, the error
bodies and how a hang ends, stays in each emulator.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, Protocol, TypeVar

from aiohttp import web


class ConnectionDropped(Exception):
    """The fault closed the socket: there is nobody to answer."""


class QueuedFault(Protocol):
    kind: str
    times: int
    seconds: float


FaultT = TypeVar("FaultT", bound=QueuedFault)


class FaultQueues(Generic[FaultT]):
    """Faults waiting per endpoint; ``"*"`` matches any endpoint after the endpoint's own."""

    def __init__(self) -> None:
        self._queues: dict[str, list[FaultT]] = {}

    def add(self, endpoint: str, fault: FaultT) -> None:
        self._queues.setdefault(endpoint, []).append(fault)

    def take(self, endpoint: str) -> FaultT | None:
        """The fault for this call, if any; it leaves the queue once its ``times`` are used."""
        for key in (endpoint, "*"):
            queue = self._queues.get(key)
            if queue:
                fault = queue[0]
                fault.times -= 1
                if fault.times <= 0:
                    queue.pop(0)
                return fault
        return None


async def misbehave_before(
    request: web.Request, fault: QueuedFault, hang: Callable[[], Awaitable[None]]
) -> None:
    """Apply a fault that strikes before the call has any effect: reset, hang or slow.

    Other kinds are left to the caller (they answer with the platform's own error body).
    """
    if fault.kind == "reset":
        if request.transport is not None:
            request.transport.abort()
        raise ConnectionDropped
    if fault.kind == "hang_before":
        await hang()
    if fault.kind == "slow":
        await asyncio.sleep(fault.seconds)


async def serve(
    app: web.Application, host: str, port: int, *, access_log: bool = False
) -> tuple[web.AppRunner, str]:
    """Start ``app`` on ``host:port`` (0 for a free port): the runner and the base URL."""
    if access_log:
        runner = web.AppRunner(app, shutdown_timeout=1.0)
    else:
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = runner.addresses[0][1]
    return runner, f"http://{host}:{bound}"
