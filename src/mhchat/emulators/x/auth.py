"""X's auth: the app bearer token, OAuth 1.0a signatures (verified with authlib), OAuth 2.0
user tokens that expire, and refresh tokens that rotate."""

from __future__ import annotations

import base64
import secrets

from aiohttp import web
from authlib.oauth1.rfc5849 import signature as oauth1_signature  # type: ignore[import-untyped]
from authlib.oauth1.rfc5849.wrapper import OAuth1Request  # type: ignore[import-untyped]

from mhchat.emulators.x.model import Principal, RecordedRequest, XApiError
from mhchat.emulators.x.stream import XStream


class XAuth(XStream):
    """Who is calling, whether that kind of caller may use the endpoint, and the token refresh."""

    def adapter_secrets(self, kind: str = "oauth1") -> dict[str, str]:
        """The ``MHCHAT_X_*`` secrets (prefix removed) an adapter needs to act as the host."""
        found = {"BEARER_TOKEN": self.app_bearer}
        if kind == "oauth1":
            token, secret = self.host_oauth1
            found |= {
                "API_KEY": self.consumer_key,
                "API_SECRET": self.consumer_secret,
                "ACCESS_TOKEN": token,
                "ACCESS_TOKEN_SECRET": secret,
            }
        elif kind == "oauth2":
            access, refresh = self.host_oauth2
            found |= {
                "CLIENT_ID": self.client_id,
                "CLIENT_SECRET": self.client_secret,
                "OAUTH2_ACCESS_TOKEN": access,
                "OAUTH2_REFRESH_TOKEN": refresh,
            }
        return found

    def expire_user_tokens(self) -> None:
        """Every OAuth 2.0 access token issued so far now answers 401 (refresh still works)."""
        for token, (user_id, _) in list(self._access.items()):
            self._access[token] = (user_id, 0.0)

    def revoke_refresh_tokens(self) -> None:
        self._refresh.clear()

    def revoke_app_token(self) -> None:
        """The app bearer token stops working (regenerated in the developer portal)."""
        self.app_bearer = "revoked-" + secrets.token_urlsafe(8)

    def revoke_oauth1(self) -> None:
        self._oauth1.clear()

    def _authorize(self, request: web.Request, allowed: set[str]) -> Principal:
        header = request.headers.get("Authorization", "")
        principal: Principal | None = None
        if header.startswith("Bearer "):
            token = header[7:]
            if secrets.compare_digest(token, self.app_bearer):
                principal = Principal("app")
            elif token in self._access:
                user_id, expires = self._access[token]
                if expires <= self.clock.now().timestamp():
                    raise XApiError(401, "Unauthorized", "Unauthorized")
                principal = Principal("user", user_id)
        elif header.startswith("OAuth "):
            principal = self._oauth1_principal(request)
        if principal is None:
            raise XApiError(401, "Unauthorized", "Unauthorized")
        if principal.kind not in allowed:
            names = {
                "app": "OAuth 2.0 Application-Only",
                "user": "OAuth 1.0a User Context, OAuth 2.0 User Context",
            }
            mine = (
                "OAuth 2.0 Application-Only"
                if principal.kind == "app"
                else "OAuth 2.0 User Context"
            )
            raise XApiError(
                403,
                "Unsupported Authentication",
                f"Authenticating with {mine} is forbidden for this endpoint.  Supported "
                f"authentication types are [{', '.join(names[a] for a in sorted(allowed))}].",
                "unsupported-authentication",
            )
        return principal

    def _oauth1_principal(self, request: web.Request) -> Principal | None:
        uri = f"http://{request.host}{request.raw_path}"
        try:
            signed = OAuth1Request(request.method, uri, headers=dict(request.headers))
        except Exception:  # noqa: BLE001 - any malformed header is simply unauthorised
            return None
        if signed.client_id != self.consumer_key or signed.token not in self._oauth1:
            return None
        secret, user_id = self._oauth1[signed.token]

        class _Client:
            @staticmethod
            def get_client_secret() -> str:
                return self.consumer_secret

        class _Credential:
            @staticmethod
            def get_oauth_token_secret() -> str:
                return secret

        signed.client = _Client()
        signed.credential = _Credential()
        if not oauth1_signature.verify_hmac_sha1(signed):
            return None
        return Principal("user", user_id)

    async def _token(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        invalid = web.json_response(
            {
                "error": "invalid_request",
                "error_description": "Value passed for the token was invalid.",
            },
            status=400,
        )
        client_id = str(form.get("client_id", ""))
        auth = request.headers.get("Authorization", "")
        if auth.startswith("Basic "):
            try:
                cid, _, secret = base64.b64decode(auth[6:]).decode().partition(":")
            except ValueError:
                cid, secret = "", ""
            if cid != self.client_id or not secrets.compare_digest(secret, self.client_secret):
                return web.json_response(
                    {
                        "error": "unauthorized_client",
                        "error_description": "Missing valid authorization header",
                    },
                    status=401,
                )
            client_id = cid
        status = 200
        self._arrivals[("token", "POST")] += 1
        try:
            if client_id != self.client_id or form.get("grant_type") != "refresh_token":
                status = 400
                return invalid
            user_id = self._refresh.pop(str(form.get("refresh_token", "")), None)
            if user_id is None:
                status = 400
                return invalid
            access, refresh = self.issue_oauth2(user_id)
            return web.json_response(
                {
                    "token_type": "bearer",
                    "expires_in": int(self.access_ttl),
                    "access_token": access,
                    "scope": "tweet.write users.read tweet.read offline.access",
                    "refresh_token": refresh,
                }
            )
        finally:
            self.requests.append(RecordedRequest("token", "POST", "client", status))
