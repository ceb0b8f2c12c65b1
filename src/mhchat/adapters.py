"""The adapter interface: a small protocol, optional capabilities, narrow ports, and the loader.

An adapter is a transport. It turns platform payloads into events (pushed into its
``EventSink``), performs actions, and reports health. It never sees the core: it receives an
``AdapterContext`` of narrow ports and nothing else.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from importlib.metadata import entry_points
from typing import Any, ClassVar, Protocol, runtime_checkable

import aiohttp
import structlog
from aiohttp import web

from mhchat.actions import Action, Sent, Skipped
from mhchat.clock import Clock
from mhchat.events import Event, Health, PlatformName

ENTRY_POINT_GROUP = "mhchat.adapters"


class Capability(StrEnum):
    INGEST = "ingest"
    PUBLISH = "publish"
    REPLY = "reply"
    REPOST = "repost"
    UNREPOST = "unrepost"
    WEBHOOK = "webhook"
    BACKFILL = "backfill"
    CHECK_OUTCOME = "check_outcome"


@dataclass(frozen=True, slots=True, kw_only=True)
class Checkpoint:
    """A cursor to save in the same transaction as the events it covers."""

    key: str
    value: str


class EventSink(Protocol):
    """Where an adapter puts the events it parsed. Back-pressure is applied here."""

    async def publish(
        self, events: Sequence[Event], *, checkpoint: Checkpoint | None = None
    ) -> None:
        """Enqueue, waiting while the bus is full. Returns once enqueued (not yet stored)."""
        ...

    async def publish_and_wait(
        self,
        events: Sequence[Event],
        *,
        checkpoint: Checkpoint | None = None,
        timeout: float | None = None,
    ) -> None:
        """Enqueue and return only once the events are stored.

        Raises ``BusFull`` if they could not be enqueued within ``timeout`` and
        ``TimeoutError`` if they were enqueued but not stored in time.
        """
        ...

    def offer(
        self, events: Sequence[Event], *, checkpoint: Checkpoint | None = None
    ) -> asyncio.Future[None] | None:
        """Enqueue without waiting; ``None`` when full. The future resolves once stored."""
        ...


class KeyValueState(Protocol):
    """Durable per-adapter state (sessions, tokens, cursors not tied to events)."""

    async def get(self, key: str) -> str | None: ...

    async def set(self, key: str, value: str) -> None: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class ChatInfo:
    """What an adapter needs to know about the chat it serves."""

    chat_id: str
    hashtag: str
    """Without the leading ``#``."""


class SpooledDelivery(Protocol):
    @property
    def id(self) -> int: ...

    @property
    def received_at(self) -> datetime: ...

    @property
    def body(self) -> bytes: ...


class IntakeSpool(Protocol):
    """A durable first stop for pushed deliveries (webhooks), this adapter's own.

    ``put`` returns once the raw body is on disk (False: full, answer 503); the adapter reads
    deliveries back with ``take`` and calls ``done`` once their events are stored."""

    async def put(self, body: bytes, received_at: datetime) -> bool: ...

    async def take(self, limit: int) -> Sequence[SpooledDelivery]: ...

    async def done(self, ids: Sequence[int]) -> None: ...

    async def wait(self) -> None:
        """Return once something is waiting."""
        ...

    def depth(self) -> int: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class AdapterContext:
    """The narrow ports an adapter receives. Never the core."""

    platform: PlatformName
    chat: ChatInfo
    sink: EventSink
    http: aiohttp.ClientSession
    clock: Clock
    log: structlog.typing.FilteringBoundLogger
    state: KeyValueState
    settings: Mapping[str, Any]
    """This adapter's table from the TOML file (no secrets)."""
    secrets: Mapping[str, str] = field(default_factory=dict, repr=False)
    """Environment variables under ``MHCHAT_<PLATFORM>_*``, with that prefix removed."""
    spool: IntakeSpool | None = None
    """Where a webhook adapter writes deliveries before answering; None: answer once stored."""


@runtime_checkable
class Adapter(Protocol):
    """What every adapter does."""

    capabilities: ClassVar[frozenset[Capability]]

    async def start(self) -> None:
        """Connect and begin ingest. Idempotent. Long-running work goes into own tasks."""
        ...

    async def stop(self) -> None:
        """Stop ingest and release resources. Idempotent; safe after a failed start."""
        ...

    async def perform(self, action: Action) -> Sent | Skipped:
        """Carry out one action; raise an ``AdapterError`` subclass on failure."""
        ...

    def health(self) -> Health: ...


@runtime_checkable
class WebhookCapable(Protocol):
    def webhook_app(self) -> web.Application:
        """A sub-application mounted at ``/webhooks/<platform>``."""
        ...


@runtime_checkable
class BackfillCapable(Protocol):
    async def backfill(self, since_seconds: float) -> int:
        """Fetch what may have been missed in the last ``since_seconds``; return how many."""
        ...


@runtime_checkable
class OutcomeCheckable(Protocol):
    async def check_outcome(self, action: Action) -> Sent | None:
        """Look on the platform whether ``action`` took effect; ``Sent`` if it did."""
        ...


AdapterFactory = Callable[[AdapterContext], Adapter]


@dataclass(frozen=True, slots=True)
class LoadedFactories:
    factories: Mapping[str, AdapterFactory]
    problems: Mapping[str, str]


def load_factories(names: Sequence[str]) -> LoadedFactories:
    """Load the named adapters' factories from entry points.

    A factory that fails to import is reported in ``problems`` and the others still load.
    """
    found = {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}
    factories: dict[str, AdapterFactory] = {}
    problems: dict[str, str] = {}
    for name in names:
        ep = found.get(name)
        if ep is None:
            problems[name] = (
                f"no adapter called {name!r} is installed (known: {', '.join(sorted(found))})"
            )
            continue
        try:
            factories[name] = ep.load()
        except Exception as exc:  # noqa: BLE001 - one broken plugin must not stop the others
            problems[name] = f"adapter {name!r} failed to load: {type(exc).__name__}: {exc}"
    return LoadedFactories(factories=factories, problems=problems)


StartHook = Callable[[], Awaitable[None]]
