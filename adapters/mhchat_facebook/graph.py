"""A thin async Graph API client on the shared aiohttp session.

Why not ``facebook-sdk``: it is synchronous (requests), accepts only Graph versions 2.8 to 3.1
and fails to import when warnings are errors on Python 3.12. This client pins a current version
from settings, sends the Page token in the ``Authorization`` header (never in a URL that might
be logged), adds ``appsecret_proof``, reads the usage headers into budgets and turns Graph error
codes into mhchat's typed errors.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import aiohttp
import structlog

from mhchat.clock import Clock
from mhchat.errors import (
    AdapterError,
    AuthExpired,
    OutcomeUnknown,
    PermanentFailure,
    RateLimited,
    TransientFailure,
)
from mhchat.events import Budget
from mhchat_facebook import json_text
from mhchat_facebook.config import FacebookConfig

RATE_LIMIT_CODES = frozenset({4, 17, 32, 341, 613})
"""App (4), user (17), page (32), application limit (341), custom rate (613)."""
TRANSIENT_CODES = frozenset({1, 2})
AUTH_CODES = frozenset({102, 190})
_ID = re.compile(r"^[A-Za-z0-9_]+$")
_USAGE_HEADERS = {"x-app-usage": "app", "x-page-usage": "page", "x-ad-account-usage": "ad"}


def is_rate_limit_code(code: int) -> bool:
    # 80001..80099 are the Business Use Case limits (80001 = Pages).
    return code in RATE_LIMIT_CODES or 80000 <= code <= 80099


def object_path(*parts: str) -> str:
    """Join Graph ids into a path, refusing anything that is not a plain id."""
    for part in parts:
        if not _ID.match(part):
            raise PermanentFailure(f"not a Facebook object id: {part[:40]!r}")
    return "/".join(parts)


class ObjectMissing(PermanentFailure):
    """Graph code 100, subcode 33: the object does not exist (deleted, or never visible)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class GraphError:
    status: int
    code: int | None
    subcode: int | None
    message: str
    fbtrace_id: str | None


def parse_error(status: int, body: object) -> GraphError:
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return GraphError(status=status, code=None, subcode=None, message="", fbtrace_id=None)

    def _int(value: object) -> int | None:
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    return GraphError(
        status=status,
        code=_int(error.get("code")),
        subcode=_int(error.get("error_subcode")),
        message=str(error.get("message", ""))[:300],
        fbtrace_id=str(error["fbtrace_id"]) if "fbtrace_id" in error else None,
    )


def _json_header(headers: Mapping[str, str], name: str) -> object:
    raw = headers.get(name)
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None


def _usage_entries(headers: Mapping[str, str]) -> list[tuple[str, dict[str, Any]]]:
    """(budget name, usage dict) for every usage header present."""
    found: list[tuple[str, dict[str, Any]]] = []
    for header, name in _USAGE_HEADERS.items():
        data = _json_header(headers, header)
        if isinstance(data, dict):
            found.append((name, data))
    buc = _json_header(headers, "x-business-use-case-usage")
    if isinstance(buc, dict):
        for entries in buc.values():
            for entry in entries if isinstance(entries, list) else []:
                if isinstance(entry, dict):
                    found.append((f"buc:{entry.get('type', 'unknown')}", entry))
    return found


def _pct(value: object) -> int:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0


def usage_budgets(headers: Mapping[str, str], now: datetime) -> dict[str, Budget]:
    """Usage headers are percentages of a rolling window: remaining = 100 - highest use."""
    budgets: dict[str, Budget] = {}
    for name, usage in _usage_entries(headers):
        used = max(_pct(usage.get(k)) for k in ("call_count", "total_cputime", "total_time"))
        minutes = _pct(usage.get("estimated_time_to_regain_access"))
        budgets[name] = Budget(
            limit=100,
            remaining=max(0, 100 - used),
            resets_at=now + timedelta(minutes=minutes) if minutes > 0 else None,
        )
    return budgets


def retry_at(headers: Mapping[str, str], now: datetime) -> datetime | None:
    """When Meta says calls will work again: usage headers (minutes) or Retry-After."""
    candidates = [b.resets_at for b in usage_budgets(headers, now).values() if b.resets_at]
    after = headers.get("Retry-After", "")
    if after.strip().isdigit():
        candidates.append(now + timedelta(seconds=int(after.strip())))
    return max(candidates) if candidates else None


def to_adapter_error(  # noqa: PLR0911 - one return per error family reads best
    error: GraphError, headers: Mapping[str, str], *, write: bool, now: datetime
) -> AdapterError:
    """Map a Graph error response to the typed error tree."""
    code = error.code
    label = f"Graph error {code}/{error.subcode} (HTTP {error.status}): {error.message}"
    if code is not None and is_rate_limit_code(code):
        return RateLimited(label, retry_at=retry_at(headers, now))
    if code in AUTH_CODES:
        return AuthExpired(label + " - renew the Page access token")
    if code in TRANSIENT_CODES:
        return TransientFailure(label)
    if code is not None and (code == 10 or 200 <= code <= 299):
        return PermanentFailure(label + " - the token lacks a permission or Page task")
    if code == 100 and error.subcode == 33:
        return ObjectMissing(label)
    if error.status == 429:
        return RateLimited(label, retry_at=retry_at(headers, now))
    if code is None and error.status >= 500:
        # A gateway error carries no Graph body: a write may or may not have happened.
        return OutcomeUnknown(label) if write else TransientFailure(label)
    if error.status >= 500:
        return TransientFailure(label)
    return PermanentFailure(label)


class GraphClient:
    """Graph calls for one Page token. Keeps the latest budgets and the token's last verdict."""

    def __init__(
        self,
        *,
        http: aiohttp.ClientSession,
        config: FacebookConfig,
        clock: Clock,
        log: structlog.typing.FilteringBoundLogger,
    ) -> None:
        self._http = http
        self._config = config
        self._clock = clock
        self._log = log
        self.budgets: dict[str, Budget] = {}
        self.rate_limited_until: datetime | None = None
        self.auth_problem: str | None = None
        self._timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=config.connect_timeout, sock_read=config.request_timeout
        )
        token = config.page_access_token
        self._proof = hmac.new(
            config.app_secret.encode(), token.encode(), hashlib.sha256
        ).hexdigest()

    def _url(self, path: str) -> str:
        return f"{self._config.graph_url}/{self._config.graph_version}/{path}"

    def _auth(self, params: dict[str, str]) -> dict[str, str]:
        if self._config.appsecret_proof:
            params = {**params, "appsecret_proof": self._proof}
        return params

    async def get(self, path: str, params: Mapping[str, str] | None = None) -> dict[str, Any]:
        return await self._call("GET", path, dict(params or {}), write=False)

    async def post(self, path: str, data: Mapping[str, str]) -> dict[str, Any]:
        return await self._call("POST", path, dict(data), write=True)

    async def _call(
        self, method: str, path: str, fields: dict[str, str], *, write: bool
    ) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {self._config.page_access_token}"}
        fields = self._auth(fields)
        kwargs: dict[str, Any] = {"data": fields} if write else {"params": fields}
        limit = self._config.request_timeout + self._config.connect_timeout + 1.0
        try:
            async with (
                asyncio.timeout(limit),
                self._http.request(
                    method, self._url(path), headers=headers, timeout=self._timeout, **kwargs
                ) as resp,
            ):
                status = resp.status
                resp_headers = dict(resp.headers)
                raw = await resp.read()
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
            raise TransientFailure(f"Graph unreachable: {type(exc).__name__}") from exc
        except (TimeoutError, aiohttp.ClientError) as exc:
            # The request may have left: a write's effect is unknown from here on.
            reason = f"Graph call interrupted after sending: {type(exc).__name__}"
            if write:
                raise OutcomeUnknown(reason) from exc
            raise TransientFailure(reason) from exc
        return self._handle(status, resp_headers, raw, write=write, path=path)

    def _handle(
        self, status: int, headers: Mapping[str, str], raw: bytes, *, write: bool, path: str
    ) -> dict[str, Any]:
        now = self._clock.now()
        lowered = {k.lower(): v for k, v in headers.items()}
        self.budgets.update(usage_budgets(lowered, now))
        try:
            body: object = json_text.loads(raw) if raw else None
        except (ValueError, RecursionError):
            body = None
        if status >= 400 or (isinstance(body, dict) and "error" in body):
            error = parse_error(status, body)
            exc = to_adapter_error(error, lowered, write=write, now=now)
            self._log.warning(
                "graph_error",
                endpoint=path.rsplit("/", maxsplit=1)[-1],
                status=status,
                code=error.code,
                subcode=error.subcode,
                fbtrace_id=error.fbtrace_id,
                error=type(exc).__name__,
            )
            if isinstance(exc, RateLimited):
                self.rate_limited_until = exc.retry_at or now + timedelta(minutes=1)
            if isinstance(exc, AuthExpired):
                self.auth_problem = str(exc)
            raise exc
        if not isinstance(body, dict):
            message = f"Graph answered HTTP {status} without a JSON object"
            raise OutcomeUnknown(message) if write else TransientFailure(message)
        self.rate_limited_until = None
        self.auth_problem = None
        return body

    async def whoami(self) -> dict[str, Any]:
        """``/me`` as the token sees itself: the Page for a Page token, a person otherwise."""
        return await self.get("me", {"fields": "id,name"})
