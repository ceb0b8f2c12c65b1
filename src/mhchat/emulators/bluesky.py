"""A local Bluesky: the XRPC a client calls on its PDS (with the appview reads it proxies) and a
Jetstream websocket, on 127.0.0.1.

Wire formats follow the recordings in the project's Bluesky payload notes (PDS 0.5.x, appview,
Jetstream's JSON): XRPC errors are ``{"error", "message"}`` with the PDS's status codes, access
tokens are JWTs the SDK can read ``exp`` from, rate-limited routes send ``RateLimit-*`` headers,
and every commit (by the host account through XRPC, or by a participant through this class's
methods) is appended to an in-memory log that ``/subscribe`` replays from a ``time_us`` cursor
and pushes live.

Fault injection covers what a client must survive: 429 with reset headers, 5xx, a reset
connection, a request that hangs before or after its write takes effect, expired or revoked
sessions, slow answers, malformed stream frames and dropped streams.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import grapheme
import libipld
import orjson
from aiohttp import WSMsgType, web
from atproto_client.utils import facet_detection  # type: ignore[import-untyped]

from mhchat.clock import Clock, SystemClock
from mhchat.emulators.common import ConnectionDropped, FaultQueues, misbehave_before, serve

POST = "app.bsky.feed.post"
REPOST = "app.bsky.feed.repost"
PROFILE = "app.bsky.actor.profile"
_TID_ALPHABET = "234567abcdefghijklmnopqrstuvwxyz"
_POINTS = {"create": 3, "update": 2, "delete": 1}
_NO_AUTH = frozenset({"com.atproto.server.createSession", "com.atproto.identity.resolveHandle"})


class XrpcError(Exception):
    """An XRPC error answer: status plus ``{"error", "message"}``."""

    def __init__(
        self, status: int, error: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message
        self.headers = headers or {}

    def response(self) -> web.Response:
        return web.json_response(
            {"error": self.error, "message": self.message},
            status=self.status,
            headers=self.headers,
        )


@dataclass
class Account:
    did: str
    handle: str
    password: str
    display_name: str | None = None
    bot: bool = False


@dataclass
class StoredRecord:
    uri: str
    cid: str
    value: dict[str, Any]
    indexed_at: datetime
    did: str
    collection: str
    rkey: str


@dataclass(frozen=True)
class RecordedRequest:
    """One XRPC call as the emulator saw it (no tokens, no bodies)."""

    nsid: str
    method: str
    did: str | None
    status: int


@dataclass
class _Fault:
    kind: str
    times: int
    status: int = 0
    error: str = ""
    message: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0


@dataclass(frozen=True)
class _LogEntry:
    time_us: int
    did: str
    collection: str | None
    frame: str


@dataclass(frozen=True)
class _Token:
    did: str
    scope: str
    exp: float


class _Window:
    """A fixed rate-limit window, like the PDS's limiter."""

    def __init__(self, limit: int, seconds: int) -> None:
        self.limit = limit
        self.seconds = seconds
        self.start = 0.0
        self.used = 0

    def consume(self, now: float, cost: int) -> bool:
        if now >= self.start + self.seconds:
            self.start, self.used = now, 0
        if self.used + cost > self.limit:
            return False
        self.used += cost
        return True

    def headers(self) -> dict[str, str]:
        return {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(max(0, self.limit - self.used)),
            "RateLimit-Reset": str(int(self.start + self.seconds)),
            "RateLimit-Policy": f"{self.limit};w={self.seconds}",
        }


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def make_cid(value: dict[str, Any]) -> str:
    """A real CIDv1 (dag-cbor, sha2-256, base32) of the record."""
    digest = hashlib.sha256(libipld.encode_dag_cbor(value)).digest()
    raw = bytes([0x01, 0x71, 0x12, 0x20]) + digest
    return "b" + base64.b32encode(raw).decode().lower().rstrip("=")


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def split_uri(uri: str) -> tuple[str, str, str]:
    """``at://did/collection/rkey`` -> (did, collection, rkey)."""
    parts = uri.removeprefix("at://").split("/")
    if len(parts) != 3:
        raise XrpcError(400, "InvalidRequest", f"Invalid at-uri: {uri}")
    return parts[0], parts[1], parts[2]


def _invalid(collection: str, detail: str) -> XrpcError:
    return XrpcError(400, "InvalidRequest", f"Invalid {collection} record: {detail}")


def _validate_post(record: dict[str, Any]) -> None:
    text = record.get("text")
    if not isinstance(text, str):
        raise _invalid(POST, 'Record must have the property "text"')
    count = grapheme.length(text)
    if count > 300:
        raise _invalid(POST, f"grapheme too big (maximum 300, got {count}) at $.record.text")
    if len(text.encode()) > 3000:
        raise _invalid(POST, "Record/text must not be longer than 3000 characters")
    if not isinstance(record.get("createdAt"), str):
        raise _invalid(POST, 'Record must have the property "createdAt"')
    reply = record.get("reply")
    if reply is not None:
        for part in ("root", "parent"):
            ref = reply.get(part) if isinstance(reply, dict) else None
            if not (isinstance(ref, dict) and ref.get("uri") and ref.get("cid")):
                raise _invalid(POST, f'Record/reply must have the property "{part}"')
    for facet in record.get("facets") or []:
        index = facet.get("index", {})
        if not (isinstance(index.get("byteStart"), int) and isinstance(index.get("byteEnd"), int)):
            raise _invalid(POST, "Record/facets/index must have byteStart and byteEnd")


Handler = Callable[[web.Request, dict[str, Any], "str | None"], Awaitable[dict[str, Any]]]


class BlueskyEmulator:
    """An in-memory PDS + appview + Jetstream. ``await start()`` returns the base URL."""

    def __init__(
        self,
        *,
        clock: Clock | None = None,
        access_ttl: float = 7200.0,
        session_limit: int = 30,
        points_per_hour: int = 5000,
        points_per_day: int = 35000,
        search_lag: float = 0.0,
    ) -> None:
        self.clock: Clock = clock or SystemClock()
        self.access_ttl = access_ttl
        self.session_limit = session_limit
        self.points_per_hour = points_per_hour
        self.points_per_day = points_per_day
        self.search_lag = search_lag
        self.accounts: dict[str, Account] = {}
        self.requests: list[RecordedRequest] = []
        self.deleted: list[str] = []
        self._records: dict[str, StoredRecord] = {}
        self._tokens: dict[str, _Token] = {}
        self._session_windows: dict[str, _Window] = {}
        self._points: dict[str, tuple[_Window, _Window]] = {}
        self._faults: FaultQueues[_Fault] = FaultQueues()
        self._log: list[_LogEntry] = []
        self._last_us = 0
        self._last_tid = 0
        self._subscribers: set[asyncio.Queue[_LogEntry | str | None]] = set()
        self._stopping = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.base_url = ""
        self._handlers: dict[str, tuple[str, bool, Handler]] = {
            "com.atproto.server.createSession": ("POST", False, self._create_session),
            "com.atproto.server.refreshSession": ("POST", False, self._refresh_session),
            "com.atproto.server.getSession": ("GET", True, self._get_session),
            "com.atproto.identity.resolveHandle": ("GET", False, self._resolve_handle),
            "app.bsky.actor.getProfile": ("GET", True, self._get_profile),
            "app.bsky.actor.getProfiles": ("GET", True, self._get_profiles),
            "com.atproto.repo.createRecord": ("POST", True, self._create_record),
            "com.atproto.repo.putRecord": ("POST", True, self._put_record),
            "com.atproto.repo.deleteRecord": ("POST", True, self._delete_record),
            "com.atproto.repo.getRecord": ("GET", False, self._get_record),
            "com.atproto.repo.listRecords": ("GET", False, self._list_records),
            "app.bsky.feed.getPosts": ("GET", True, self._get_posts),
            "app.bsky.feed.getPostThread": ("GET", True, self._get_post_thread),
            "app.bsky.feed.searchPosts": ("GET", False, self._search_posts),
        }

    # ----------------------------------------------------------------- lifecycle

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        app = web.Application()
        app.router.add_route("*", "/xrpc/{nsid}", self._dispatch)
        app.router.add_get("/subscribe", self._subscribe)
        self._stopping.clear()
        self._runner, self.base_url = await serve(app, host, port)
        return self.base_url

    async def stop(self) -> None:
        self._stopping.set()
        self._close_streams()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def jetstream_url(self) -> str:
        return self.base_url.replace("http://", "ws://", 1) + "/subscribe"

    # ------------------------------------------------------------- participants

    def create_account(
        self,
        handle: str,
        *,
        password: str | None = None,
        display_name: str | None = None,
        bot: bool = False,
    ) -> str:
        """Register an account; returns its DID. The password defaults to ``<handle>-pw``."""
        did = "did:plc:" + "".join(
            _TID_ALPHABET[b % 32] for b in hashlib.sha256(handle.encode()).digest()[:24]
        )
        self.accounts[did] = Account(
            did=did,
            handle=handle,
            password=password or f"{handle}-pw",
            display_name=display_name,
            bot=bot,
        )
        now = self._next_time_us()
        self._append(
            did,
            None,
            {
                "did": did,
                "time_us": now,
                "kind": "identity",
                "identity": {
                    "did": did,
                    "handle": handle,
                    "seq": len(self._log) + 1,
                    "time": _iso(self.clock.now()),
                },
            },
            now,
        )
        if bot:
            self._write(did, PROFILE, self._bot_profile(did), rkey="self")
        return did

    def post(
        self,
        did: str,
        text: str,
        *,
        reply_to: str | None = None,
        quote: str | None = None,
        facets: list[dict[str, Any]] | str | None = "auto",
        langs: Iterable[str] = ("en",),
        created_at: datetime | None = None,
    ) -> str:
        """Write a post as a participant (as their app would); returns its at:// URI."""
        record: dict[str, Any] = {
            "$type": POST,
            "text": text,
            "createdAt": _iso(created_at or self.clock.now()),
            "langs": list(langs),
        }
        built = self.detect_facets(text) if facets == "auto" else facets
        if built:
            record["facets"] = built
        if reply_to is not None:
            parent = self._require(reply_to)
            root = parent.value.get("reply", {}).get("root") or {
                "uri": parent.uri,
                "cid": parent.cid,
            }
            record["reply"] = {"root": root, "parent": {"uri": parent.uri, "cid": parent.cid}}
        if quote is not None:
            quoted = self._require(quote)
            record["embed"] = {
                "$type": "app.bsky.embed.record",
                "record": {"uri": quoted.uri, "cid": quoted.cid},
            }
        self._validate(POST, record)
        return self._write(did, POST, record).uri

    def repost(self, did: str, uri: str) -> str:
        subject = self._require(uri)
        record = {
            "$type": REPOST,
            "subject": {"uri": subject.uri, "cid": subject.cid},
            "createdAt": _iso(self.clock.now()),
        }
        return self._write(did, REPOST, record).uri

    def set_profile(self, did: str, record: dict[str, Any]) -> str:
        """Write an account's ``app.bsky.actor.profile/self`` record; returns its CID."""
        return self._write(did, PROFILE, {"$type": PROFILE, **record}, rkey="self").cid

    def delete(self, uri: str) -> None:
        did, collection, rkey = split_uri(uri)
        self._remove(did, collection, rkey)

    def detect_facets(self, text: str) -> list[dict[str, Any]]:
        """Facets as the Bluesky app builds them: tags, links, and mentions of known handles."""
        facets: list[dict[str, Any]] = [
            f.model_dump(by_alias=True, exclude_none=True)
            for f in facet_detection.detect_facets(text)
        ]
        by_handle = {a.handle: a.did for a in self.accounts.values()}
        for mention in facet_detection.detect_mentions(text):
            mentioned = by_handle.get(mention.handle.lower())
            if mentioned:
                facets.append(
                    {
                        "index": {"byteStart": mention.byte_start, "byteEnd": mention.byte_end},
                        "features": [
                            {"$type": "app.bsky.richtext.facet#mention", "did": mentioned}
                        ],
                    }
                )
        for facet in facets:
            facet.pop("py_type", None)
            for feature in facet["features"]:
                feature.pop("py_type", None)
        return sorted(facets, key=lambda f: int(f["index"]["byteStart"]))

    # --------------------------------------------------------------- inspection

    def records(self, did: str, collection: str) -> list[StoredRecord]:
        """What an account currently has in one collection, oldest first."""
        return sorted(
            (r for r in self._records.values() if r.did == did and r.collection == collection),
            key=lambda r: r.rkey,
        )

    def record(self, uri: str) -> StoredRecord | None:
        return self._records.get(uri)

    @property
    def stream_position(self) -> int:
        """``time_us`` of the newest event on the Jetstream log (0 when empty)."""
        return self._log[-1].time_us if self._log else 0

    def calls(self, nsid: str) -> int:
        return sum(1 for r in self.requests if r.nsid == nsid)

    # ------------------------------------------------------------------- faults

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

    def inject_frame(self, frame: str | bytes) -> None:
        """Push a raw frame (malformed, say) to every live Jetstream subscriber."""
        text = frame.decode("utf-8", "replace") if isinstance(frame, bytes) else frame
        for queue in self._subscribers:
            queue.put_nowait(text)

    def drop_streams(self) -> None:
        """Close every Jetstream connection, as a server restart would."""
        self._close_streams()

    # ------------------------------------------------------------ XRPC dispatch

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        nsid = request.match_info["nsid"]
        did: str | None = None
        status = 200
        try:
            method, needs_auth, handler = self._route(nsid, request.method)
            fault = self._take_fault(nsid)
            if fault is not None:
                await self._apply_fault_before(request, fault)
            body: dict[str, Any] = {}
            if method == "POST" and request.can_read_body:
                raw = await request.read()
                body = orjson.loads(raw) if raw else {}
            # createSession ignores a stale Authorization header, as the PDS does; optional-auth
            # reads check a token only when one is sent.
            if needs_auth or (request.headers.get("Authorization") and nsid not in _NO_AUTH):
                did = self._authorize(request, nsid)
            headers: dict[str, str] = {}
            result = await handler(request, body, did)
            headers = result.pop("__headers__", {})
            if fault is not None and fault.kind == "hang_after":
                await self._hang()
            return web.json_response(result, headers=headers)
        except XrpcError as exc:
            status = exc.status
            return exc.response()
        except ConnectionDropped:
            status = 0
            return web.Response(status=500)  # never reaches the client: the socket is gone
        finally:
            self.requests.append(RecordedRequest(nsid, request.method, did, status))

    def _route(self, nsid: str, method: str) -> tuple[str, bool, Handler]:
        entry = self._handlers.get(nsid)
        if entry is None:
            raise XrpcError(501, "MethodNotImplemented", "Method Not Implemented")
        if method != entry[0]:
            raise XrpcError(400, "InvalidRequest", f"Incorrect HTTP method ({method})")
        return entry

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

    # --------------------------------------------------------------------- auth

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

    # ------------------------------------------------------------------ actors

    def _account(self, actor: str) -> Account | None:
        actor = actor.lower()
        return next((a for a in self.accounts.values() if actor in (a.did, a.handle)), None)

    def _profile_view(self, account: Account) -> dict[str, Any]:
        view: dict[str, Any] = {"did": account.did, "handle": account.handle, "labels": []}
        if account.display_name:
            view["displayName"] = account.display_name
        profile = self._records.get(f"at://{account.did}/{PROFILE}/self")
        values = (profile.value.get("labels") or {}).get("values", []) if profile else []
        for label in values:
            view["labels"].append(
                {
                    "src": account.did,
                    "uri": f"at://{account.did}/{PROFILE}/self",
                    "val": label["val"],
                    "cts": _iso(profile.indexed_at if profile else self.clock.now()),
                }
            )
        return view

    async def _get_profile(
        self, request: web.Request, body: dict[str, Any], _did: str | None
    ) -> dict[str, Any]:
        account = self._account(request.query.get("actor", ""))
        if account is None:
            raise XrpcError(400, "InvalidRequest", "Profile not found")
        return self._profile_view(account)

    async def _get_profiles(
        self, request: web.Request, body: dict[str, Any], _did: str | None
    ) -> dict[str, Any]:
        actors = request.query.getall("actors", [])
        if len(actors) > 25:
            raise XrpcError(400, "InvalidRequest", "Array too long: maximum 25 actors")
        found = (self._account(a) for a in actors)
        return {"profiles": [self._profile_view(a) for a in found if a is not None]}

    def _bot_profile(self, did: str) -> dict[str, Any]:
        return {
            "$type": PROFILE,
            "labels": {"$type": "com.atproto.label.defs#selfLabels", "values": [{"val": "bot"}]},
        }

    # ------------------------------------------------------------------ records

    def _next_time_us(self) -> int:
        now = int(self.clock.now().timestamp() * 1_000_000)
        self._last_us = max(self._last_us + 1, now)
        return self._last_us

    def _tid(self) -> str:
        micros = max(self._last_tid + 1, int(self.clock.now().timestamp() * 1_000_000))
        self._last_tid = micros
        value = (micros << 10) | 7
        out = []
        for _ in range(13):
            out.append(_TID_ALPHABET[value & 31])
            value >>= 5
        return "".join(reversed(out))

    def _require(self, uri: str) -> StoredRecord:
        found = self._records.get(uri)
        if found is None:
            raise XrpcError(400, "RecordNotFound", f"Could not locate record: {uri}")
        return found

    def _validate(self, collection: str, record: dict[str, Any]) -> None:
        """Lexicon checks the PDS makes before accepting a record."""
        if record.get("$type") not in (None, collection):
            raise _invalid(collection, "Record/$type must be " + collection)
        if collection == POST:
            _validate_post(record)
        if collection == REPOST:
            subject = record.get("subject")
            if not (isinstance(subject, dict) and subject.get("uri") and subject.get("cid")):
                raise _invalid(collection, 'Record must have the property "subject"')

    def _consume_points(self, did: str, operation: str) -> dict[str, str]:
        hour, day = self._points.setdefault(
            did, (_Window(self.points_per_hour, 3600), _Window(self.points_per_day, 86400))
        )
        now = self.clock.now().timestamp()
        cost = _POINTS[operation]
        for window in (day, hour):
            if not window.consume(now, cost):
                raise XrpcError(429, "RateLimitExceeded", "Rate Limit Exceeded", window.headers())
        return hour.headers()

    def _write(
        self, did: str, collection: str, record: dict[str, Any], *, rkey: str | None = None
    ) -> StoredRecord:
        rkey = rkey or self._tid()
        uri = f"at://{did}/{collection}/{rkey}"
        operation = "update" if uri in self._records else "create"
        stored = StoredRecord(
            uri, make_cid(record), record, self.clock.now(), did, collection, rkey
        )
        self._records[uri] = stored
        now = self._next_time_us()
        commit = {
            "rev": self._tid(),
            "operation": operation,
            "collection": collection,
            "rkey": rkey,
            "record": record,
            "cid": stored.cid,
        }
        self._append(
            did, collection, {"did": did, "time_us": now, "kind": "commit", "commit": commit}, now
        )
        return stored

    def _remove(self, did: str, collection: str, rkey: str) -> bool:
        uri = f"at://{did}/{collection}/{rkey}"
        if self._records.pop(uri, None) is None:
            return False
        self.deleted.append(uri)
        now = self._next_time_us()
        commit = {
            "rev": self._tid(),
            "operation": "delete",
            "collection": collection,
            "rkey": rkey,
        }
        self._append(
            did, collection, {"did": did, "time_us": now, "kind": "commit", "commit": commit}, now
        )
        return True

    def _commit_body(self) -> dict[str, Any]:
        return {"cid": make_cid({"rev": self._tid()}), "rev": self._tid()}

    async def _create_record(
        self, request: web.Request, body: dict[str, Any], did: str | None
    ) -> dict[str, Any]:
        collection, record = self._checked_write(body, did)
        headers = self._consume_points(str(did), "create")
        stored = self._write(str(did), collection, record, rkey=body.get("rkey"))
        return {
            "uri": stored.uri,
            "cid": stored.cid,
            "commit": self._commit_body(),
            "validationStatus": "valid",
            "__headers__": headers,
        }

    async def _put_record(
        self, request: web.Request, body: dict[str, Any], did: str | None
    ) -> dict[str, Any]:
        collection, record = self._checked_write(body, did)
        rkey = str(body.get("rkey", ""))
        current = self._records.get(f"at://{did}/{collection}/{rkey}")
        swap = body.get("swapRecord")
        if swap is not None and (current is None or current.cid != swap):
            raise XrpcError(
                400, "InvalidSwap", f"Record was at {current.cid if current else None}"
            )
        exists = current is not None
        headers = self._consume_points(str(did), "update" if exists else "create")
        stored = self._write(str(did), collection, record, rkey=rkey)
        return {
            "uri": stored.uri,
            "cid": stored.cid,
            "commit": self._commit_body(),
            "validationStatus": "valid",
            "__headers__": headers,
        }

    def _checked_write(self, body: dict[str, Any], did: str | None) -> tuple[str, dict[str, Any]]:
        repo, collection, record = body.get("repo"), body.get("collection"), body.get("record")
        account = self._account(str(repo)) if repo else None
        if account is None or account.did != did:
            raise XrpcError(400, "InvalidRequest", "Invalid repo: not the authorized account")
        if not isinstance(collection, str) or not isinstance(record, dict):
            raise XrpcError(400, "InvalidRequest", "Input must have collection and record")
        self._validate(collection, record)
        return collection, record

    async def _delete_record(
        self, request: web.Request, body: dict[str, Any], did: str | None
    ) -> dict[str, Any]:
        repo = self._account(str(body.get("repo", "")))
        if repo is None or repo.did != did:
            raise XrpcError(400, "InvalidRequest", "Invalid repo: not the authorized account")
        headers = self._consume_points(repo.did, "delete")
        self._remove(repo.did, str(body.get("collection")), str(body.get("rkey")))
        return {"commit": self._commit_body(), "__headers__": headers}

    async def _get_record(
        self, request: web.Request, body: dict[str, Any], _did: str | None
    ) -> dict[str, Any]:
        q = request.query
        account = self._account(q.get("repo", ""))
        repo = account.did if account else q.get("repo", "")
        stored = self._require(f"at://{repo}/{q.get('collection')}/{q.get('rkey')}")
        return {"uri": stored.uri, "cid": stored.cid, "value": stored.value}

    async def _list_records(
        self, request: web.Request, body: dict[str, Any], _did: str | None
    ) -> dict[str, Any]:
        q = request.query
        account = self._account(q.get("repo", ""))
        if account is None:
            raise XrpcError(400, "InvalidRequest", f"Could not find repo: {q.get('repo')}")
        limit = min(100, max(1, int(q.get("limit", "50"))))
        reverse = q.get("reverse") == "true"
        rows = self.records(account.did, q.get("collection", ""))
        if not reverse:
            rows.reverse()
        cursor = q.get("cursor")
        if cursor:
            rows = [r for r in rows if (r.rkey > cursor if reverse else r.rkey < cursor)]
        page = rows[:limit]
        out: dict[str, Any] = {
            "records": [{"uri": r.uri, "cid": r.cid, "value": r.value} for r in page]
        }
        if len(rows) > limit:
            out["cursor"] = page[-1].rkey
        return out

    # ------------------------------------------------------------------- feeds

    def _post_view(self, stored: StoredRecord, viewer: str | None) -> dict[str, Any]:
        author = self.accounts.get(stored.did)
        reposts = [
            r
            for r in self._records.values()
            if r.collection == REPOST and r.value["subject"]["uri"] == stored.uri
        ]
        replies = [
            r
            for r in self._records.values()
            if r.collection == POST
            and (r.value.get("reply") or {}).get("parent", {}).get("uri") == stored.uri
        ]
        view_state: dict[str, Any] = {}
        mine = next((r for r in reposts if r.did == viewer), None)
        if mine is not None:
            view_state["repost"] = mine.uri
        return {
            "uri": stored.uri,
            "cid": stored.cid,
            "author": self._profile_view(author)
            if author
            else {"did": stored.did, "handle": "handle.invalid"},
            "record": stored.value,
            "replyCount": len(replies),
            "repostCount": len(reposts),
            "likeCount": 0,
            "quoteCount": 0,
            "indexedAt": _iso(stored.indexed_at),
            "viewer": view_state,
            "labels": [],
        }

    async def _get_posts(
        self, request: web.Request, body: dict[str, Any], did: str | None
    ) -> dict[str, Any]:
        uris = request.query.getall("uris", [])
        if len(uris) > 25:
            raise XrpcError(400, "InvalidRequest", "Array too long: maximum 25 uris")
        found = (self._records.get(u) for u in uris)
        return {"posts": [self._post_view(r, did) for r in found if r is not None]}

    async def _get_post_thread(
        self, request: web.Request, body: dict[str, Any], did: str | None
    ) -> dict[str, Any]:
        uri = request.query.get("uri", "")
        stored = self._records.get(uri)
        if stored is None:
            raise XrpcError(400, "NotFound", f"Post not found: {uri}")
        replies = [
            {
                "$type": "app.bsky.feed.defs#threadViewPost",
                "post": self._post_view(r, did),
                "replies": [],
            }
            for r in self.records_all(POST)
            if (r.value.get("reply") or {}).get("parent", {}).get("uri") == uri
        ]
        return {
            "thread": {
                "$type": "app.bsky.feed.defs#threadViewPost",
                "post": self._post_view(stored, did),
                "replies": replies,
            }
        }

    def records_all(self, collection: str) -> list[StoredRecord]:
        return sorted(
            (r for r in self._records.values() if r.collection == collection),
            key=lambda r: r.indexed_at,
        )

    async def _search_posts(
        self, request: web.Request, body: dict[str, Any], did: str | None
    ) -> dict[str, Any]:
        q = request.query
        query = q.get("q", "").strip()
        if not query:
            raise XrpcError(400, "InvalidRequest", 'Params must have the property "q"')
        tags = [t.lower().lstrip("#") for t in q.getall("tag", [])]
        words = [w.lower() for w in query.split()]
        since = datetime.fromisoformat(q["since"].replace("Z", "+00:00")) if "since" in q else None
        until = datetime.fromisoformat(q["until"].replace("Z", "+00:00")) if "until" in q else None
        cutoff = self.clock.now().timestamp() - self.search_lag
        hits = []
        for stored in reversed(self.records_all(POST)):
            if stored.indexed_at.timestamp() > cutoff:
                continue
            text = str(stored.value.get("text", "")).lower()
            post_tags = {
                str(f.get("tag", "")).lower()
                for facet in stored.value.get("facets") or []
                for f in facet.get("features", [])
                if f.get("$type") == "app.bsky.richtext.facet#tag"
            }
            if tags and not all(t in post_tags for t in tags):
                continue
            if not all(
                (w.lstrip("#") in post_tags) if w.startswith("#") else (w in text) for w in words
            ):
                continue
            created = datetime.fromisoformat(str(stored.value["createdAt"]).replace("Z", "+00:00"))
            if (since and created < since) or (until and created >= until):
                continue
            hits.append(stored)
        offset = int(q.get("cursor", "0") or 0)
        limit = min(100, max(1, int(q.get("limit", "25"))))
        page = hits[offset : offset + limit]
        out: dict[str, Any] = {
            "posts": [self._post_view(r, did) for r in page],
            "hitsTotal": len(hits),
        }
        if offset + limit < len(hits):
            out["cursor"] = str(offset + limit)
        return out

    # ---------------------------------------------------------------- Jetstream

    def _append(
        self, did: str, collection: str | None, event: dict[str, Any], time_us: int
    ) -> None:
        entry = _LogEntry(time_us, did, collection, orjson.dumps(event).decode())
        self._log.append(entry)
        for queue in self._subscribers:
            queue.put_nowait(entry)

    def _close_streams(self) -> None:
        for queue in self._subscribers:
            queue.put_nowait(None)

    @staticmethod
    def _wanted(entry: _LogEntry, collections: list[str], dids: list[str]) -> bool:
        if dids and entry.did not in dids:
            return False
        if entry.collection is None or not collections:
            return True
        return any(
            entry.collection == c or (c.endswith(".*") and entry.collection.startswith(c[:-1]))
            for c in collections
        )

    async def _subscribe(self, request: web.Request) -> web.StreamResponse:
        collections = request.query.getall("wantedCollections", [])
        dids = request.query.getall("wantedDids", [])
        cursor = int(request.query.get("cursor", "0") or 0)
        ws = web.WebSocketResponse(heartbeat=None)
        await ws.prepare(request)
        queue: asyncio.Queue[_LogEntry | str | None] = asyncio.Queue()
        self._subscribers.add(queue)
        try:
            last = 0
            if cursor:
                for entry in list(self._log):
                    if entry.time_us >= cursor and self._wanted(entry, collections, dids):
                        await ws.send_str(entry.frame)
                        last = entry.time_us
            reader = asyncio.ensure_future(ws.receive())
            while not ws.closed:
                getter = asyncio.ensure_future(queue.get())
                done, _ = await asyncio.wait({getter, reader}, return_when=asyncio.FIRST_COMPLETED)
                if reader in done:
                    getter.cancel()
                    msg = reader.result()
                    if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.ERROR):
                        break
                    reader = asyncio.ensure_future(ws.receive())
                    continue
                item = getter.result()
                if item is None:
                    break
                if isinstance(item, str):
                    await ws.send_str(item)  # an injected raw frame
                elif item.time_us > last and self._wanted(item, collections, dids):
                    await ws.send_str(item.frame)
                    last = item.time_us
            reader.cancel()
        except ConnectionResetError:
            pass
        finally:
            self._subscribers.discard(queue)
            await ws.close()
        return ws


async def _serve(host: str, port: int, handles: list[str]) -> None:
    emulator = BlueskyEmulator()
    base_url = await emulator.start(host, port)
    accounts = [
        {"handle": h, "did": emulator.create_account(h), "password": f"{h}-pw"} for h in handles
    ]
    info = {"base_url": base_url, "jetstream_url": emulator.jetstream_url, "accounts": accounts}
    print(orjson.dumps(info).decode(), flush=True)  # noqa: T201 - the runner's only output
    try:
        await asyncio.Event().wait()
    finally:
        await emulator.stop()


def main(argv: list[str] | None = None) -> None:
    """``python -m mhchat.emulators.bluesky``: serve until interrupted, print one JSON line."""
    parser = argparse.ArgumentParser(description="Serve a local Bluesky (XRPC + Jetstream).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--accounts", default="mhchathost.test,alice.test,bob.test")
    args = parser.parse_args(argv)
    handles = [h.strip() for h in args.accounts.split(",") if h.strip()]
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args.host, args.port, handles))


if __name__ == "__main__":
    main()
