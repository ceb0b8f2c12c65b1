"""The Facebook emulator's state: the page, its tokens, its content and what was sent."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Sequence

import aiohttp
from aiohttp import web

from mhchat.clock import Clock, SystemClock
from mhchat.emulators.facebook.model import Delivery, Node, Person, SentRecord, _Fault


class FacebookState:
    """Everything the emulator holds; the layers above add Graph's and Meta's behaviour."""

    def __init__(
        self,
        *,
        page_id: str = "104729300000001",
        page_name: str = "MHChat",
        page_token: str = "EAAGpage-emulator-token",  # noqa: S107 - emulator credentials
        user_token: str = "EAAGuser-emulator-token",  # noqa: S107 - emulator credentials
        user: Person | None = None,
        app_secret: str = "emulator-app-secret",  # noqa: S107 - emulator credentials
        clock: Clock | None = None,
        retry_delays: Sequence[float] = (0.0, 0.05, 0.2),
        call_budget: int = 4800,
    ) -> None:
        self.page = Person(page_id, page_name)
        self.page_token = page_token
        self.user_token = user_token
        self.user = user or Person("100000000000077", "Host Person")
        self.app_secret = app_secret
        self.clock: Clock = clock or SystemClock()
        self.retry_delays = tuple(retry_delays)
        self.call_budget = call_budget
        self.base_url = ""
        self.webhook_url: str | None = None
        self.subscription_active = True
        self.token_expired = False
        self.slow_seconds = 0.0
        self.nodes: dict[str, Node] = {}
        self.sent: list[SentRecord] = []
        self.deliveries: list[Delivery] = []
        self.undelivered: list[bytes] = []
        """Changes recorded while the subscription was lapsed."""
        self.requests: list[tuple[str, str]] = []
        """(method, path with query) of every Graph request."""
        self.calls = 0
        self._faults: list[_Fault] = []
        self._ids = itertools.count(139560936744001)
        self._runner: web.AppRunner | None = None
        self._http: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._release = asyncio.Event()
