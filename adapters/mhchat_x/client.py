"""A thin aiohttp client for X API v2 that turns every outcome into a typed error.

- connection refused / connect timeout: the request never left -> ``TransientFailure``
- a read timeout or a dropped connection on a write: it may have landed -> ``OutcomeUnknown``
- 401: one renewal attempt (OAuth 2.0 refresh), then ``AuthExpired``; the credential is then
  marked expired and not used again until a restart
- 429: ``RateLimited`` with ``retry_at`` from the reset headers
- 403 for the reply rule: ``NotAllowed``; other 4xx: ``PermanentFailure``;
  5xx: ``TransientFailure``
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp
import orjson
import structlog
from yarl import URL

from mhchat.clock import Clock
from mhchat.errors import (
    AuthExpired,
    NotAllowed,
    OutcomeUnknown,
    PermanentFailure,
    RateLimited,
    TransientFailure,
)
from mhchat.events import HealthStatus
from mhchat_x.auth import Credential
from mhchat_x.ratelimit import RateBook, reset_of
from mhchat_x.status import HealthBoard

REPLY_RULE_MARKERS = (
    "reply to this conversation is not allowed",
    "not been mentioned or otherwise engaged",
)
USER_AGENT = "mhchat-x/1"


def problem_detail(body: Any) -> str:
    """The human part of an X error body (problem+json, or the older ``errors`` list)."""
    if isinstance(body, dict):
        for key in ("detail", "title", "error_description"):
            if isinstance(body.get(key), str):
                return str(body[key])
        errors = body.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            first = errors[0]
            return str(first.get("detail") or first.get("message") or first.get("title") or "")
    return ""


def problem_type(body: Any) -> str:
    if isinstance(body, dict) and isinstance(body.get("type"), str):
        return str(body["type"]).rsplit("/", 1)[-1]
    return ""


class XClient:
    def __init__(
        self,
        *,
        http: aiohttp.ClientSession,
        api_base: str,
        timeout: float,
        clock: Clock,
        log: structlog.typing.FilteringBoundLogger,
        ratebook: RateBook,
        board: HealthBoard,
    ) -> None:
        self.http = http
        self.api_base = api_base.rstrip("/")
        self.timeout = timeout
        self.clock = clock
        self.log = log
        self.ratebook = ratebook
        self.board = board
        self.expired: set[str] = set()

    def url(self, path: str, params: Mapping[str, str] | None = None) -> str:
        url = self.api_base + path
        if params:
            url += "?" + urlencode(params, quote_via=quote, safe="")
        return url

    def check_usable(self, cred: Credential, endpoint: str) -> None:
        if cred.name in self.expired:
            raise AuthExpired(f"the X {cred.name} credential expired; renew it and restart")
        blocked = self.ratebook.blocked_until(endpoint, self.clock.now())
        if blocked is not None:
            raise RateLimited(f"X rate limit for {endpoint} is used up", retry_at=blocked)

    def mark_expired(self, cred: Credential, why: str) -> None:
        self.expired.add(cred.name)
        self.board.set(f"auth:{cred.name}", HealthStatus.AUTH_EXPIRED, why)
        self.log.warning("x_auth_expired", credential=cred.name)

    async def request(
        self,
        method: str,
        path: str,
        *,
        endpoint: str,
        cred: Credential,
        params: Mapping[str, str] | None = None,
        body: Mapping[str, Any] | None = None,
        write: bool = False,
    ) -> dict[str, Any]:
        """Call X once (twice after a renewable 401) and return the JSON body of a 2xx."""
        self.check_usable(cred, endpoint)
        url = self.url(path, params)
        for attempt in (1, 2):
            try:
                authorization = await cred.authorization(method, url)
            except AuthExpired:
                self.mark_expired(cred, self._expired_sentence(cred))
                raise
            status, headers, payload = await self._send(method, url, authorization, body, write)
            self.ratebook.observe(endpoint, headers)
            if status == 401:
                if attempt == 1 and await self._renew(cred, authorization):
                    continue
                self.mark_expired(cred, self._expired_sentence(cred))
                raise AuthExpired(f"X answered 401 for {endpoint}")
            return self._result(status, headers, payload, endpoint)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _renew(self, cred: Credential, used: str) -> bool:
        try:
            return await cred.renew(used)
        except AuthExpired:
            return False

    def _expired_sentence(self, cred: Credential) -> str:
        if cred.name == "app":
            return "X rejected the app bearer token (401): renew MHCHAT_X_BEARER_TOKEN"
        return "X rejected the host account's user credentials (401): authorise the app again"

    async def _send(
        self,
        method: str,
        url: str,
        authorization: str,
        body: Mapping[str, Any] | None,
        write: bool,
    ) -> tuple[int, Mapping[str, str], Any]:
        headers = {
            "Authorization": authorization,
            "User-Agent": USER_AGENT,
        }
        data: bytes | None = None
        if body is not None:
            headers["Content-Type"] = "application/json"
            data = orjson.dumps(body)
        try:
            async with self.http.request(
                method,
                URL(url, encoded=True),
                headers=headers,
                data=data,
                timeout=aiohttp.ClientTimeout(total=self.timeout),
            ) as resp:
                raw = await resp.read()
                resp_headers = {k.lower(): v for k, v in resp.headers.items()}
                status = resp.status
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
            raise TransientFailure(f"could not reach X: {type(exc).__name__}") from exc
        except (TimeoutError, aiohttp.ClientError) as exc:
            if write:
                raise OutcomeUnknown(
                    f"X did not answer a write ({type(exc).__name__}); it may have taken effect"
                ) from exc
            raise TransientFailure(f"X read failed: {type(exc).__name__}") from exc
        try:
            payload: Any = orjson.loads(raw) if raw else {}
        except orjson.JSONDecodeError:
            payload = {}
        return status, resp_headers, payload

    def _result(
        self, status: int, headers: Mapping[str, str], payload: Any, endpoint: str
    ) -> dict[str, Any]:
        if 200 <= status < 300:
            return payload if isinstance(payload, dict) else {}
        detail = problem_detail(payload)
        self.log.info("x_http_error", endpoint=endpoint, status=status, kind=problem_type(payload))
        if status == 429:
            retry_at = reset_of(headers) or self.clock.now() + timedelta(seconds=60)
            self.ratebook.exhaust(endpoint, retry_at)
            raise RateLimited(f"X rate limit hit on {endpoint}", retry_at=retry_at)
        if status == 403:
            lowered = detail.lower()
            if any(marker in lowered for marker in REPLY_RULE_MARKERS):
                raise NotAllowed(
                    "X allows replies only to posts that @mention or quote the host: " + detail
                )
            if problem_type(payload) in {"usage-capped", "client-forbidden"}:
                raise NotAllowed(f"X refused {endpoint} for this app: {detail}")
            raise PermanentFailure(f"X refused {endpoint} (403): {detail}")
        if status >= 500:
            raise TransientFailure(f"X failed on {endpoint} with HTTP {status}")
        raise PermanentFailure(f"X refused {endpoint} (HTTP {status}): {detail}")
