"""Fault injection for the X emulator: errors, 429s, dropped connections, hangs, slow answers."""

from __future__ import annotations

from aiohttp import web

from mhchat.emulators.common import ConnectionDropped, misbehave_before
from mhchat.emulators.x.limits import XLimits
from mhchat.emulators.x.model import XApiError, _Fault


class XFaults(XLimits):
    """Faults queued per endpoint (``"*"`` for any), applied when a call arrives."""

    def fail_next(self, endpoint: str, *, status: int = 503, times: int = 1) -> None:
        """The next ``times`` calls of ``endpoint`` ("*" for any) fail with ``status``."""
        self._faults.add(endpoint, _Fault("fail", times, status=status))

    def rate_limit_next(self, endpoint: str, *, reset_in: float = 60.0, times: int = 1) -> None:
        self._faults.add(endpoint, _Fault("429", times, reset_in=reset_in))

    def reset_connection_next(self, endpoint: str, *, times: int = 1) -> None:
        """Drop the connection before the call has any effect."""
        self._faults.add(endpoint, _Fault("reset", times))

    def hang_next(self, endpoint: str, *, after_write: bool, times: int = 1) -> None:
        """Never answer; with ``after_write`` the call takes effect first."""
        kind = "hang_after" if after_write else "hang_before"
        self._faults.add(endpoint, _Fault(kind, times))

    def slow_next(self, endpoint: str, seconds: float, *, times: int = 1) -> None:
        self._faults.add(endpoint, _Fault("slow", times, seconds=seconds))

    def calls(self, endpoint: str, method: str | None = None) -> int:
        """How many requests for ``endpoint`` arrived (answered or not yet)."""
        return sum(
            n for (e, m), n in self._arrivals.items() if e == endpoint and method in (None, m)
        )

    async def _fault_before(self, request: web.Request, fault: _Fault) -> None:
        if fault.kind == "fail":
            raise XApiError(fault.status, "Service Unavailable", "Service Unavailable")
        if fault.kind == "429":
            reset = int(self.clock.now().timestamp() + fault.reset_in)
            exc = XApiError(429, "Too Many Requests", "Too Many Requests")
            exc.headers = {
                "x-rate-limit-limit": "50",
                "x-rate-limit-remaining": "0",
                "x-rate-limit-reset": str(reset),
            }
            raise exc
        await misbehave_before(request, fault, self._hang)

    async def _hang(self) -> None:
        """Hold the request until the emulator stops; the client times out first."""
        await self._stopping.wait()
        raise ConnectionDropped

    def _take_fault(self, endpoint: str) -> _Fault | None:
        return self._faults.take(endpoint)
