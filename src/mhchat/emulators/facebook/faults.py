"""Fault injection for the Facebook emulator: Graph errors, rate limits with usage headers, 5xx,
hangs and dropped connections, and an expired Page token."""

from __future__ import annotations

import json
from collections.abc import Iterable

from aiohttp import web

from mhchat.emulators.facebook.content import FacebookContent
from mhchat.emulators.facebook.model import RATE_LIMIT_MESSAGES, GraphFailure, _Fault


class FacebookFaults(FacebookContent):
    """Faults queued for the next matching request."""

    def fail_next(
        self,
        code: int,
        *,
        status: int = 400,
        subcode: int | None = None,
        message: str | None = None,
        headers: dict[str, str] | None = None,
        methods: Iterable[str] = ("POST",),
    ) -> None:
        """The next matching request answers this Graph error (before any effect)."""
        text = message or RATE_LIMIT_MESSAGES.get(code, f"(#{code}) Emulated error")
        body = GraphFailure(status, code, text, subcode).body()
        self._faults.append(_Fault(frozenset(methods), "error", status, body, dict(headers or {})))

    def rate_limit_next(
        self, code: int = 80001, *, minutes: int = 5, methods: Iterable[str] = ("POST", "GET")
    ) -> None:
        """A rate-limit error with usage headers saying when access comes back."""
        usage = {"type": "pages", "call_count": 100, "total_cputime": 20, "total_time": 20}
        usage["estimated_time_to_regain_access"] = minutes
        headers = {
            "x-business-use-case-usage": json.dumps({self.page.id: [usage]}),
            "x-app-usage": json.dumps({"call_count": 100, "total_cputime": 20, "total_time": 20}),
        }
        self.fail_next(
            code, subcode=2446079 if code >= 80000 else None, headers=headers, methods=methods
        )

    def server_error_next(self, status: int = 500, *, graph_body: bool = True) -> None:
        """A 5xx: with Graph's code 2 body, or a bare gateway error without one."""
        body = GraphFailure(status, 2, "Service temporarily unavailable").body()
        self._faults.append(
            _Fault(frozenset({"GET", "POST"}), "error", status, body if graph_body else None)
        )

    def timeout_next(self, *, after_effect: bool) -> None:
        """The next write hangs, before or after it takes effect."""
        mode = "hang_after" if after_effect else "hang_before"
        self._faults.append(_Fault(frozenset({"POST"}), mode))

    def reset_next(self, *, after_effect: bool = False) -> None:
        mode = "reset_after" if after_effect else "reset_before"
        self._faults.append(_Fault(frozenset({"GET", "POST"}), mode))

    def expire_token(self) -> None:
        self.token_expired = True

    def _take_fault(self, method: str) -> _Fault | None:
        for index, fault in enumerate(self._faults):
            if method in fault.methods:
                return self._faults.pop(index)
        return None

    async def _misbehave(self, request: web.Request, fault: _Fault) -> web.StreamResponse:
        if fault.mode.startswith("hang"):
            await self._release.wait()
        elif request.transport is not None:
            request.transport.abort()
        return web.Response(status=504)
