"""A local X API v2 emulator (aiohttp on 127.0.0.1) for the X adapter's tests, demo and benchmarks.

It speaks the shapes recorded in ``shared/payloads/x`` (tweepy cassettes, twarc pages and stream
lines, X's documented examples): ``data``/``includes``/``meta`` bodies with field and expansion
selection, snowflake ids, t.co-wrapped links with ``entities``, ``note_tweet`` for long posts,
``edit_history_tweet_ids``, problem+json errors, ``x-rate-limit-*`` headers (and the 24-hour
ones on ``POST /2/tweets``) with 429s when a window is used up.

Served: the filtered stream (newline-delimited JSON, ``\\r\\n`` keep-alives) and its rules, recent
search (since_id, next_token), tweet lookup and create, ``users/me``, a user's timeline,
retweet and undo, and the OAuth 2.0 token refresh. Auth is enforced like X: the stream and its
rules take the app bearer token only; writes take OAuth 1.0a (HMAC-SHA1 signatures verified with
authlib) or an OAuth 2.0 user token; user tokens expire and refresh tokens rotate. Self-serve
reply rule (Feb 2026): a reply is refused unless the parent @mentioned or quoted the replier.
Keyword search returns no retweets (May 2026); the stream still carries them.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import re
import secrets
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from aiohttp import web
from authlib.oauth1.rfc5849 import signature as oauth1_signature  # type: ignore[import-untyped]
from authlib.oauth1.rfc5849.wrapper import OAuth1Request  # type: ignore[import-untyped]
from twitter_text import extract_urls_with_indices, parse_tweet

from mhchat.clock import Clock, SystemClock
from mhchat.emulators.common import ConnectionDropped, FaultQueues, misbehave_before, serve

TWEPOCH_MS = 1288834974657
PROBLEMS = "https://api.x.com/2/problems/"
REPLY_RULE_DETAIL = (
    "Reply to this conversation is not allowed because you have not been mentioned or "
    "otherwise engaged by the author of the post you are replying to."
)
DEFAULT_LIMITS: dict[str, tuple[int, int]] = {
    # endpoint: (per app-only token, per user) requests per window
    "search": (450, 300),
    "stream_connect": (50, 50),
    "rules_read": (450, 450),
    "rules_write": (100, 100),
    "lookup": (300, 900),
    "create_tweet": (10_000, 100),
    "retweet": (50, 50),
    "unretweet": (50, 50),
    "me": (75, 75),
    "user_tweets": (1500, 900),
}
HASHTAG = re.compile(r"(?:^|(?<=[^\w&]))[#\uff03](\w+)")
MENTION = re.compile(r"(?:^|(?<=[^\w]))@(\w{1,15})")

_HEADERS = web.RequestKey("x_headers", dict[str, str])

Handler = Callable[[web.Request, "Principal", dict[str, Any]], Awaitable[web.StreamResponse]]


class XApiError(Exception):
    def __init__(
        self, status: int, title: str, detail: str, kind: str = "about:blank", **extra: Any
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.body: dict[str, Any] = {"title": title, "detail": detail, "status": status}
        self.body["type"] = kind if kind == "about:blank" else PROBLEMS + kind
        self.body.update(extra)
        self.headers: dict[str, str] = {}

    def response(self) -> web.Response:
        return web.json_response(self.body, status=self.status, headers=self.headers, dumps=_dumps)


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


@dataclass
class XUser:
    id: str
    username: str
    name: str
    created_at: datetime
    protected: bool = False


@dataclass
class Tweet:
    id: str
    author_id: str
    text: str
    created_at: datetime
    conversation_id: str
    refs: list[tuple[str, str]] = field(default_factory=list)
    in_reply_to_user_id: str | None = None
    entities: dict[str, Any] = field(default_factory=dict)
    note: dict[str, Any] | None = None
    edit_history: list[str] = field(default_factory=list)
    lang: str = "en"
    deleted: bool = False
    superseded: bool = False

    def ref(self, kind: str) -> str | None:
        return next((rid for k, rid in self.refs if k == kind), None)


@dataclass(frozen=True)
class Principal:
    kind: str  # "app" or "user"
    user_id: str | None = None


@dataclass(frozen=True)
class RecordedRequest:
    """One call as the emulator saw it (no tokens, no bodies)."""

    endpoint: str
    method: str
    auth: str
    status: int


@dataclass
class _Fault:
    kind: str
    times: int
    status: int = 503
    seconds: float = 0.0
    reset_in: float = 60.0


@dataclass(eq=False)
class _Stream:
    queue: asyncio.Queue[bytes | None]
    fields: set[str]
    expansions: set[str]
    user_fields: set[str]
    stalled: bool = False


class _Window:
    def __init__(self) -> None:
        self.start = 0.0
        self.used = 0


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


class XEmulator:
    """An in-memory X. ``await start()`` returns the base URL to use as ``api_base``."""

    def __init__(
        self,
        *,
        clock: Clock | None = None,
        host_username: str = "MHChatHost",
        enterprise: bool = False,
        keepalive_seconds: float = 20.0,
        access_ttl: float = 7200.0,
        window_seconds: int = 900,
        max_stream_connections: int = 1,
    ) -> None:
        self.clock: Clock = clock or SystemClock()
        self.enterprise = enterprise
        self.keepalive_seconds = keepalive_seconds
        self.access_ttl = access_ttl
        self.window_seconds = window_seconds
        self.max_stream_connections = max_stream_connections
        self.limits: dict[str, tuple[int, int]] = dict(DEFAULT_LIMITS)
        self.users: dict[str, XUser] = {}
        self.tweets: dict[str, Tweet] = {}
        self.rules: dict[str, dict[str, str]] = {}
        self.requests: list[RecordedRequest] = []
        self.created_tweets: list[dict[str, Any]] = []
        """Bodies of ``POST /2/tweets`` calls that took effect, with the new ``id``."""
        self.retweets: list[tuple[str, str]] = []
        """(user id, tweet id) for every retweet that took effect (an undo removes it)."""
        self.stream_connections = 0
        self._arrivals: Counter[tuple[str, str]] = Counter()
        self._seq = itertools.count()
        self._last_id = 0
        self._windows: dict[tuple[str, str], _Window] = {}
        self._day_windows: dict[tuple[str, str], _Window] = {}
        self._faults: FaultQueues[_Fault] = FaultQueues()
        self._streams: set[_Stream] = set()
        self._stopping = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.base_url = ""
        # Credentials: one app, and the host account's user tokens.
        self.app_bearer = "AAAA" + secrets.token_urlsafe(24)
        self.consumer_key = secrets.token_urlsafe(12)
        self.consumer_secret = secrets.token_urlsafe(24)
        self.client_id = secrets.token_urlsafe(16)
        self.client_secret = secrets.token_urlsafe(24)
        self._oauth1: dict[str, tuple[str, str]] = {}  # token -> (secret, user id)
        self._access: dict[str, tuple[str, float]] = {}  # token -> (user id, expires epoch)
        self._refresh: dict[str, str] = {}  # refresh token -> user id (single use)
        self.host_id = self.add_user(host_username, name="MHChat host")
        self.host_oauth1 = self.issue_oauth1(self.host_id)
        self.host_oauth2 = self.issue_oauth2(self.host_id)

    # ----------------------------------------------------------------- lifecycle

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        app = web.Application()
        routes: list[tuple[str, str, str, set[str], Handler]] = [
            ("GET", "/2/tweets/search/stream", "stream_connect", {"app"}, self._stream),
            ("GET", "/2/tweets/search/stream/rules", "rules_read", {"app"}, self._rules_get),
            ("POST", "/2/tweets/search/stream/rules", "rules_write", {"app"}, self._rules_post),
            ("GET", "/2/tweets/search/recent", "search", {"app", "user"}, self._search),
            ("GET", "/2/tweets", "lookup", {"app", "user"}, self._lookup),
            ("POST", "/2/tweets", "create_tweet", {"user"}, self._create),
            ("GET", "/2/users/me", "me", {"user"}, self._me),
            ("GET", "/2/users/{id}/tweets", "user_tweets", {"app", "user"}, self._timeline),
            ("POST", "/2/users/{id}/retweets", "retweet", {"user"}, self._retweet),
            (
                "DELETE",
                "/2/users/{id}/retweets/{tweet_id}",
                "unretweet",
                {"user"},
                self._unretweet,
            ),
        ]
        for method, path, endpoint, allowed, handler in routes:
            app.router.add_route(method, path, self._wrap(endpoint, allowed, handler))
        app.router.add_post("/2/oauth2/token", self._token)
        self._stopping.clear()
        self._runner, self.base_url = await serve(app, host, port)
        return self.base_url

    async def stop(self) -> None:
        self._stopping.set()
        self.disconnect_streams()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # ------------------------------------------------------------ credentials

    def issue_oauth1(self, user_id: str) -> tuple[str, str]:
        token = f"{user_id}-{secrets.token_urlsafe(16)}"
        secret = secrets.token_urlsafe(24)
        self._oauth1[token] = (secret, user_id)
        return token, secret

    def issue_oauth2(self, user_id: str) -> tuple[str, str]:
        access = secrets.token_urlsafe(32)
        refresh = secrets.token_urlsafe(32)
        self._access[access] = (user_id, self.clock.now().timestamp() + self.access_ttl)
        self._refresh[refresh] = user_id
        return access, refresh

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

    # ------------------------------------------------------------- participants

    def add_user(self, username: str, *, name: str | None = None, protected: bool = False) -> str:
        user_id = self._new_id()
        self.users[user_id] = XUser(
            id=user_id,
            username=username,
            name=name or username,
            created_at=self.clock.now() - timedelta(days=400),
            protected=protected,
        )
        return user_id

    def user_id(self, who: str) -> str:
        if who in self.users:
            return who
        for user in self.users.values():
            if user.username.lower() == who.lower().lstrip("@"):
                return user.id
        return self.add_user(who.lstrip("@"))

    def post_tweet(
        self,
        author: str,
        text: str,
        reply_to: str | None = None,
        quote: str | None = None,
    ) -> str:
        """A participant posts (or replies / quotes); it reaches the stream and search."""
        tweet = self._make_tweet(self.user_id(author), text, reply_to=reply_to, quote=quote)
        self._broadcast(tweet)
        return tweet.id

    def retweet_as(self, author: str, tweet_id: str) -> str:
        rt = self._make_retweet(self.user_id(author), self.tweets[tweet_id])
        self._broadcast(rt)
        return rt.id

    def edit_tweet(self, tweet_id: str, text: str) -> str:
        """The author edits a post: a new id sharing the edit history, on the stream too."""
        old = self.tweets[tweet_id]
        new = self._make_tweet(old.author_id, text, history=[*old.edit_history])
        old.superseded = True
        for tid in new.edit_history:
            self.tweets[tid].edit_history = list(new.edit_history)
        self._broadcast(new)
        return new.id

    def delete_tweet(self, tweet_id: str) -> None:
        self.tweets[tweet_id].deleted = True

    # ------------------------------------------------------------------ stream

    def push_stream_raw(self, line: bytes) -> None:
        """Send bytes as they are (a recorded line, a broken one) on every open stream."""
        for conn in self._streams:
            conn.queue.put_nowait(line)

    def stall_streams(self) -> None:
        """Open streams go silent (no data, no keep-alives) until the client gives up."""
        for conn in self._streams:
            conn.stalled = True

    def disconnect_streams(self) -> None:
        for conn in list(self._streams):
            conn.queue.put_nowait(None)

    @property
    def open_streams(self) -> int:
        return len(self._streams)

    # ------------------------------------------------------------------- faults

    def fail_next(self, endpoint: str, *, status: int = 503, times: int = 1) -> None:
        """The next ``times`` calls of ``endpoint`` ("*" for any) fail with ``status``."""
        self._faults.add(endpoint, _Fault("fail", times, status=status))

    def rate_limit_next(self, endpoint: str, *, reset_in: float = 60.0, times: int = 1) -> None:
        self._faults.add(endpoint, _Fault("429", times, reset_in=reset_in))

    def reset_connection_next(self, endpoint: str, *, times: int = 1) -> None:
        """Drop the connection before the call has any effect."""
        self._faults.add(endpoint, _Fault("reset", times))

    def hang_next(self, endpoint: str, *, after_write: bool, times: int = 1) -> None:
        """Never answer; with ``after_write`` the call takes effect first."""
        kind = "hang_after" if after_write else "hang_before"
        self._faults.add(endpoint, _Fault(kind, times))

    def slow_next(self, endpoint: str, seconds: float, *, times: int = 1) -> None:
        self._faults.add(endpoint, _Fault("slow", times, seconds=seconds))

    def set_limit(self, endpoint: str, per_app: int, per_user: int | None = None) -> None:
        self.limits[endpoint] = (per_app, per_app if per_user is None else per_user)

    def calls(self, endpoint: str, method: str | None = None) -> int:
        """How many requests for ``endpoint`` arrived (answered or not yet)."""
        return sum(
            n for (e, m), n in self._arrivals.items() if e == endpoint and method in (None, m)
        )

    # ---------------------------------------------------------------- internals

    def _new_id(self) -> str:
        ms = int(self.clock.now().timestamp() * 1000) - TWEPOCH_MS
        candidate = (ms << 22) | (next(self._seq) & 0xFFF)
        self._last_id = max(candidate, self._last_id + 1)
        return str(self._last_id)

    def _entities(self, text: str) -> tuple[str, dict[str, Any]]:
        """Wrap links in t.co and list hashtags, mentions and urls with code-point indices."""
        expanded: dict[str, str] = {}
        out = text
        for found in reversed(extract_urls_with_indices(text)):
            start, end = found["indices"]
            short = "https://t.co/" + secrets.token_urlsafe(8)[:10]
            expanded[short] = found["url"]
            out = out[:start] + short + out[end:]
        entities: dict[str, Any] = {}
        tags = [
            {"start": m.start(), "end": m.end(), "tag": m.group(1)} for m in HASHTAG.finditer(out)
        ]
        if tags:
            entities["hashtags"] = tags
        mentions = []
        for m in MENTION.finditer(out):
            item: dict[str, Any] = {"start": m.start(), "end": m.end(), "username": m.group(1)}
            known = next(
                (u for u in self.users.values() if u.username.lower() == m.group(1).lower()), None
            )
            if known is not None:
                item["id"] = known.id
            mentions.append(item)
        if mentions:
            entities["mentions"] = mentions
        urls = []
        for short, long in expanded.items():
            start = out.index(short)
            display = re.sub(r"^https?://", "", long)
            urls.append(
                {
                    "start": start,
                    "end": start + len(short),
                    "url": short,
                    "expanded_url": long,
                    "display_url": display[:24] + ("…" if len(display) > 24 else ""),
                }
            )
        if urls:
            entities["urls"] = sorted(urls, key=lambda u: u["start"])
        return out, entities

    def _make_tweet(
        self,
        author_id: str,
        text: str,
        *,
        reply_to: str | None = None,
        quote: str | None = None,
        history: list[str] | None = None,
    ) -> Tweet:
        tid = self._new_id()
        wrapped, entities = self._entities(text)
        note = None
        if parse_tweet(text).weightedLength > 280:
            note = {"text": wrapped, "entities": entities}
            wrapped = wrapped[:270].rstrip() + "…"
            _, entities = self._entities(wrapped)
        refs: list[tuple[str, str]] = []
        conversation = tid
        in_reply_to_user = None
        if reply_to is not None:
            parent = self.tweets[reply_to]
            refs.append(("replied_to", reply_to))
            conversation = parent.conversation_id
            in_reply_to_user = parent.author_id
        if quote is not None:
            refs.append(("quoted", quote))
        tweet = Tweet(
            id=tid,
            author_id=author_id,
            text=wrapped,
            created_at=self.clock.now(),
            conversation_id=conversation,
            refs=refs,
            in_reply_to_user_id=in_reply_to_user,
            entities=entities,
            note=note,
            edit_history=[*(history or []), tid],
        )
        self.tweets[tid] = tweet
        return tweet

    def _make_retweet(self, user_id: str, source: Tweet) -> Tweet:
        author = self.users[source.author_id].username
        text = f"RT @{author}: {source.note['text'] if source.note else source.text}"
        tid = self._new_id()
        _, entities = self._entities(text)
        tweet = Tweet(
            id=tid,
            author_id=user_id,
            text=text if len(text) <= 140 else text[:139] + "…",
            created_at=self.clock.now(),
            conversation_id=tid,
            refs=[("retweeted", source.id)],
            entities=entities,
            edit_history=[tid],
        )
        self.tweets[tid] = tweet
        return tweet

    def _matches(self, query: str, tweet: Tweet) -> bool:
        author = self.users[tweet.author_id]
        tags = {h["tag"].lower() for h in tweet.entities.get("hashtags", [])}
        if tweet.note:
            tags |= {h["tag"].lower() for h in tweet.note["entities"].get("hashtags", [])}
        mentions = {m["username"].lower() for m in tweet.entities.get("mentions", [])}
        text = (tweet.note["text"] if tweet.note else tweet.text).lower()
        for token in query.split():
            negate = token.startswith("-")
            term = token[1:] if negate else token
            low = term.lower()
            if low.startswith("#"):
                hit = low[1:] in tags
            elif low.startswith("@"):
                hit = low[1:] in mentions
            elif low.startswith("from:"):
                who = low[5:]
                hit = who in (author.id, author.username.lower())
            elif low in ("is:retweet", "is:reply", "is:quote"):
                kind = {"is:retweet": "retweeted", "is:reply": "replied_to"}.get(low, "quoted")
                hit = tweet.ref(kind) is not None
            else:
                hit = low in text
            if hit == negate:
                return False
        return True

    def _check_query(self, query: str) -> None:
        if not query or len(query) > 512:
            raise XApiError(
                400,
                "Invalid Request",
                "One or more parameters to your request was invalid.",
                "invalid-request",
            )
        for token in query.split():
            term = token.lstrip("-")
            if term.upper() == "OR" or "(" in term or ")" in term:
                raise XApiError(
                    400,
                    "Invalid Request",
                    f"Unsupported operator in query: {term}",
                    "invalid-request",
                )

    def _broadcast(self, tweet: Tweet) -> None:
        if not self._streams:
            return
        matched = [
            {"id": rid, "tag": rule.get("tag")}
            for rid, rule in self.rules.items()
            if self._matches(rule["value"], tweet)
        ]
        if not matched:
            return
        for conn in self._streams:
            payload = self._envelope(
                [tweet], conn.fields, conn.expansions, conn.user_fields, single=True
            )
            payload["matching_rules"] = matched
            conn.queue.put_nowait(orjson.dumps(payload) + b"\r\n")

    def _render(self, tweet: Tweet, fields: set[str]) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": tweet.id,
            "text": tweet.text,
            "edit_history_tweet_ids": list(tweet.edit_history),
        }
        values: dict[str, Any] = {
            "author_id": tweet.author_id,
            "conversation_id": tweet.conversation_id,
            "created_at": _iso(tweet.created_at),
            "lang": tweet.lang,
            "reply_settings": "everyone",
            "possibly_sensitive": False,
        }
        for key, value in values.items():
            if key in fields:
                out[key] = value
        if "in_reply_to_user_id" in fields and tweet.in_reply_to_user_id:
            out["in_reply_to_user_id"] = tweet.in_reply_to_user_id
        if "referenced_tweets" in fields and tweet.refs:
            out["referenced_tweets"] = [{"type": k, "id": rid} for k, rid in tweet.refs]
        if "entities" in fields and tweet.entities:
            out["entities"] = tweet.entities
        if "note_tweet" in fields and tweet.note:
            out["note_tweet"] = tweet.note
        return out

    def _render_user(self, user: XUser, fields: set[str]) -> dict[str, Any]:
        out: dict[str, Any] = {"id": user.id, "name": user.name, "username": user.username}
        if "protected" in fields:
            out["protected"] = user.protected
        if "created_at" in fields:
            out["created_at"] = _iso(user.created_at)
        return out

    def _expand(
        self, tweets: list[Tweet], expansions: set[str]
    ) -> tuple[dict[str, XUser], dict[str, Tweet]]:
        """The users and referenced posts the requested ``expansions`` pull into includes."""
        users: dict[str, XUser] = {}
        included: dict[str, Tweet] = {}
        for tweet in tweets:
            if "author_id" in expansions:
                users[tweet.author_id] = self.users[tweet.author_id]
            if "in_reply_to_user_id" in expansions and tweet.in_reply_to_user_id:
                users[tweet.in_reply_to_user_id] = self.users[tweet.in_reply_to_user_id]
            if "entities.mentions.username" in expansions:
                for m in tweet.entities.get("mentions", []):
                    if "id" in m and m["id"] in self.users:
                        users[m["id"]] = self.users[m["id"]]
            if "referenced_tweets.id" in expansions:
                for _, rid in tweet.refs:
                    ref = self.tweets.get(rid)
                    if ref is not None and not ref.deleted:
                        included[rid] = ref
                        if "referenced_tweets.id.author_id" in expansions:
                            users[ref.author_id] = self.users[ref.author_id]
        return users, included

    def _envelope(
        self,
        tweets: list[Tweet],
        fields: set[str],
        expansions: set[str],
        user_fields: set[str] | None = None,
        *,
        single: bool = False,
    ) -> dict[str, Any]:
        user_fields = user_fields or {"username", "name"}
        users, included = self._expand(tweets, expansions)
        data = [self._render(t, fields) for t in tweets]
        out: dict[str, Any] = {"data": data[0] if single else data}
        includes: dict[str, Any] = {}
        if users:
            includes["users"] = [self._render_user(u, user_fields) for u in users.values()]
        if included:
            includes["tweets"] = [self._render(t, fields) for t in included.values()]
        if includes:
            out["includes"] = includes
        return out

    # ------------------------------------------------------------ HTTP plumbing

    def _wrap(self, endpoint: str, allowed: set[str], handler: Handler) -> Any:
        async def route(request: web.Request) -> web.StreamResponse:
            status = 200
            auth = "none"
            self._arrivals[(endpoint, request.method)] += 1
            try:
                fault = self._take_fault(endpoint)
                if fault is not None:
                    await self._fault_before(request, fault)
                principal = self._authorize(request, allowed)
                auth = principal.kind
                headers = self._count(endpoint, principal)
                body: dict[str, Any] = {}
                if request.method == "POST" and request.can_read_body:
                    raw = await request.read()
                    try:
                        body = orjson.loads(raw) if raw else {}
                    except orjson.JSONDecodeError as exc:
                        raise XApiError(
                            400,
                            "Invalid Request",
                            "Request body is not valid JSON.",
                            "invalid-request",
                        ) from exc
                request[_HEADERS] = headers
                response = await handler(request, principal, body)
                status = response.status
                if fault is not None and fault.kind == "hang_after":
                    await self._hang()
            except XApiError as exc:
                status = exc.status
                return exc.response()
            except ConnectionDropped:
                status = 0
                return web.Response(status=500)  # never reaches the client: it gave up
            else:
                return response
            finally:
                self.requests.append(RecordedRequest(endpoint, request.method, auth, status))

        return route

    async def _fault_before(self, request: web.Request, fault: _Fault) -> None:
        if fault.kind == "fail":
            raise XApiError(fault.status, "Service Unavailable", "Service Unavailable")
        if fault.kind == "429":
            reset = int(self.clock.now().timestamp() + fault.reset_in)
            exc = XApiError(429, "Too Many Requests", "Too Many Requests")
            exc.headers = {
                "x-rate-limit-limit": "50",
                "x-rate-limit-remaining": "0",
                "x-rate-limit-reset": str(reset),
            }
            raise exc
        await misbehave_before(request, fault, self._hang)

    async def _hang(self) -> None:
        """Hold the request until the emulator stops; the client times out first."""
        await self._stopping.wait()
        raise ConnectionDropped

    def _take_fault(self, endpoint: str) -> _Fault | None:
        return self._faults.take(endpoint)

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

    def _json(self, request: web.Request, body: dict[str, Any], status: int = 200) -> web.Response:
        headers = dict(request.get(_HEADERS, {}))
        return web.json_response(body, status=status, headers=headers, dumps=_dumps)

    @staticmethod
    def _fields(request: web.Request, name: str) -> set[str]:
        return {f for f in request.query.get(name, "").split(",") if f}

    # ---------------------------------------------------------------- handlers

    async def _stream(
        self, request: web.Request, who: Principal, body: dict[str, Any]
    ) -> web.StreamResponse:
        if not self.rules:
            raise XApiError(
                409, "ConnectionException", "This stream has no rules.", "streaming-connection"
            )
        if len(self._streams) >= self.max_stream_connections:
            for _ in range(20):  # a client that just hung up may not be gone yet
                await asyncio.sleep(0.01)
                if len(self._streams) < self.max_stream_connections:
                    break
            else:
                raise XApiError(
                    429,
                    "ConnectionException",
                    "This stream is currently at the maximum allowed connection limit.",
                    "streaming-connection",
                    connection_issue="TooManyConnections",
                )
        response = web.StreamResponse(status=200, headers=dict(request.get(_HEADERS, {})))
        response.content_type = "application/json"
        conn = _Stream(
            asyncio.Queue(),
            self._fields(request, "tweet.fields"),
            self._fields(request, "expansions"),
            self._fields(request, "user.fields"),
        )
        # Registered before the headers go out: anything posted after the client sees 200
        # reaches it on the stream.
        self._streams.add(conn)
        self.stream_connections += 1
        try:
            await response.prepare(request)
            while not self._stopping.is_set():
                wait = 0.02 if conn.stalled else self.keepalive_seconds
                try:
                    item = await asyncio.wait_for(conn.queue.get(), wait)
                except TimeoutError:
                    item = b"\r\n"
                if item is None:
                    break
                if conn.stalled:
                    transport = request.transport
                    if transport is None or transport.is_closing():
                        break
                    continue
                try:
                    await response.write(item)
                except (ConnectionError, RuntimeError):
                    break
        finally:
            self._streams.discard(conn)
        return response

    async def _rules_get(
        self, request: web.Request, who: Principal, body: dict[str, Any]
    ) -> web.StreamResponse:
        meta = {"sent": _iso(self.clock.now()), "result_count": len(self.rules)}
        out: dict[str, Any] = {"meta": meta}
        if self.rules:
            out["data"] = [{"id": rid, **rule} for rid, rule in self.rules.items()]
        return self._json(request, out)

    async def _rules_post(
        self, request: web.Request, who: Principal, body: dict[str, Any]
    ) -> web.StreamResponse:
        sent = _iso(self.clock.now())
        if ("add" in body) == ("delete" in body):
            raise XApiError(
                400,
                "Invalid Request",
                "Exactly one of add, delete, or ?delete_all=true must be provided.",
                "invalid-request",
            )
        if "delete" in body:
            ids = [str(i) for i in body["delete"].get("ids", [])]
            gone = [i for i in ids if self.rules.pop(i, None) is not None]
            summary = {"deleted": len(gone), "not_deleted": len(ids) - len(gone)}
            return self._json(request, {"meta": {"sent": sent, "summary": summary}})
        created, errors = [], []
        for rule in body.get("add", []):
            value = str(rule.get("value", ""))
            self._check_query(value)
            if any(r["value"] == value for r in self.rules.values()):
                errors.append(
                    {
                        "value": value,
                        "id": next(i for i, r in self.rules.items() if r["value"] == value),
                        "title": "DuplicateRule",
                        "type": PROBLEMS + "duplicate-rules",
                    }
                )
                continue
            rid = self._new_id()
            self.rules[rid] = {"value": value, "tag": str(rule.get("tag", ""))}
            created.append({"id": rid, **self.rules[rid]})
        summary = {
            "created": len(created),
            "not_created": len(errors),
            "valid": len(created),
            "invalid": 0,
        }
        out: dict[str, Any] = {"meta": {"sent": sent, "summary": summary}}
        if created:
            out["data"] = created
        if errors:
            out["errors"] = errors
        return self._json(request, out, status=201 if created else 200)

    async def _search(
        self, request: web.Request, who: Principal, body: dict[str, Any]
    ) -> web.StreamResponse:
        q = request.query
        query = q.get("query", "")
        self._check_query(query)
        max_results = int(q.get("max_results", "10"))
        if not 10 <= max_results <= 100:
            raise XApiError(
                400,
                "Invalid Request",
                "The `max_results` query parameter value is not between 10 and 100",
                "invalid-request",
            )
        if "since_id" in q and "start_time" in q:
            raise XApiError(
                400,
                "Invalid Request",
                "At most one of start_time, since_id may be provided.",
                "invalid-request",
            )
        since = int(q["since_id"]) if "since_id" in q else 0
        start = (
            datetime.fromisoformat(q["start_time"].replace("Z", "+00:00"))
            if "start_time" in q
            else None
        )
        until = self._decode_token(q["next_token"]) if "next_token" in q else None
        week_ago = self.clock.now() - timedelta(days=7)
        found = [
            t
            for t in self.tweets.values()
            if not t.deleted
            and not t.superseded
            and t.ref("retweeted") is None
            and int(t.id) > since
            and (until is None or int(t.id) < until)
            and t.created_at >= (start or week_ago)
            and self._matches(query, t)
        ]
        found.sort(key=lambda t: int(t.id), reverse=True)
        page = found[:max_results]
        if not page:
            return self._json(request, {"meta": {"result_count": 0}})
        out = self._envelope(
            page,
            self._fields(request, "tweet.fields"),
            self._fields(request, "expansions"),
            self._fields(request, "user.fields"),
        )
        meta: dict[str, Any] = {
            "newest_id": page[0].id,
            "oldest_id": page[-1].id,
            "result_count": len(page),
        }
        if len(found) > max_results:
            meta["next_token"] = (
                base64.urlsafe_b64encode(page[-1].id.encode()).decode().rstrip("=")
            )
        out["meta"] = meta
        return self._json(request, out)

    @staticmethod
    def _decode_token(token: str) -> int:
        try:
            return int(base64.urlsafe_b64decode(token + "==").decode())
        except ValueError as exc:
            raise XApiError(
                400,
                "Invalid Request",
                "The `next_token` query parameter value is invalid",
                "invalid-request",
            ) from exc

    async def _lookup(
        self, request: web.Request, who: Principal, body: dict[str, Any]
    ) -> web.StreamResponse:
        ids = [i for i in request.query.get("ids", "").split(",") if i]
        if not 1 <= len(ids) <= 100:
            raise XApiError(
                400,
                "Invalid Request",
                "The `ids` query parameter value must have between 1 and 100 items",
                "invalid-request",
            )
        present = [self.tweets[i] for i in ids if i in self.tweets and not self.tweets[i].deleted]
        out: dict[str, Any] = {}
        if present:
            out = self._envelope(
                present, self._fields(request, "tweet.fields"), self._fields(request, "expansions")
            )
        missing = [i for i in ids if i not in self.tweets or self.tweets[i].deleted]
        if missing:
            out["errors"] = [
                {
                    "value": i,
                    "detail": f"Could not find tweet with ids: [{i}].",
                    "title": "Not Found Error",
                    "resource_type": "tweet",
                    "parameter": "ids",
                    "resource_id": i,
                    "type": PROBLEMS + "resource-not-found",
                }
                for i in missing
            ]
        return self._json(request, out)

    async def _create(
        self, request: web.Request, who: Principal, body: dict[str, Any]
    ) -> web.StreamResponse:
        assert who.user_id is not None
        allowed = {
            "text",
            "reply",
            "quote_tweet_id",
            "reply_settings",
            "media",
            "poll",
            "nullcast",
            "made_with_ai",
        }
        if set(body) - allowed or not isinstance(body.get("text"), str):
            raise XApiError(
                400,
                "Invalid Request",
                "One or more parameters to your request was invalid.",
                "invalid-request",
            )
        text: str = body["text"]
        if parse_tweet(text).weightedLength > 280:
            raise XApiError(400, "Invalid Request", "Text is too long.", "invalid-request")
        reply_to = (body.get("reply") or {}).get("in_reply_to_tweet_id")
        quote = body.get("quote_tweet_id")
        if quote is not None and not self.enterprise:
            raise XApiError(403, "Forbidden", "Quote-posting requires an Enterprise plan.")
        if reply_to is not None:
            parent = self.tweets.get(str(reply_to))
            if parent is None or parent.deleted:
                raise XApiError(
                    403,
                    "Forbidden",
                    "You attempted to reply to a Tweet that is deleted or not visible to you.",
                )
            if not self.enterprise and not self._summoned(parent, who.user_id):
                raise XApiError(403, "Forbidden", REPLY_RULE_DETAIL)
        day_ago = self.clock.now() - timedelta(hours=24)
        for t in self.tweets.values():
            if (
                t.author_id == who.user_id
                and not t.deleted
                and t.created_at >= day_ago
                and self._plain(t) == text
            ):
                raise XApiError(
                    403,
                    "Forbidden",
                    "You are not allowed to create a Tweet with duplicate content.",
                )
        tweet = self._make_tweet(
            who.user_id, text, reply_to=str(reply_to) if reply_to else None, quote=quote
        )
        self.created_tweets.append({**body, "id": tweet.id})
        self._broadcast(tweet)
        response = self._json(
            request,
            {"data": {"id": tweet.id, "text": tweet.text, "edit_history_tweet_ids": [tweet.id]}},
            status=201,
        )
        response.headers["location"] = f"{self.base_url}/2/tweets/{tweet.id}"
        return response

    def _plain(self, tweet: Tweet) -> str:
        text = tweet.note["text"] if tweet.note else tweet.text
        entities = tweet.note["entities"] if tweet.note else tweet.entities
        for url in entities.get("urls", []):
            text = text.replace(url["url"], url["expanded_url"])
        return text

    def _summoned(self, parent: Tweet, user_id: str) -> bool:
        """Did the parent's author @mention the replier or quote one of their posts?"""
        if parent.author_id == user_id:
            return True
        me = self.users[user_id].username.lower()
        entities = parent.note["entities"] if parent.note else parent.entities
        if any(m["username"].lower() == me for m in entities.get("mentions", [])):
            return True
        quoted = parent.ref("quoted")
        return (
            quoted is not None
            and quoted in self.tweets
            and self.tweets[quoted].author_id == user_id
        )

    async def _me(
        self, request: web.Request, who: Principal, body: dict[str, Any]
    ) -> web.StreamResponse:
        assert who.user_id is not None
        return self._json(
            request,
            {
                "data": self._render_user(
                    self.users[who.user_id], self._fields(request, "user.fields")
                )
            },
        )

    async def _timeline(
        self, request: web.Request, who: Principal, body: dict[str, Any]
    ) -> web.StreamResponse:
        user_id = request.match_info["id"]
        if user_id not in self.users:
            raise XApiError(
                404,
                "Not Found Error",
                f"Could not find user with id: [{user_id}].",
                "resource-not-found",
            )
        max_results = int(request.query.get("max_results", "10"))
        start = request.query.get("start_time")
        since = datetime.fromisoformat(start.replace("Z", "+00:00")) if start else None
        own = [
            t
            for t in self.tweets.values()
            if t.author_id == user_id
            and not t.deleted
            and (since is None or t.created_at >= since)
        ]
        own.sort(key=lambda t: int(t.id), reverse=True)
        page = own[:max_results]
        if not page:
            return self._json(request, {"meta": {"result_count": 0}})
        out = self._envelope(
            page, self._fields(request, "tweet.fields"), self._fields(request, "expansions")
        )
        out["meta"] = {
            "newest_id": page[0].id,
            "oldest_id": page[-1].id,
            "result_count": len(page),
        }
        return self._json(request, out)

    def _check_self(self, request: web.Request, who: Principal) -> str:
        user_id = request.match_info["id"]
        if user_id != who.user_id:
            raise XApiError(
                403,
                "Forbidden",
                "You are not allowed to use this endpoint on behalf of another user.",
            )
        return user_id

    async def _retweet(
        self, request: web.Request, who: Principal, body: dict[str, Any]
    ) -> web.StreamResponse:
        user_id = self._check_self(request, who)
        tweet_id = str(body.get("tweet_id", ""))
        source = self.tweets.get(tweet_id)
        if source is None or source.deleted:
            raise XApiError(
                404,
                "Not Found Error",
                f"Could not find tweet with id: [{tweet_id}].",
                "resource-not-found",
            )
        existing = next(
            (
                t
                for t in self.tweets.values()
                if t.author_id == user_id and t.ref("retweeted") == tweet_id and not t.deleted
            ),
            None,
        )
        if existing is None:
            existing = self._make_retweet(user_id, source)
            self.retweets.append((user_id, tweet_id))
            self._broadcast(existing)
        return self._json(request, {"data": {"retweeted": True, "rest_id": existing.id}})

    async def _unretweet(
        self, request: web.Request, who: Principal, body: dict[str, Any]
    ) -> web.StreamResponse:
        user_id = self._check_self(request, who)
        tweet_id = request.match_info["tweet_id"]
        for t in self.tweets.values():
            if t.author_id == user_id and t.ref("retweeted") == tweet_id and not t.deleted:
                t.deleted = True
        if (user_id, tweet_id) in self.retweets:
            self.retweets.remove((user_id, tweet_id))
        return self._json(request, {"data": {"retweeted": False}})

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
