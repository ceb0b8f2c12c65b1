"""Fault injection for the Bluesky emulator: XRPC errors, 429s, dropped connections, hangs and
slow answers, queued per NSID (``"*"`` for any)."""

from __future__ import annotations

from aiohttp import web

from mhchat.emulators.bluesky.appview import BlueskyAppview
from mhchat.emulators.bluesky.model import XrpcError, _Fault
from mhchat.emulators.common import misbehave_before


class BlueskyFaults(BlueskyAppview):
    """Faults queued per NSID, applied when a call arrives."""

    def fail_next(
        self,
        nsid: str,
        *,
        status: int = 500,
        error: str = "InternalServerError",
        message: str = "Internal Server Error",
        headers: dict[str, str] | None = None,
        times: int = 1,
    ) -> None:
        """The next ``times`` calls of ``nsid`` ("*" for any) fail before doing anything."""
        self._add_fault(nsid, _Fault("fail", times, status, error, message, headers or {}))

    def rate_limit_next(self, nsid: str, *, reset_in: float = 60.0, times: int = 1) -> None:
        reset = int(self.clock.now().timestamp() + reset_in)
        headers = {
            "RateLimit-Limit": "5000",
            "RateLimit-Remaining": "0",
            "RateLimit-Reset": str(reset),
            "RateLimit-Policy": "5000;w=3600",
        }
        self.fail_next(
            nsid,
            status=429,
            error="RateLimitExceeded",
            message="Rate Limit Exceeded",
            headers=headers,
            times=times,
        )

    def reset_connection_next(self, nsid: str, *, times: int = 1) -> None:
        self._add_fault(nsid, _Fault("reset", times))

    def hang_next(self, nsid: str, *, after_write: bool, times: int = 1) -> None:
        """Never answer the next call; with ``after_write`` its write takes effect first."""
        self._add_fault(nsid, _Fault("hang_after" if after_write else "hang_before", times))

    def slow_next(self, nsid: str, seconds: float, *, times: int = 1) -> None:
        self._add_fault(nsid, _Fault("slow", times, seconds=seconds))

    async def _apply_fault_before(self, request: web.Request, fault: _Fault) -> None:
        if fault.kind == "fail":
            raise XrpcError(fault.status, fault.error, fault.message, fault.headers)
        await misbehave_before(request, fault, self._hang)

    async def _hang(self) -> None:
        await self._stopping.wait()
        raise XrpcError(503, "ServiceUnavailable", "shutting down")

    def _add_fault(self, nsid: str, fault: _Fault) -> None:
        self._faults.add(nsid, fault)

    def _take_fault(self, nsid: str) -> _Fault | None:
        return self._faults.take(nsid)
