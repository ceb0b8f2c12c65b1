"""Public test helpers: a fake clock, a fake adapter, in-memory ports and the adapter contract.

Every real adapter's test module subclasses ``AdapterContract`` and provides a ``harness``
fixture, so each adapter is held to the same behaviour.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import socket
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import aiohttp
import pytest
import structlog

from mhchat.actions import (
    Action,
    ActionKind,
    Publish,
    Purpose,
    Reply,
    Repost,
    Sent,
    Skipped,
    Unrepost,
)
from mhchat.adapters import (
    Adapter,
    AdapterContext,
    Capability,
    ChatInfo,
    Checkpoint,
)
from mhchat.errors import AdapterError, OutcomeUnknown, Unsupported
from mhchat.events import (
    Author,
    Event,
    Health,
    HealthStatus,
    PlatformName,
    Post,
    PostDeleted,
    PostReceived,
    PostRef,
    RemoteId,
)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now (for a server a test starts in a subprocess)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class FakeClock:
    """A clock that only moves when told to. ``sleep`` waits until ``advance`` passes its time."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 7, 19, 0, tzinfo=UTC)
        self._sleepers: list[tuple[datetime, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def now(self) -> datetime:
        return self._now

    def set(self, value: datetime) -> None:
        self._now = value.astimezone(UTC)
        self._wake()

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        wake_at = self._now + timedelta(seconds=seconds)
        heapq.heappush(self._sleepers, (wake_at, next(self._seq), fut))
        await fut

    def advance(self, seconds: float) -> None:
        self._now += timedelta(seconds=seconds)
        self._wake()

    def _wake(self) -> None:
        while self._sleepers and self._sleepers[0][0] <= self._now:
            _, _, fut = heapq.heappop(self._sleepers)
            if not fut.done():
                fut.set_result(None)


class MemoryState:
    """In-memory ``KeyValueState``."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}

    async def get(self, key: str) -> str | None:
        return self.values.get(key)

    async def set(self, key: str, value: str) -> None:
        self.values[key] = value


class RecordingSink:
    """An ``EventSink`` that "stores" at once: it records events and saves checkpoints.

    Checkpoints land in the given ``MemoryState``, as the real store saves them into the
    adapter's state in the same transaction as the events.
    """

    def __init__(self, state: MemoryState | None = None, *, capacity: int | None = None) -> None:
        self.state = state or MemoryState()
        self.events: list[Event] = []
        self.capacity = capacity
        self._changed = asyncio.Event()

    def _store(self, events: Sequence[Event], checkpoint: Checkpoint | None) -> None:
        self.events.extend(events)
        if checkpoint is not None:
            self.state.values[checkpoint.key] = checkpoint.value
        self._changed.set()

    async def publish(
        self, events: Sequence[Event], *, checkpoint: Checkpoint | None = None
    ) -> None:
        self._store(events, checkpoint)

    async def publish_and_wait(
        self,
        events: Sequence[Event],
        *,
        checkpoint: Checkpoint | None = None,
        timeout: float | None = None,
    ) -> None:
        self._store(events, checkpoint)

    def offer(
        self, events: Sequence[Event], *, checkpoint: Checkpoint | None = None
    ) -> asyncio.Future[None] | None:
        if self.capacity is not None and len(self.events) + len(events) > self.capacity:
            return None
        self._store(events, checkpoint)
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        fut.set_result(None)
        return fut

    def posts(self) -> list[Post]:
        return [e.post for e in self.events if isinstance(e, PostReceived)]

    def remote_ids(self) -> list[str]:
        return [p.remote_id for p in self.posts()]

    async def wait_for(
        self, predicate: Callable[[list[Event]], bool], timeout: float = 10.0
    ) -> None:
        """Wait until ``predicate(events)`` holds, or fail after ``timeout`` seconds."""
        async with asyncio.timeout(timeout):
            while not predicate(self.events):
                self._changed.clear()
                await self._changed.wait()


FAKE = PlatformName("fake")


def _ref(remote_id: str | None) -> PostRef | None:
    return PostRef(remote_id=RemoteId(remote_id)) if remote_id else None


def make_post(
    remote_id: str,
    *,
    author: str = "alice",
    text: str = "A1 hello #MHChat",
    platform: PlatformName = FAKE,
    created_at: datetime | None = None,
    parent: str | None = None,
    root: str | None = None,
    quoted: str | None = None,
    is_own: bool = False,
    mentions_host: bool = False,
) -> Post:
    """A normalised post for tests, with sensible defaults."""
    return Post(
        platform=platform,
        remote_id=RemoteId(remote_id),
        author=Author(platform=platform, author_id=f"id-{author}", handle=author),
        text=text,
        created_at=created_at or datetime(2026, 1, 7, 20, 5, tzinfo=UTC),
        reply_parent=PostRef(remote_id=RemoteId(parent)) if parent else None,
        reply_root=_ref(root or parent),
        quoted=PostRef(remote_id=RemoteId(quoted)) if quoted else None,
        hashtags=("mhchat",),
        is_own=is_own,
        mentions_host=mentions_host,
    )


class FakeAdapter:
    """An in-memory platform. Tests push posts in and read what was performed.

    ``fail_next`` makes the next ``perform`` raise the given error, after recording the call
    when ``reached`` is true (a timeout after the request reached the platform).
    """

    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {
            Capability.INGEST,
            Capability.PUBLISH,
            Capability.REPLY,
            Capability.REPOST,
            Capability.UNREPOST,
            Capability.CHECK_OUTCOME,
        }
    )

    def __init__(self, ctx: AdapterContext) -> None:
        self.ctx = ctx
        self.performed: list[Action] = []
        self.effects: dict[str, str] = {}
        self._failures: list[tuple[AdapterError, bool]] = []
        self._started = False
        self._counter = itertools.count(1)
        self.delay: float = 0.0
        self.crash_on_start: Exception | None = None

    async def start(self) -> None:
        if self.crash_on_start is not None:
            raise self.crash_on_start
        self._started = True

    async def stop(self) -> None:
        self._started = False

    @property
    def started(self) -> bool:
        return self._started

    def fail_next(self, error: AdapterError, *, reached: bool = False) -> None:
        self._failures.append((error, reached))

    async def perform(self, action: Action) -> Sent | Skipped:
        if self.delay:
            await asyncio.sleep(self.delay)
        if self._failures:
            error, reached = self._failures.pop(0)
            if reached:
                self._record(action)
            raise error
        return self._record(action)

    def _record(self, action: Action) -> Sent:
        self.performed.append(action)
        remote = f"fake-{next(self._counter)}"
        self.effects[action.key] = remote
        return Sent(remote_id=remote)

    async def check_outcome(self, action: Action) -> Sent | None:
        remote = self.effects.get(action.key)
        return Sent(remote_id=remote) if remote else None

    def health(self) -> Health:
        return Health(status=HealthStatus.OK if self._started else HealthStatus.STOPPED)

    async def inject(self, *posts: Post) -> None:
        """Deliver posts as the platform would."""
        await self.ctx.sink.publish([PostReceived(post=p) for p in posts])

    async def delete(self, remote_id: str) -> None:
        await self.ctx.sink.publish(
            [
                PostDeleted(
                    platform=self.ctx.platform,
                    remote_id=RemoteId(remote_id),
                    deleted_at=self.ctx.clock.now(),
                )
            ]
        )


def create_fake_adapter(ctx: AdapterContext) -> FakeAdapter:
    """Entry point for the ``fake`` adapter.

    Settings ``crash_on_start`` and ``delay_seconds`` let tests and demos exercise failures.
    """
    adapter = FakeAdapter(ctx)
    if ctx.settings.get("crash_on_start"):
        adapter.crash_on_start = RuntimeError("fake adapter told to crash on start")
    adapter.delay = float(ctx.settings.get("delay_seconds", 0.0))
    return adapter


def sample_actions(platform: PlatformName) -> dict[ActionKind, Action]:
    """One action of each kind, for contract tests."""
    target = PostRef(remote_id=RemoteId("1"), version=None)
    return {
        ActionKind.PUBLISH: Publish(
            key=f"contract:publish:{platform}",
            platform=platform,
            purpose=Purpose.QUESTION,
            text="Q1 How are you today? #MHChat",
        ),
        ActionKind.REPLY: Reply(
            key=f"contract:reply:{platform}",
            platform=platform,
            purpose=Purpose.WELCOME,
            text="Welcome! Be kind #MHChat",
            parent=target,
            root=target,
            parent_mentions_host=True,
        ),
        ActionKind.REPOST: Repost(
            key=f"contract:repost:{platform}",
            platform=platform,
            purpose=Purpose.REPOST,
            target=target,
        ),
        ActionKind.UNREPOST: Unrepost(
            key=f"contract:unrepost:{platform}",
            platform=platform,
            purpose=Purpose.UNDO_REPOST,
            target=target,
        ),
    }


_KIND_CAPABILITY = {
    ActionKind.PUBLISH: Capability.PUBLISH,
    ActionKind.REPLY: Capability.REPLY,
    ActionKind.REPOST: Capability.REPOST,
    ActionKind.UNREPOST: Capability.UNREPOST,
}


@dataclass
class ContractHarness:
    """What an adapter's test module supplies to the contract suite.

    - ``factory`` builds the adapter from a context.
    - ``deliver_post`` makes the platform (its emulator) produce one post with the hashtag
      through the adapter's real inbound path, and returns the remote id the adapter should
      report. It is also called while the adapter is stopped: the platform must then keep the
      post for the adapter to pick up after it restarts (stream cursor, redelivery, backfill).
    - ``succeeding_action`` is an action the platform accepts; ``arm_timeout_after_send``
      makes the platform accept the next write and then never answer.
    """

    platform: PlatformName
    factory: Callable[[AdapterContext], Adapter]
    deliver_post: Callable[[str], Awaitable[str]]
    succeeding_action: Callable[[], Awaitable[Action]]
    arm_timeout_after_send: Callable[[], Awaitable[None]]
    settings: Mapping[str, Any] = field(default_factory=dict)
    secrets: Mapping[str, str] = field(default_factory=dict)
    hashtag: str = "MHChat"
    receive_timeout: float = 15.0


def make_context(
    harness: ContractHarness,
    http: aiohttp.ClientSession,
    sink: RecordingSink,
) -> AdapterContext:
    return AdapterContext(
        platform=harness.platform,
        chat=ChatInfo(chat_id="default", hashtag=harness.hashtag),
        sink=sink,
        http=http,
        clock=_system_clock(),
        log=structlog.get_logger("contract").bind(platform=harness.platform),
        state=sink.state,
        settings=harness.settings,
        secrets=harness.secrets,
    )


def _system_clock() -> Any:
    from mhchat.clock import SystemClock  # noqa: PLC0415 - keeps FakeClock importable alone

    return SystemClock()


class AdapterContract:
    """Behaviour every adapter must show. Subclass it and define a ``harness`` fixture."""

    async def test_start_and_stop_are_idempotent(self, harness: ContractHarness) -> None:
        """start twice then stop twice is harmless; stop before start is harmless."""
        async with aiohttp.ClientSession() as http:
            never_started = harness.factory(make_context(harness, http, RecordingSink()))
            await never_started.stop()
            adapter = harness.factory(make_context(harness, http, RecordingSink()))
            await adapter.start()
            await adapter.start()
            await adapter.stop()
            await adapter.stop()
            assert isinstance(adapter.health(), Health)

    async def test_unsupported_actions_raise_unsupported(self, harness: ContractHarness) -> None:
        """An action kind outside the declared capabilities raises Unsupported."""
        async with aiohttp.ClientSession() as http:
            adapter = harness.factory(make_context(harness, http, RecordingSink()))
            missing = [
                kind
                for kind, cap in _KIND_CAPABILITY.items()
                if cap not in type(adapter).capabilities
            ]
            for kind in missing:
                with pytest.raises(Unsupported):
                    await adapter.perform(sample_actions(harness.platform)[kind])
            assert Capability.INGEST in type(adapter).capabilities

    async def test_post_from_platform_becomes_one_event(self, harness: ContractHarness) -> None:
        """A hashtag post from the platform arrives in the sink as PostReceived."""
        async with aiohttp.ClientSession() as http:
            sink = RecordingSink()
            adapter = harness.factory(make_context(harness, http, sink))
            await adapter.start()
            try:
                remote_id = await harness.deliver_post("contract one #MHChat")
                await sink.wait_for(
                    lambda _: remote_id in sink.remote_ids(), harness.receive_timeout
                )
            finally:
                await adapter.stop()
            post = next(p for p in sink.posts() if p.remote_id == remote_id)
            assert post.platform == harness.platform
            assert post.created_at.tzinfo is not None

    async def test_timeout_after_send_is_outcome_unknown(self, harness: ContractHarness) -> None:
        """A write that reached the platform but got no answer is OutcomeUnknown."""
        async with aiohttp.ClientSession() as http:
            adapter = harness.factory(make_context(harness, http, RecordingSink()))
            await adapter.start()
            try:
                action = await harness.succeeding_action()
                await harness.arm_timeout_after_send()
                with pytest.raises(OutcomeUnknown):
                    await adapter.perform(action)
            finally:
                await adapter.stop()

    async def test_restart_with_saved_state_loses_nothing(self, harness: ContractHarness) -> None:
        """A post made while the adapter was down arrives after restart with the same state."""
        async with aiohttp.ClientSession() as http:
            state = MemoryState()
            first = RecordingSink(state)
            adapter = harness.factory(make_context(harness, http, first))
            await adapter.start()
            try:
                before = await harness.deliver_post("before restart #MHChat")
                await first.wait_for(
                    lambda _: before in first.remote_ids(), harness.receive_timeout
                )
            finally:
                await adapter.stop()
            during = await harness.deliver_post("while down #MHChat")
            second = RecordingSink(state)
            adapter = harness.factory(make_context(harness, http, second))
            await adapter.start()
            try:
                await second.wait_for(
                    lambda _: during in second.remote_ids(), harness.receive_timeout
                )
            finally:
                await adapter.stop()
