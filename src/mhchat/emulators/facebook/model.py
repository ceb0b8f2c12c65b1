"""The Facebook emulator's records: people, posts and comments, writes, webhook deliveries,
Graph's error body, and Meta's serialisation and signature."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

RATE_LIMIT_MESSAGES = {
    4: "(#4) Application request limit reached",
    17: "(#17) User request limit reached",
    32: "(#32) Page request limit reached",
    613: "(#613) Calls to this api have exceeded the rate limit.",
    80001: "(#80001) There have been too many calls to this Page account. Wait a bit and try "
    "again. For more info, please refer to "
    "https://developers.facebook.com/docs/graph-api/overview/rate-limiting.",
}


@dataclass(frozen=True, slots=True)
class Person:
    id: str
    name: str


@dataclass(slots=True)
class Node:
    """A post or a comment on the page."""

    id: str
    author: Person
    message: str
    created: datetime
    post_id: str | None = None
    """For comments: the post they belong to."""
    parent_id: str | None = None
    """For comments: the post (top level) or the comment replied to."""
    removed: bool = False


@dataclass(frozen=True, slots=True)
class SentRecord:
    """A write the page made through Graph."""

    kind: str
    target: str
    message: str
    remote_id: str


@dataclass(slots=True)
class Delivery:
    body: bytes
    attempts: list[int] = field(default_factory=list)
    delivered: bool = False


@dataclass(slots=True)
class _Fault:
    methods: frozenset[str]
    mode: str
    status: int = 400
    body: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)


def graph_time(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S+0000")


def meta_json(payload: object) -> bytes:
    """Serialise like Meta: compact, non-ASCII as ``\\uXXXX``, ``/`` as ``\\/``."""
    text = json.dumps(payload, ensure_ascii=True, separators=(",", ":"))
    return text.replace("/", "\\/").encode("ascii")


def sign(body: bytes, app_secret: str) -> str:
    return "sha256=" + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()


def _cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(str(offset).encode()).decode().rstrip("=")


def _offset(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        return max(0, int(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))) + 1)
    except ValueError:
        return 0


class GraphFailure(Exception):
    def __init__(self, status: int, code: int, message: str, subcode: int | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.subcode = status, code, message, subcode

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"message": self.message, "type": "OAuthException"}
        error["code"] = self.code
        if self.subcode is not None:
            error["error_subcode"] = self.subcode
        error["fbtrace_id"] = "A" + secrets.token_urlsafe(16)
        return {"error": error}
