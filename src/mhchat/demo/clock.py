"""A clock that runs faster than real time, for the demo's compressed chat.

``SpeedClock`` maps real (monotonic) time to virtual time: ``virtual = anchor + elapsed *
speed``. The speed can change while the service runs (the demo boots at speed 1, then
compresses the chat); ``sleep`` waits for a virtual deadline and re-reads the speed when it
changes, so a task that started a long sleep at speed 1 wakes at the right virtual instant.

Only waits made through the clock are compressed. Network timeouts (``asyncio.timeout``,
aiohttp's) stay in real seconds, so a compressed hour never turns a 10 s request timeout into
17 ms; settings the adapters measure with the clock (a stream's stall timer, poll cadences) are
given in virtual seconds by the demo's configuration.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta

from mhchat.clock import ensure_utc


class SpeedClock:
    """Virtual time starting at ``start`` and running ``speed`` times faster than real time."""

    def __init__(self, start: datetime, speed: float = 1.0) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self._anchor_virtual = ensure_utc(start)
        self._anchor_real = time.monotonic()
        self._speed = float(speed)
        self._changed = asyncio.Event()

    @property
    def speed(self) -> float:
        return self._speed

    def now(self) -> datetime:
        elapsed = time.monotonic() - self._anchor_real
        return self._anchor_virtual + timedelta(seconds=elapsed * self._speed)

    def set_speed(self, speed: float) -> None:
        """Change the speed from now on; virtual time stays continuous."""
        if speed <= 0:
            raise ValueError("speed must be positive")
        self._anchor_virtual = self.now()
        self._anchor_real = time.monotonic()
        self._speed = float(speed)
        waiting, self._changed = self._changed, asyncio.Event()
        waiting.set()

    def real_seconds(self, virtual_seconds: float) -> float:
        """How long ``virtual_seconds`` take in real time at the current speed."""
        return max(0.0, virtual_seconds) / self._speed

    async def sleep(self, seconds: float) -> None:
        await self.sleep_until(self.now() + timedelta(seconds=max(0.0, seconds)))

    async def sleep_until(self, when: datetime) -> None:
        """Wait until virtual time reaches ``when`` (returns at once if it has)."""
        target = ensure_utc(when)
        while True:
            left = (target - self.now()).total_seconds()
            if left <= 0:
                # Yield once anyway: a zero sleep in a loop must not starve the event loop.
                await asyncio.sleep(0)
                return
            changed = self._changed
            try:
                async with asyncio.timeout(left / self._speed):
                    await changed.wait()
            except TimeoutError:
                pass
