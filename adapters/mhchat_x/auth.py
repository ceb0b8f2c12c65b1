"""Credentials: the app bearer token, OAuth 1.0a user context and OAuth 2.0 user context.

OAuth 1.0a requests are signed with authlib (HMAC-SHA1 over method, URL and query; X does not
sign JSON bodies). OAuth 2.0 access tokens last two hours; the refresh token rotates on every
use, so the new pair is saved in the adapter state before it is used.
"""

from __future__ import annotations

import asyncio
import base64
import json
from datetime import datetime, timedelta
from typing import Protocol

import aiohttp
from authlib.oauth1 import ClientAuth  # type: ignore[import-untyped]

from mhchat.adapters import KeyValueState
from mhchat.clock import Clock
from mhchat.errors import AuthExpired, TransientFailure

OAUTH2_STATE_KEY = "oauth2_tokens"


class Credential(Protocol):
    name: str
    """``app`` or ``user``: which health line an expiry belongs to."""

    async def authorization(self, method: str, url: str) -> str:
        """The Authorization header value for this exact request."""
        ...

    async def renew(self, used: str) -> bool:
        """After a 401 for header ``used``: get a fresh credential; True when a retry may work."""
        ...


class AppBearer:
    """App-only OAuth 2.0 bearer token (reads, the stream and its rules)."""

    name = "app"

    def __init__(self, token: str) -> None:
        self._token = token

    async def authorization(self, method: str, url: str) -> str:
        return f"Bearer {self._token}"

    async def renew(self, used: str) -> bool:
        return False


class OAuth1User:
    """OAuth 1.0a user context: consumer key/secret plus the host's access token/secret."""

    name = "user"

    def __init__(self, api_key: str, api_secret: str, token: str, token_secret: str) -> None:
        self._auth = ClientAuth(
            api_key, client_secret=api_secret, token=token, token_secret=token_secret
        )

    async def authorization(self, method: str, url: str) -> str:
        # The body is left out of the signature, as X expects for JSON requests.
        _, headers, _ = self._auth.sign(method, url, {}, b"")
        return str(headers["Authorization"])

    async def renew(self, used: str) -> bool:
        return False


class OAuth2User:
    """OAuth 2.0 user access token with refresh-token rotation kept in adapter state."""

    name = "user"

    def __init__(
        self,
        *,
        http: aiohttp.ClientSession,
        state: KeyValueState,
        clock: Clock,
        token_url: str,
        client_id: str,
        client_secret: str | None,
        access_token: str | None,
        refresh_token: str | None,
        timeout: float,
    ) -> None:
        self._http = http
        self._state = state
        self._clock = clock
        self._token_url = token_url
        self._client_id = client_id
        self._client_secret = client_secret
        self._access = access_token
        self._refresh = refresh_token
        self._expires_at: datetime | None = None
        self._timeout = timeout
        self._loaded = False
        self._lock = asyncio.Lock()
        self.refreshes = 0

    async def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        saved = await self._state.get(OAUTH2_STATE_KEY)
        if not saved:
            return
        try:
            data = json.loads(saved)
        except ValueError:
            return
        # Saved tokens are newer than the environment's: the refresh token rotates.
        self._access = data.get("access_token") or self._access
        self._refresh = data.get("refresh_token") or self._refresh
        expires = data.get("expires_at")
        self._expires_at = datetime.fromisoformat(expires) if expires else None

    def _expired(self) -> bool:
        if self._access is None:
            return True
        if self._expires_at is None:
            return False
        return self._clock.now() >= self._expires_at - timedelta(seconds=60)

    async def authorization(self, method: str, url: str) -> str:
        async with self._lock:
            await self._load()
            if self._expired():
                await self._refresh_locked()
            assert self._access is not None
            return f"Bearer {self._access}"

    async def renew(self, used: str) -> bool:
        async with self._lock:
            await self._load()
            if self._access is not None and used != f"Bearer {self._access}":
                return True  # a concurrent request already refreshed it
            await self._refresh_locked()
            return True

    async def _refresh_locked(self) -> None:
        if not self._refresh:
            raise AuthExpired("the X OAuth 2.0 access token expired and there is no refresh token")
        form = {"grant_type": "refresh_token", "refresh_token": self._refresh}
        headers: dict[str, str] = {}
        if self._client_secret:
            # A confidential client authenticates with HTTP Basic (client id : secret).
            pair = f"{self._client_id}:{self._client_secret}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
        else:
            form["client_id"] = self._client_id
        try:
            async with self._http.post(
                self._token_url,
                data=form,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=self._timeout),
            ) as resp:
                body = await resp.json(content_type=None)
                status = resp.status
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise TransientFailure(f"X token refresh failed: {type(exc).__name__}") from exc
        if status >= 500:
            raise TransientFailure(f"X token refresh failed with HTTP {status}")
        if status != 200 or not isinstance(body, dict) or "access_token" not in body:
            raise AuthExpired(
                "X refused the OAuth 2.0 refresh token; authorise the host account again"
            )
        self._access = str(body["access_token"])
        self._refresh = str(body.get("refresh_token") or self._refresh)
        expires_in = body.get("expires_in")
        self._expires_at = (
            self._clock.now() + timedelta(seconds=float(expires_in))
            if isinstance(expires_in, int | float)
            else None
        )
        self.refreshes += 1
        await self._state.set(
            OAUTH2_STATE_KEY,
            json.dumps(
                {
                    "access_token": self._access,
                    "refresh_token": self._refresh,
                    "expires_at": self._expires_at.isoformat() if self._expires_at else None,
                }
            ),
        )
