"""The Bluesky emulator's records: accounts, stored records, tokens, rate windows, faults, and
XRPC's error answer."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import libipld
from aiohttp import web

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


Handler = Callable[[web.Request, dict[str, Any], "str | None"], Awaitable[dict[str, Any]]]
