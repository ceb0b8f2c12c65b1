"""Sessions: JWT access and refresh tokens (refresh tokens rotate), the sign-in rate limit, and
handle resolution."""

from __future__ import annotations

import secrets
import time
from typing import Any

import orjson
from aiohttp import web

from mhchat.emulators.bluesky.model import Account, XrpcError, _b64url, _Token, _Window
from mhchat.emulators.bluesky.repo import BlueskyRepo


class BlueskyAuth(BlueskyRepo):
    """``com.atproto.server.*`` sessions and the tokens the other routes check."""

    def expire_access_tokens(self) -> None:
        """Every access token issued so far now answers ExpiredToken (refresh still works)."""
        for token, info in list(self._tokens.items()):
            if info.scope == "com.atproto.access":
                self._tokens[token] = _Token(info.did, info.scope, 0.0)

    def revoke_sessions(self, did: str | None = None) -> None:
        """Invalidate access and refresh tokens (a password change, an app password revoked)."""
        for token, info in list(self._tokens.items()):
            if did is None or info.did == did:
                del self._tokens[token]

    def set_password(self, did: str, password: str) -> None:
        self.accounts[did].password = password

    def _issue(self, did: str, scope: str, ttl: float) -> str:
        now = time.time()
        header = _b64url(orjson.dumps({"typ": "at+jwt", "alg": "HS256"}))
        payload = _b64url(
            orjson.dumps(
                {
                    "scope": scope,
                    "sub": did,
                    "iat": int(now),
                    "exp": int(now + ttl),
                    "aud": "did:web:localhost",
                    "jti": secrets.token_hex(8),
                }
            )
        )
        token = f"{header}.{payload}.{_b64url(secrets.token_bytes(32))}"
        self._tokens[token] = _Token(did, scope, now + ttl)
        return token

    def _token(self, request: web.Request, scope: str) -> _Token:
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("Bearer "):
            raise XrpcError(401, "AuthMissing", "Authentication Required")
        info = self._tokens.get(auth.removeprefix("Bearer "))
        if info is None:
            raise XrpcError(400, "InvalidToken", "Token could not be verified")
        if info.scope != scope:
            raise XrpcError(400, "InvalidToken", "Bad token scope")
        if info.exp < time.time():
            raise XrpcError(400, "ExpiredToken", "Token has expired")
        return info

    def _authorize(self, request: web.Request, nsid: str) -> str:
        if nsid == "com.atproto.server.refreshSession":
            return self._token(request, "com.atproto.refresh").did
        return self._token(request, "com.atproto.access").did

    def _session_body(self, account: Account) -> dict[str, Any]:
        return {
            "accessJwt": self._issue(account.did, "com.atproto.access", self.access_ttl),
            "refreshJwt": self._issue(account.did, "com.atproto.refresh", 90 * 86400.0),
            "did": account.did,
            "handle": account.handle,
            "email": f"{account.handle}@example.test",
            "emailConfirmed": False,
            "active": True,
        }

    async def _create_session(
        self, request: web.Request, body: dict[str, Any], _did: str | None
    ) -> dict[str, Any]:
        ident = str(body.get("identifier", "")).lower()
        account = next((a for a in self.accounts.values() if ident in (a.handle, a.did)), None)
        window = self._session_windows.setdefault(ident, _Window(self.session_limit, 300))
        if not window.consume(self.clock.now().timestamp(), 1):
            raise XrpcError(429, "RateLimitExceeded", "Rate Limit Exceeded", window.headers())
        if account is None or account.password != body.get("password"):
            raise XrpcError(
                401, "AuthenticationRequired", "Invalid identifier or password", window.headers()
            )
        return {**self._session_body(account), "__headers__": window.headers()}

    async def _refresh_session(
        self, request: web.Request, body: dict[str, Any], did: str | None
    ) -> dict[str, Any]:
        assert did is not None
        old = request.headers["Authorization"].removeprefix("Bearer ")
        self._tokens.pop(old, None)  # refresh tokens rotate
        return self._session_body(self.accounts[did])

    async def _get_session(
        self, request: web.Request, body: dict[str, Any], did: str | None
    ) -> dict[str, Any]:
        assert did is not None
        account = self.accounts[did]
        return {"did": did, "handle": account.handle, "active": True}

    async def _resolve_handle(
        self, request: web.Request, body: dict[str, Any], _did: str | None
    ) -> dict[str, Any]:
        handle = request.query.get("handle", "").lower()
        for account in self.accounts.values():
            if account.handle == handle:
                return {"did": account.did}
        raise XrpcError(400, "InvalidRequest", "Unable to resolve handle")
