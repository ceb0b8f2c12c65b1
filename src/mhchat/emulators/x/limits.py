"""X's rate limits: fixed windows per endpoint and caller, ``x-rate-limit-*`` headers, and the
24-hour ones on ``POST /2/tweets``."""

from __future__ import annotations

from mhchat.emulators.x.auth import XAuth
from mhchat.emulators.x.model import Principal, XApiError, _Window


class XLimits(XAuth):
    """Request windows per endpoint and caller; a used-up window answers 429."""

    def set_limit(self, endpoint: str, per_app: int, per_user: int | None = None) -> None:
        self.limits[endpoint] = (per_app, per_app if per_user is None else per_user)

    def _count(self, endpoint: str, principal: Principal) -> dict[str, str]:
        """Spend one request of the window; 429 when it is used up."""
        per_app, per_user = self.limits.get(endpoint, (900, 900))
        who = principal.user_id if principal.kind == "user" else "app"
        limit = per_user if principal.kind == "user" else per_app
        assert who is not None
        now = self.clock.now().timestamp()
        window = self._windows.setdefault((endpoint, who), _Window())
        if now >= window.start + self.window_seconds:
            window.start = now - (now % self.window_seconds)
            window.used = 0
        reset = int(window.start + self.window_seconds)
        headers = {"x-rate-limit-limit": str(limit), "x-rate-limit-reset": str(reset)}
        if endpoint == "create_tweet":
            headers |= self._day_headers(principal)
        if window.used >= limit:
            headers["x-rate-limit-remaining"] = "0"
            exc = XApiError(429, "Too Many Requests", "Too Many Requests")
            exc.headers = headers
            raise exc
        window.used += 1
        headers["x-rate-limit-remaining"] = str(limit - window.used)
        return headers

    def _day_headers(self, principal: Principal) -> dict[str, str]:
        now = self.clock.now().timestamp()
        out: dict[str, str] = {}
        for prefix, who, limit in (
            ("x-app-limit-24hour-", "app", 10_000),
            ("x-user-limit-24hour-", principal.user_id or "app", 10_000),
        ):
            window = self._day_windows.setdefault(("create_tweet", who), _Window())
            if now >= window.start + 86400:
                window.start, window.used = now, 0
            window.used += 1
            out[prefix + "limit"] = str(limit)
            out[prefix + "remaining"] = str(max(0, limit - window.used))
            out[prefix + "reset"] = str(int(window.start + 86400))
        return out
