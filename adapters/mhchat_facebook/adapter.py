"""The Facebook page adapter: webhook intake, Graph actions as the page, feed backfill, health."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Awaitable
from datetime import datetime, timedelta
from typing import ClassVar

from aiohttp import web

from mhchat.actions import Action, Publish, Reply, Repost, Sent, Unrepost
from mhchat.adapters import AdapterContext, Capability, Checkpoint, IntakeSpool
from mhchat.errors import (
    AdapterError,
    AuthExpired,
    OutcomeUnknown,
    RateLimited,
    Unsupported,
)
from mhchat.events import AdapterHealthChanged, Event, Health, HealthStatus, Post
from mhchat_facebook.backfill import FeedPoller
from mhchat_facebook.config import FacebookConfig
from mhchat_facebook.graph import GraphClient, ObjectMissing, object_path
from mhchat_facebook.mapping import Parsed, graph_node_post
from mhchat_facebook.webhook import (
    ALIVE_KEY,
    Malformed,
    WebhookEndpoint,
    consume_future,
    failure,
    parse_json,
)

SPOOL_BATCH = 500
"""Deliveries parsed and stored per round of the spool reader: one ingest transaction."""

_SINCE_MARGIN = timedelta(seconds=60)
"""Overlap of each poll with the last covered time: created_time lags and clocks differ."""


class FacebookAdapter:
    """One Facebook page. Its events arrive by webhook; the feed is polled when they stop."""

    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {
            Capability.INGEST,
            Capability.PUBLISH,
            Capability.REPLY,
            Capability.WEBHOOK,
            Capability.BACKFILL,
            Capability.CHECK_OUTCOME,
        }
    )

    def __init__(self, ctx: AdapterContext, config: FacebookConfig) -> None:
        self.ctx = ctx
        self.config = config
        self.counters: Counter[str] = Counter()
        self.graph = GraphClient(http=ctx.http, config=config, clock=ctx.clock, log=ctx.log)
        self._poller = FeedPoller(
            graph=self.graph,
            platform=ctx.platform,
            page_id=config.page_id,
            post_lookback=timedelta(seconds=config.post_lookback_seconds),
        )
        self._endpoint = WebhookEndpoint(ctx=ctx, config=config, host=self, counters=self.counters)
        self._running = False
        self._task: asyncio.Task[None] | None = None
        self._reader: asyncio.Task[None] | None = None
        self._started_at: datetime | None = None
        self._last_delivery: datetime | None = None
        self._last_activity: datetime | None = None
        self._covered_until: datetime | None = None
        self._token_problem: str | None = None
        self._graph_problem: str | None = None
        self._backfill_lock = asyncio.Lock()
        self._settled = asyncio.Event()
        self._reported: HealthStatus | None = None
        self._gap_since: datetime | None = None

    # -- intake host -------------------------------------------------------------------------

    @property
    def accepting(self) -> bool:
        return self._running

    def note_delivery(self, events: int) -> None:
        now = self.ctx.clock.now()
        self._last_delivery = now
        if events:
            self._last_activity = now

    def delivery_spooled(self, at: datetime) -> None:
        # Webhooks are alive now, whatever the spool reader has parsed so far: no quiet-feed
        # poll while deliveries wait in the spool.
        self._last_delivery = at

    def webhook_app(self) -> web.Application:
        return self._endpoint.app()

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        if self._running:
            return
        self._running = True
        self._settled.clear()
        self._reported = HealthStatus.OK  # report departures from OK, and the way back
        self._started_at = self.ctx.clock.now()
        self._task = asyncio.create_task(self._watch(), name="facebook-feed-watch")
        if self.ctx.spool is not None:
            self._reader = asyncio.create_task(
                self._read_spool(self.ctx.spool), name="facebook-spool-reader"
            )
        self.ctx.log.info("facebook_started", page_id=self.config.page_id)

    async def stop(self) -> None:
        self._running = False
        for task in (self._task, self._reader):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._task = self._reader = None

    async def _read_spool(self, spool: IntakeSpool) -> None:
        """Parse spooled deliveries in large batches; drop each only once its events are stored.

        A batch that cannot be stored (bus refusing, store failing) stays in the spool and is
        tried again; a restart finds it there too."""
        while True:
            await spool.wait()
            items = await spool.take(SPOOL_BATCH)
            if not items:
                await asyncio.sleep(0.05)
                continue
            events: list[Event] = []
            for item in items:
                try:
                    data = parse_json(item.body)
                except Malformed:
                    self.counters["malformed"] += 1  # refused at the door; kept for safety
                    continue
                events += self._endpoint.events_of(data, item.received_at)
            if events:
                checkpoint = Checkpoint(key=ALIVE_KEY, value=self.ctx.clock.now().isoformat())
                try:
                    await self.ctx.sink.publish_and_wait(events, checkpoint=checkpoint)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # noqa: BLE001 - kept in the spool, tried again
                    self.counters["spool_store_failed"] += 1
                    self.ctx.log.error("facebook_spool_store_failed", **failure(exc))
                    await self.ctx.clock.sleep(1.0)
                    continue
                self.counters["events"] += len(events)
            await spool.done([item.id for item in items])
            self.counters["spool_stored"] += len(items)
            self.ctx.log.info("facebook_spool_stored", deliveries=len(items), events=len(events))

    async def _watch(self) -> None:
        """Check the token, fill the gap since the last run, then poll when webhooks go quiet."""
        try:
            await self._guarded(self.check_token())
            self._gap_since = await self._saved_gap()
            await self._guarded(self._fill_gap())
        finally:
            self._settled.set()
        while True:
            self._report_health()
            await self.ctx.clock.sleep(self.config.backfill_check_seconds)
            if self._gap_since is not None:
                # The catch-up after start failed (Graph down?): keep trying, or the gap is
                # lost once new deliveries move the saved checkpoint forward.
                await self._guarded(self._fill_gap())
                continue
            since = self.backfill_due()
            if since is not None:
                self.counters["quiet_backfills"] += 1
                await self._guarded(self._backfill_since(since))

    def _report_health(self) -> None:
        """Tell the core when the status changes (token, rate limit, quiet webhooks)."""
        health = self.health()
        if health.status in (self._reported, HealthStatus.STOPPED):
            return
        self._reported = health.status
        event = AdapterHealthChanged(
            platform=self.ctx.platform, health=health, at=self.ctx.clock.now()
        )
        try:
            fut = self.ctx.sink.offer([event])
        except Exception as exc:  # noqa: BLE001 - a report must not break the watcher or an action
            self.ctx.log.error("facebook_health_report_failed", **failure(exc))
            return
        if fut is not None:
            fut.add_done_callback(consume_future)

    async def settled(self) -> None:
        """Wait until the first token check and the catch-up after start are done."""
        await self._settled.wait()

    async def _guarded(self, work: Awaitable[object]) -> None:
        try:
            await work
        except AdapterError as exc:
            self._graph_problem = f"{type(exc).__name__}: {exc}"
            self.ctx.log.warning("facebook_backfill_failed", error=type(exc).__name__)
        except Exception as exc:  # noqa: BLE001 - the watcher must outlive one bad poll
            self._graph_problem = f"backfill failed: {type(exc).__name__}"
            # No traceback locals in the log: they would carry people's posts.
            self.ctx.log.error("facebook_backfill_crashed", **failure(exc))

    async def _saved_gap(self) -> datetime | None:
        """Where the catch-up after a restart starts: the last stored delivery, bounded."""
        saved = await self.ctx.state.get(ALIVE_KEY)
        try:
            alive_at = datetime.fromisoformat(saved) if saved else None
        except ValueError:
            alive_at = None
        if alive_at is None or alive_at.tzinfo is None:
            return None
        floor = self.ctx.clock.now() - timedelta(seconds=self.config.max_catch_up_seconds)
        return max(alive_at - _SINCE_MARGIN, floor)

    async def _fill_gap(self) -> None:
        if self._gap_since is not None:
            await self._backfill_since(self._gap_since)
            self._gap_since = None

    def backfill_due(self) -> datetime | None:
        """The time to poll from when the chat is live and webhooks have been quiet, else None."""
        now = self.ctx.clock.now()
        if self._last_activity is None:
            return None
        limited = self.graph.rate_limited_until
        if limited is not None and limited > now:
            return None
        if now - self._last_activity > timedelta(seconds=self.config.live_window_seconds):
            return None
        known = [t for t in (self._last_delivery, self._covered_until, self._started_at) if t]
        covered = max(known) if known else now
        if now - covered < timedelta(seconds=self.config.quiet_seconds):
            return None
        return covered - _SINCE_MARGIN

    # -- backfill ----------------------------------------------------------------------------

    async def backfill(self, since_seconds: float) -> int:
        """Poll the page feed for what was created in the last ``since_seconds``."""
        return await self._backfill_since(self.ctx.clock.now() - timedelta(seconds=since_seconds))

    async def _backfill_since(self, since: datetime) -> int:
        async with self._backfill_lock:
            started = self.ctx.clock.now()
            parsed = Parsed()
            events = await self._poller.collect(since, parsed)
            for reason, count in parsed.ignored.items():
                self.counters[f"ignored:{reason}"] += count
            if events:
                checkpoint = Checkpoint(key=ALIVE_KEY, value=started.isoformat())
                await self.ctx.sink.publish(events, checkpoint=checkpoint)
                self._last_activity = started
            self._covered_until = started
            self._graph_problem = None
            self.counters["backfilled"] += len(events)
            self.ctx.log.info("facebook_backfill", count=len(events))
            return len(events)

    # -- token -------------------------------------------------------------------------------

    async def check_token(self) -> Health:
        """Ask Graph who the token is: it must be the page itself, not a person."""
        try:
            me = await self.graph.whoami()
        except AdapterError as exc:
            self._graph_problem = f"{type(exc).__name__}: {exc}"
            return self.health()
        owner = str(me.get("id", ""))
        if owner != self.config.page_id:
            self._token_problem = (
                "MHCHAT_FACEBOOK_PAGE_ACCESS_TOKEN is not a Page access token for page "
                f"{self.config.page_id}: it speaks for another account (id {owner or 'unknown'}), "
                "most likely a user token. Fetch the page's own token with "
                "GET /{user-id}/accounts and set that instead."
            )
            self.ctx.log.error("facebook_wrong_token_kind", page_id=self.config.page_id)
        else:
            self._token_problem = None
            self._graph_problem = None
        return self.health()

    # -- actions -----------------------------------------------------------------------------

    async def perform(self, action: Action) -> Sent:
        if isinstance(action, Repost | Unrepost):
            raise Unsupported(
                "a Facebook page cannot repost or undo a repost; reply on the page's thread"
            )
        if self._token_problem:
            raise AuthExpired(self._token_problem)
        now = self.ctx.clock.now()
        until = self.graph.rate_limited_until
        if until is not None and until > now:
            raise RateLimited("Graph rate limit still in force", retry_at=until)
        if isinstance(action, Publish):
            path = object_path(self.config.page_id, "feed")
        else:
            path = object_path(action.parent.remote_id, "comments")
        try:
            body = await self.graph.post(path, {"message": action.text})
        except AdapterError:
            self._report_health()
            raise
        remote_id = body.get("id")
        if not isinstance(remote_id, str) or not remote_id:
            raise OutcomeUnknown("Graph accepted the write but returned no id")
        self._last_activity = now
        self.ctx.log.info("facebook_sent", kind=action.kind, key=action.key, remote_id=remote_id)
        return Sent(remote_id=remote_id)

    async def check_outcome(self, action: Action) -> Sent | None:
        """Look for our own text among the page's posts or the parent's comments."""
        if isinstance(action, Publish):
            path = object_path(self.config.page_id, "feed")
            params = {"fields": "id,message,from{id},created_time", "limit": "25"}
        elif isinstance(action, Reply):
            path = object_path(action.parent.remote_id, "comments")
            params = {
                "fields": "id,message,from{id},created_time",
                "filter": "toplevel",
                "order": "reverse_chronological",
                "limit": "100",
            }
        else:
            return None
        body = await self.graph.get(path, params)
        data = body.get("data")
        for node in data if isinstance(data, list) else []:
            if not isinstance(node, dict):
                continue
            sender = node.get("from")
            own = isinstance(sender, dict) and str(sender.get("id")) == self.config.page_id
            if own and node.get("message") == action.text and isinstance(node.get("id"), str):
                return Sent(remote_id=node["id"])
        return None

    async def fetch(self, remote_id: str) -> Post | None:
        """A post or comment of the page, for context (None when it no longer exists).

        Comment ids are ``{post-part}_{comment-part}``; on the page's own threads the post is
        ``{page-id}_{post-part}``, which gives the comment its thread root.
        """
        try:
            node = await self.graph.get(
                object_path(remote_id),
                {"fields": "id,message,created_time,from{id,name},parent{id},permalink_url"},
            )
        except ObjectMissing:
            return None
        first = remote_id.split("_", 1)[0]
        post_id = None if first == self.config.page_id else f"{self.config.page_id}_{first}"
        parsed = Parsed()
        return graph_node_post(
            node,
            platform=self.ctx.platform,
            page_id=self.config.page_id,
            post_id=post_id,
            parsed=parsed,
        )

    # -- health ------------------------------------------------------------------------------

    def health(self) -> Health:
        status, detail = self._status()
        return Health(
            status=status,
            detail=detail,
            budgets=tuple(sorted(self.graph.budgets.items())),
            counters=tuple(sorted(self.counters.items())),
        )

    def _status(self) -> tuple[HealthStatus, str]:
        if not self._running:
            return HealthStatus.STOPPED, ""
        problem = self._token_problem or self.graph.auth_problem
        if problem:
            return HealthStatus.AUTH_EXPIRED, problem
        until = self.graph.rate_limited_until
        if until is not None and until > self.ctx.clock.now():
            return HealthStatus.RATE_LIMITED, f"Graph rate limit until {until.isoformat()}"
        if self._graph_problem:
            return HealthStatus.DEGRADED, self._graph_problem
        if self.backfill_due() is not None:
            return HealthStatus.DEGRADED, "webhooks are quiet during the chat: polling the feed"
        return HealthStatus.OK, ""
