"""The Bluesky adapter: wires the client, the live source, search catch-up and the writer."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Coroutine
from datetime import datetime, timedelta
from typing import Any, ClassVar

from atproto_client import models  # type: ignore[import-untyped]

from mhchat.actions import Action, Publish, Reply, Repost, Sent, Skipped, Unrepost
from mhchat.adapters import AdapterContext, Capability
from mhchat.errors import AdapterError, PermanentFailure, Unsupported
from mhchat.events import Health, HealthStatus

from .client import BlueskyClient
from .config import BlueskyConfig
from .firehose import FirehoseSource
from .intake import Intake
from .jetstream import FrameParser, JetstreamSource, micros_to_time
from .profiles import ProfileCache
from .search import SearchCatchup
from .writer import Writer

PROFILE = "app.bsky.actor.profile"


class BlueskyAdapter:
    """Transport for one Bluesky account and one chat hashtag."""

    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {
            Capability.INGEST,
            Capability.PUBLISH,
            Capability.REPLY,
            Capability.REPOST,
            Capability.UNREPOST,
            Capability.BACKFILL,
            Capability.CHECK_OUTCOME,
        }
    )

    def __init__(self, ctx: AdapterContext, config: BlueskyConfig) -> None:
        self.ctx = ctx
        self.config = config
        self.counters: Counter[str] = Counter()
        self.client = BlueskyClient(config, state=ctx.state, clock=ctx.clock, log=ctx.log)
        self.profiles = ProfileCache(
            self.client, ctx.clock, timeout=config.profile_timeout_seconds
        )
        self.intake = Intake(
            platform=ctx.platform,
            sink=ctx.sink,
            state=ctx.state,
            profiles=self.profiles,
            host_did=lambda: self.client.did,
            counters=self.counters,
            log=ctx.log,
            linger=config.batch_linger_seconds,
        )
        self.search = SearchCatchup(
            client=self.client,
            config=config,
            intake=self.intake,
            clock=ctx.clock,
            platform=ctx.platform,
            tag=ctx.chat.hashtag,
            host_did=lambda: self.client.did,
            counters=self.counters,
        )
        self.writer = Writer(self.client, config, ctx.clock)
        self.stream: JetstreamSource | FirehoseSource | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._intake_task: asyncio.Task[None] | None = None
        self._started = False
        self._closed = False
        self.fallback_active = False

    # --------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        if self._started:
            return
        self._started = True
        await self.intake.load()
        await self.client.open()
        if self.config.label_automated and self.client.did is not None:
            await self._label_automated()
        self._intake_task = asyncio.create_task(self.intake.run(), name="bluesky-intake")
        cursor_key = "firehose_cursor" if self.config.source == "firehose" else "jetstream_cursor"
        self.intake.cursor_key = cursor_key
        saved = await self.ctx.state.get(cursor_key)
        if self.config.source == "jetstream":
            self.stream = self._jetstream()
            cursor = await self._jetstream_cursor(saved)
            self._spawn(self.stream.run(cursor), "bluesky-jetstream")
        elif self.config.source == "firehose":
            self.stream = FirehoseSource(
                config=self.config,
                clock=self.ctx.clock,
                intake=self.intake,
                parser=self._parser(),
                counters=self.counters,
                log=self.ctx.log,
            )
            self._spawn(self.stream.run(int(saved) if saved else None), "bluesky-firehose")
        self._spawn(self._fallback_loop(), "bluesky-search-fallback")
        self.ctx.log.info("bluesky.started", source=self.config.source, did=self.client.did)

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        self._tasks.append(asyncio.create_task(coro, name=name))

    def _dead_tasks(self) -> list[str]:
        """Long-running tasks that ended although the adapter was not stopped."""
        tasks = [t for t in self._tasks if t.get_name() != "bluesky-catch-up"]
        if self._intake_task is not None:
            tasks.append(self._intake_task)
        return [t.get_name() for t in tasks if t.done()]

    def _parser(self) -> FrameParser:
        return FrameParser(
            tag=self.ctx.chat.hashtag,
            host_did=lambda: self.client.did,
            authors=lambda: self.intake.authors,
            note_author=self.intake.note_author,
            counters=self.counters,
        )

    def _jetstream(self) -> JetstreamSource:
        return JetstreamSource(
            config=self.config,
            http=self.ctx.http,
            clock=self.ctx.clock,
            intake=self.intake,
            parser=self._parser(),
            counters=self.counters,
            log=self.ctx.log,
        )

    async def _jetstream_cursor(self, saved: str | None) -> int | None:
        """Where to start: the saved cursor; the start time on a first start (so nothing
        posted while connecting is missed); live plus a search catch-up if it is too old."""
        if not saved:
            return int(self.ctx.clock.now().timestamp() * 1_000_000)
        cursor = int(saved)
        oldest = self.ctx.clock.now() - timedelta(seconds=self.config.max_replay_seconds)
        if micros_to_time(cursor) >= oldest:
            return cursor
        since = micros_to_time(cursor) - timedelta(seconds=self.config.cursor_overlap_seconds)
        self._spawn(self._catch_up(since), "bluesky-catch-up")
        return None

    async def _catch_up(self, since: datetime) -> None:
        try:
            found = await self.search.run_since(since)
            self.ctx.log.info("bluesky.catch_up", found=found)
        except AdapterError as exc:
            self.ctx.log.warning("bluesky.catch_up_failed", error=type(exc).__name__)

    async def _fallback_loop(self) -> None:
        """Poll searchPosts while the live source is down (or always, for source=search)."""
        clock, config = self.ctx.clock, self.config
        last = clock.now() - timedelta(seconds=config.search_poll_seconds)
        while True:
            await clock.sleep(config.search_poll_seconds)
            down_since = self.stream.down_since if self.stream is not None else last
            due = down_since is not None and (
                self.stream is None
                or clock.now() - down_since >= timedelta(seconds=config.fallback_after_seconds)
            )
            self.fallback_active = due and self.stream is not None
            if not due:
                last = clock.now()
                continue
            started = clock.now()
            since = min(last, down_since or last) - timedelta(
                seconds=config.cursor_overlap_seconds
            )
            try:
                await self.search.run_since(since)
                last = started
            except AdapterError as exc:
                self.ctx.log.info("bluesky.search_poll_failed", error=type(exc).__name__)

    async def stop(self) -> None:
        if self._started:
            self._started = False
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            self._tasks.clear()
            if self._intake_task is not None:
                await self.intake.drain(2.0)
                self._intake_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._intake_task
                self._intake_task = None
        if not self._closed:
            self._closed = True
            await self.client.close()

    # ------------------------------------------------------------------ health

    def health(self) -> Health:
        counters = Counter(self.counters)
        counters["profile_lookup_failures"] = self.profiles.failures
        status, detail = self._status()
        return Health(
            status=status,
            detail=detail,
            budgets=self.client.budget.budgets(),
            counters=tuple(sorted(counters.items())),
        )

    def _status(self) -> tuple[HealthStatus, str]:
        if not self._started:
            return HealthStatus.STOPPED, ""
        dead = self._dead_tasks()
        if dead:
            return HealthStatus.DOWN, f"stopped unexpectedly: {', '.join(dead)}"
        if self.client.auth_problem:
            return HealthStatus.AUTH_EXPIRED, self.client.auth_problem
        # A refused sign-in (429 on createSession) blocks every action as surely as a write
        # limit does, so it must show, not hide behind an OK.
        for scope, what in (("session", "sign-in"), ("write", "writes")):
            if scope == "session" and self.client.did is not None:
                continue  # signed in already: a spent sign-in budget stops nothing
            blocked = self.client.budget.blocked_until(scope)
            if blocked is not None:
                return HealthStatus.RATE_LIMITED, f"{what} paused until {blocked.isoformat()}"
        if self.stream is not None and not self.stream.connected:
            detail = "live stream reconnecting"
            if self.fallback_active:
                detail += "; polling searchPosts meanwhile"
            return HealthStatus.DEGRADED, detail
        return HealthStatus.OK, ""

    # ----------------------------------------------------------------- actions

    async def perform(self, action: Action) -> Sent | Skipped:
        if isinstance(action, Publish):
            return await self.writer.publish(action)
        if isinstance(action, Reply):
            return await self.writer.reply(action)
        if isinstance(action, Repost):
            return await self.writer.repost(action)
        if isinstance(action, Unrepost):
            return await self.writer.unrepost(action)
        raise Unsupported(f"Bluesky cannot perform {type(action).__name__}")

    async def check_outcome(self, action: Action) -> Sent | None:
        return await self.writer.check_outcome(action)

    async def backfill(self, since_seconds: float) -> int:
        since = self.ctx.clock.now() - timedelta(seconds=since_seconds)
        return await self.search.run_since(since)

    # ----------------------------------------------------------- bot labelling

    async def _label_automated(self) -> None:
        """Add the "bot" self-label to the host's profile record, as Bluesky asks of bots."""
        did = self.client.did
        try:
            swap: str | None
            try:
                _, swap, value = await self.writer.fetch(f"at://{did}/{PROFILE}/self")
            except PermanentFailure:
                swap, value = None, {"$type": PROFILE}
            labels = value.get("labels") or {"$type": "com.atproto.label.defs#selfLabels"}
            values = list(labels.get("values") or [])
            if any(v.get("val") == "bot" for v in values):
                return
            labels["values"] = [*values, {"val": "bot"}]
            value["labels"] = labels
            # swap_record: if the profile changed since it was read, the PDS refuses rather
            # than lose that change.
            data = models.ComAtprotoRepoPutRecord.Data(
                repo=did, collection=PROFILE, rkey="self", record=value, swap_record=swap
            )
            await self.client.call(
                "putRecord(profile)",
                lambda: self.client.sdk.com.atproto.repo.put_record(data),
                write="update",
            )
            self.ctx.log.info("bluesky.labelled_automated", did=did)
        except AdapterError as exc:
            self.ctx.log.warning("bluesky.label_failed", error=type(exc).__name__)
