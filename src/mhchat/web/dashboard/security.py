"""Request guards for the dashboard: encrypted session cookies, sign-in, CSRF, security headers.

Order (outermost first): session -> sign-in -> CSRF -> handler. Headers are added as each
response is prepared, so they reach streamed responses (the live feed) and errors too.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web
from aiohttp_session import Session
from aiohttp_session.cookie_storage import EncryptedCookieStorage
from cryptography.fernet import Fernet

from mhchat.web.dashboard.settings import DashboardSettings

COOKIE = "mhchat_dashboard"
PREFIX = "/dashboard"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
PUBLIC_ROUTES = frozenset({"dashboard.login", "dashboard.login_post", "dashboard.static"})
"""Reachable without signing in: the sign-in page and the stylesheet/script files."""

CSP = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "font-src 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "object-src 'none'",
    ]
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# aiohttp-session keeps its state under plain-text request keys, which aiohttp now warns about;
# the dashboard drives its storage (load, new, save) itself under typed keys instead.
STORAGE = web.RequestKey("dashboard_session_storage", EncryptedCookieStorage)
SESSION = web.RequestKey("dashboard_session", Session)
WHO = web.RequestKey("dashboard_who", str)
"""The signed-in facilitator's name, set for every guarded request."""


async def get_session(request: web.Request) -> Session:
    session = request.get(SESSION)
    if session is None:
        try:
            session = await request[STORAGE].load_session(request)
        except UnicodeError:
            # A cookie header of bytes that are not text (only forged ones are): no session.
            session = await request[STORAGE].new_session()
        request[SESSION] = session
    return session


async def new_session(request: web.Request) -> Session:
    session = await request[STORAGE].new_session()
    request[SESSION] = session
    return session


def session_middleware(store: EncryptedCookieStorage) -> Any:
    @web.middleware
    async def sessions(request: web.Request, handler: Handler) -> web.StreamResponse:
        request[STORAGE] = store
        failure: web.HTTPException | None = None
        response: web.StreamResponse
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            response = failure = exc
        session = request.get(SESSION)
        # Streams (the live feed) are already sent; their session never changes.
        if session is not None and session._changed and not response.prepared:
            await store.save_session(request, response, session)
        if failure is not None:
            raise failure
        return response

    return sessions


def fernet_key(secret: str | None) -> bytes:
    """A Fernet key from the configured secret (a Fernet key, or any long text), else a new one.

    A generated key lives only as long as the process: a restart signs everyone out.
    """
    if secret is None:
        return Fernet.generate_key()
    try:
        Fernet(secret.encode())
        return secret.encode()
    except ValueError:
        return base64.urlsafe_b64encode(hashlib.sha256(secret.encode()).digest())


def storage(settings: DashboardSettings) -> EncryptedCookieStorage:
    return EncryptedCookieStorage(
        Fernet(fernet_key(settings.secret_key)),
        cookie_name=COOKIE,
        path=PREFIX,
        httponly=True,
        samesite="Strict",
        secure=settings.secure_cookies or None,
        max_age=int(settings.session_hours * 3600),
    )


def csrf_token(session: Session) -> str:
    """The session's synchronizer token, made on first use."""
    token = session.get("csrf")
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        session["csrf"] = token
    return token


class SignOuts:
    """Sessions signed out before they expired.

    The session lives in the cookie, so signing out must also refuse a copy of the old cookie:
    its id is remembered until the session would have expired anyway. (A restart forgets the
    list; with a generated key a restart ends every session, and with a configured key the
    sessions signed out shortly before a restart stay refused only if the key is changed.)
    """

    def __init__(self, lifetime_seconds: float, *, now: Callable[[], float] = time.time) -> None:
        self._lifetime = lifetime_seconds
        self._now = now
        self._until: dict[str, float] = {}

    def revoke(self, sid: str) -> None:
        self._prune()
        self._until[sid] = self._now() + self._lifetime

    def __contains__(self, sid: object) -> bool:
        return isinstance(sid, str) and self._until.get(sid, 0.0) > self._now()

    def _prune(self) -> None:
        now = self._now()
        for sid in [s for s, until in self._until.items() if until <= now]:
            del self._until[sid]


def signed_in(session: Session, settings: DashboardSettings, signouts: SignOuts) -> str | None:
    """The facilitator's name when the session is signed in, not too old, not signed out."""
    who = session.get("who")
    at = session.get("at")
    if not isinstance(who, str) or not isinstance(at, int | float):
        return None
    if time.time() - at > settings.session_hours * 3600:
        return None
    if session.get("sid") in signouts:
        return None
    return who


async def sign_in(request: web.Request, who: str) -> Session:
    """A fresh session (new CSRF token) so a planted cookie cannot be carried into sign-in."""
    session = await new_session(request)
    session["who"] = who
    session["at"] = int(time.time())
    session["sid"] = secrets.token_urlsafe(16)
    csrf_token(session)
    return session


def _route_name(request: web.Request) -> str | None:
    route = request.match_info.route
    resource = route.resource
    return None if resource is None else resource.name


def _wants_html(request: web.Request) -> bool:
    """A page a browser navigates to (sent to sign in), not data or the live stream (401)."""
    if request.method != "GET" or request.path.startswith((f"{PREFIX}/api/", f"{PREFIX}/events")):
        return False
    accept = request.headers.get("Accept", "")
    return "application/json" not in accept and "text/event-stream" not in accept


def guard_middlewares(settings: DashboardSettings, signouts: SignOuts) -> list[Any]:
    @web.middleware
    async def require_sign_in(request: web.Request, handler: Handler) -> web.StreamResponse:
        if _route_name(request) in PUBLIC_ROUTES:
            return await handler(request)
        session = await get_session(request)
        who = signed_in(session, settings, signouts)
        if who is None:
            if _wants_html(request):
                raise web.HTTPSeeOther(location=f"{PREFIX}/login")
            raise web.HTTPUnauthorized(text="Sign in first.")
        request[WHO] = who
        return await handler(request)

    @web.middleware
    async def check_csrf(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method in {"GET", "HEAD", "OPTIONS"}:
            return await handler(request)
        origin = request.headers.get("Origin")
        if origin is not None and origin != "null" and urlsplit(origin).netloc != request.host:
            raise web.HTTPForbidden(text="This request came from another site.")
        session = await get_session(request)
        expected = session.get("csrf")
        sent = request.headers.get(CSRF_HEADER)
        if sent is None and request.content_type in {
            "application/x-www-form-urlencoded",
            "multipart/form-data",
        }:
            form = await request.post()
            value = form.get(CSRF_FIELD)
            sent = value if isinstance(value, str) else None
        if (
            not isinstance(expected, str)
            or sent is None
            # "surrogateescape": a header of bytes that are not text is a wrong token, not a 500.
            or not hmac.compare_digest(sent.encode(errors="surrogateescape"), expected.encode())
        ):
            raise web.HTTPForbidden(
                text="The form had expired or did not come from this dashboard:"
                " reload and try again."
            )
        return await handler(request)

    return [session_middleware(storage(settings)), require_sign_in, check_csrf]


def add_headers(
    settings: DashboardSettings,
) -> Callable[[web.Request, web.StreamResponse], Awaitable[None]]:
    async def on_prepare(request: web.Request, response: web.StreamResponse) -> None:
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        if "Cache-Control" not in response.headers:
            response.headers["Cache-Control"] = "no-store"
        cookie = response.cookies.get(COOKIE)
        if cookie is not None and (request.secure or settings.secure_cookies):
            cookie["secure"] = True

    return on_prepare
