"""The X emulator's state: settings, users, posts, rules, what was sent, and credentials."""

from __future__ import annotations

import asyncio
import itertools
import secrets
from collections import Counter
from datetime import timedelta
from typing import Any

from aiohttp import web

from mhchat.clock import Clock, SystemClock
from mhchat.emulators.common import FaultQueues
from mhchat.emulators.x.model import (
    DEFAULT_LIMITS,
    TWEPOCH_MS,
    RecordedRequest,
    Tweet,
    XUser,
    _Fault,
    _Stream,
    _Window,
)


class XState:
    """Everything the emulator holds; the layers above add X's behaviour on top of it."""

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

    def _new_id(self) -> str:
        ms = int(self.clock.now().timestamp() * 1000) - TWEPOCH_MS
        candidate = (ms << 22) | (next(self._seq) & 0xFFF)
        self._last_id = max(candidate, self._last_id + 1)
        return str(self._last_id)

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
