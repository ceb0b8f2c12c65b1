"""The XRPC side: one SDK ``AsyncClient`` with a reused session, budgets and typed errors.

createSession is limited to about 30 calls per 5 minutes and 300 per day per account, so the
session string is saved to adapter state on every change (create, refresh) and imported at start.
An expired access token is refreshed (refreshSession); only when that fails does the adapter log
in again with the app password, and a refused password is not retried until restart.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import orjson
import structlog
from atproto_client import AsyncClient  # type: ignore[import-untyped]
from atproto_client import exceptions as sdk
from atproto_client.request import AsyncRequest  # type: ignore[import-untyped]

from mhchat.adapters import KeyValueState
from mhchat.clock import Clock
from mhchat.errors import AdapterError, AuthExpired, RateLimited

from .budget import RateBudget
from .config import BlueskyConfig
from .failure import is_token_error, map_error, xrpc_error

T = TypeVar("T")
SESSION_KEY = "session"
_WRITES = frozenset(
    {
        "com.atproto.repo.createRecord",
        "com.atproto.repo.putRecord",
        "com.atproto.repo.deleteRecord",
        "com.atproto.repo.applyWrites",
    }
)


def scope_of(url: str) -> str:
    nsid = url.split("?", 1)[0].rsplit("/", 1)[-1]
    if nsid == "com.atproto.server.createSession":
        return "session"
    return "write" if nsid in _WRITES else "read"


class _HeaderTap(AsyncRequest):  # type: ignore[misc]
    """The SDK's request layer, also handing every answer's headers to ``on_headers``."""

    def __init__(
        self, on_headers: Callable[[str, Mapping[str, str]], None], **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self._on_headers = on_headers

    def _new_instance(self) -> _HeaderTap:
        return type(self)(self._on_headers, **self._client_kwargs)

    async def _send_request(self, method: str, url: str, **kwargs: Any) -> Any:
        try:
            response = await super()._send_request(method, url, **kwargs)
        except sdk.RequestErrorBase as exc:
            if exc.response is not None:
                self._on_headers(url, exc.response.headers)
            raise
        self._on_headers(url, {k.lower(): v for k, v in response.headers.items()})
        return response


class BlueskyClient:
    """Authenticated calls with session reuse, budget checks and error mapping."""

    def __init__(
        self,
        config: BlueskyConfig,
        *,
        state: KeyValueState,
        clock: Clock,
        log: structlog.typing.FilteringBoundLogger,
    ) -> None:
        self.config = config
        self._state = state
        self._clock = clock
        self._log = log
        self.budget = RateBudget(
            clock,
            per_hour=config.points_per_hour,
            per_day=config.points_per_day,
            reserve=config.points_reserve,
        )
        timeout = config.request_timeout_seconds
        self.sdk: Any = AsyncClient(
            base_url=config.service_url, request=_HeaderTap(self._observe, timeout=timeout)
        )
        self.sdk.on_session_change(self._session_changed)
        self.search: Any = self.sdk
        if not config.search_via_pds:
            self.search = AsyncClient(
                base_url=config.search_url, request=_HeaderTap(self._observe, timeout=timeout)
            )
        self.did: str | None = None
        self.handle: str | None = None
        self.auth_problem: str | None = None
        self._password_refused = False
        self._lock = asyncio.Lock()
        self.logins = 0

    # ----------------------------------------------------------------- session

    def _observe(self, url: str, headers: Mapping[str, str]) -> None:
        self.budget.observe(scope_of(url), headers)

    async def _session_changed(self, event: Any, session: Any) -> None:
        self.did, self.handle = str(session.did), str(session.handle)
        value = {
            "service": self.config.service_url,
            "handle": self.config.handle,
            "session": session.export(),
        }
        await self._state.set(SESSION_KEY, orjson.dumps(value).decode())
        self._log.info("bluesky.session_saved", session_event=str(event.value), did=self.did)

    async def open(self) -> None:
        """Import the saved session (or log in) and check it with getSession. Never raises."""
        try:
            if await self._import_saved():
                await self.call("getSession", self.sdk.com.atproto.server.get_session)
            else:
                await self._login()
        except AdapterError as exc:
            self._log.warning("bluesky.auth_failed", error=type(exc).__name__)

    async def _import_saved(self) -> bool:
        raw = await self._state.get(SESSION_KEY)
        if not raw:
            return False
        try:
            saved = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return False
        if saved.get("service") != self.config.service_url:
            return False
        if saved.get("handle") != self.config.handle:
            return False
        await self.sdk.login(session_string=saved["session"], fetch_bsky_profile=False)
        return True

    async def ensure_session(self) -> str:
        """The host's DID, logging in first if there is no session yet."""
        if self.did is None:
            await self._login()
        if self.did is None:  # pragma: no cover - login sets it through the session callback
            raise AuthExpired("no Bluesky session")
        return self.did

    async def _login(self) -> None:
        if self._password_refused:
            raise AuthExpired(self.auth_problem or "Bluesky refused the app password")
        self.budget.check_blocked("session")
        self.logins += 1
        try:
            await self.sdk.login(
                self.config.handle, self.config.app_password, fetch_bsky_profile=False
            )
        except Exception as exc:
            err = self._mapped(exc, "session", write=False, what="createSession")
            if isinstance(err, AuthExpired):
                self._password_refused = True
            raise err from exc
        self.auth_problem = None

    def _access_token(self) -> str | None:
        session = self.sdk._session  # the SDK has no public accessor for the current token
        return str(session.access_jwt) if session is not None else None

    async def _renew(self, refused: str | None) -> None:
        """Refresh the session; log in again only if the refresh token is refused too."""
        async with self._lock:
            if refused is not None and self._access_token() != refused:
                return  # another call renewed it while this one waited
            try:
                # The SDK refreshes on its own only by the token's exp; a token the PDS
                # refuses earlier (revoked, clock skew) needs this explicit refresh.
                await self.sdk._refresh_and_set_session()
            except Exception as exc:
                if not (is_token_error(exc) or isinstance(exc, sdk.UnauthorizedError)):
                    raise self._mapped(exc, "read", write=False, what="refreshSession") from exc
                self._log.info("bluesky.refresh_refused", error=xrpc_error(exc)[1])
                await self._login()

    def _mapped(self, exc: BaseException, scope: str, *, write: bool, what: str) -> AdapterError:
        err = map_error(exc, write=write, what=what, now=self._clock.now())
        if isinstance(err, RateLimited):
            until = self.budget.limited(scope, err.retry_at)
            return RateLimited(str(err), retry_at=until)
        if isinstance(err, AuthExpired):
            self.auth_problem = str(err)
        return err

    # ------------------------------------------------------------------- calls

    async def call(
        self,
        what: str,
        fn: Callable[[], Awaitable[T]],
        *,
        write: str | None = None,
        search: bool = False,
    ) -> T:
        """Run one XRPC call. ``write`` is the repo operation (create/update/delete) if any."""
        scope = "write" if write else "read"
        self.budget.check_blocked(scope)
        if write:
            self.budget.check_points(write)
        anonymous = search and self.search is not self.sdk
        if not anonymous and self.did is None:
            await self._login()
        for attempt in (1, 2):
            token = None if anonymous else self._access_token()
            try:
                result = await fn()
            except Exception as exc:
                if attempt == 1 and not anonymous and is_token_error(exc):
                    # Refused for its token, so it had no effect: safe to send again.
                    await self._renew(token)
                    continue
                raise self._mapped(exc, scope, write=write is not None, what=what) from exc
            if write:
                self.budget.spend(write)
            if not anonymous:
                self.auth_problem = None
            return result
        raise AssertionError("unreachable")  # pragma: no cover

    async def close(self) -> None:
        await self.sdk.request.close()
        if self.search is not self.sdk:
            await self.search.request.close()
