"""The X emulator's records: users, posts, principals, faults, and X's problem+json errors."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from aiohttp import web

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
