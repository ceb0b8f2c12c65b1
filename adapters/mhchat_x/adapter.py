"""The X adapter: wiring of credentials, ingest loops, writes and health."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, ClassVar

from mhchat.actions import Action, Sent, Skipped
from mhchat.adapters import AdapterContext, Capability
from mhchat.errors import AuthExpired, PermanentFailure, RateLimited, TransientFailure
from mhchat.events import AdapterHealthChanged, Health, HealthStatus
from mhchat_x.auth import AppBearer, Credential, OAuth1User, OAuth2User
from mhchat_x.client import XClient
from mhchat_x.compliance import RECENT_KEY, DeletionWatch
from mhchat_x.config import (
    IngestMode,
    Tier,
    UserAuth,
    load_secrets,
    load_settings,
    resolved_ingest,
    resolved_user_auth,
)
from mhchat_x.cost import CostMeter
from mhchat_x.intake import CURSOR_KEY, JOURNAL_KEY, Intake, parse_watch
from mhchat_x.mapping import HostIdentity, Normaliser, rewind_id
from mhchat_x.poller import SearchPoller, backfill
from mhchat_x.ratelimit import RateBook, WriteWindow
from mhchat_x.search import CostCapped, Searcher, search_query
from mhchat_x.status import HealthBoard
from mhchat_x.stream import RULE_TAG, StreamIngest
from mhchat_x.writes import Writer

COST_KEY = "cost"
WRITES_KEY = "write_times"
HOST_KEY = "host"


class XAdapter:
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

    def __init__(self, ctx: AdapterContext) -> None:
        self.ctx = ctx
        self.secrets = load_secrets(ctx.secrets)
        self.settings = load_settings(ctx.settings, self.secrets)
        s = self.settings
        self.log = ctx.log.bind(platform=ctx.platform)
        self.board = HealthBoard(on_change=self._health_changed)
        self.ratebook = RateBook()
        self.cost = CostMeter(s.max_cost_usd, billed=s.tier is Tier.PAY_PER_USE)
        self.window = WriteWindow(s.writes_per_3h)
        self.client = XClient(
            http=ctx.http,
            api_base=s.api_base,
            timeout=s.request_timeout,
            clock=ctx.clock,
            log=self.log,
            ratebook=self.ratebook,
            board=self.board,
        )
        self.app_cred: Credential | None = (
            AppBearer(self.secrets.bearer_token) if self.secrets.bearer_token else None
        )
        self.user_cred = self._user_credential()
        self.read_cred: Credential | None = self.app_cred or self.user_cred
        self.mode, why = resolved_ingest(s, self.secrets)
        self._tier_problem = ""
        if why and s.ingest is IngestMode.AUTO and self.mode is IngestMode.OFF:
            # The host asked for ingest and the tier cannot give it: not healthy, say why.
            self._tier_problem = why
        elif why:
            self.board.notes.append(why)
        self.board.notes.extend(s.rules.cannot)
        self.host = HostIdentity(user_id=None, username=s.host_username)
        self.normaliser = Normaliser(ctx.platform, self.host)
        self.intake = Intake(ctx.sink, self.board, None)
        self.writer = Writer(
            client=self.client,
            cred=None if s.read_only else self.user_cred,
            settings=s,
            clock=ctx.clock,
            cost=self.cost,
            window=self.window,
            board=self.board,
            log=self.log,
            host_id=self._host_id,
            persist=self._persist,
        )
        self._tasks: list[asyncio.Task[None]] = []
        self._started = False
        self._started_at = ctx.clock.now()
        self._host_lock = asyncio.Lock()
        self.stream: StreamIngest | None = None
        self.poller: SearchPoller | None = None
        self.deletions: DeletionWatch | None = None

    def _user_credential(self) -> Credential | None:
        sec = self.secrets
        kind = resolved_user_auth(self.settings, sec)
        if kind is UserAuth.OAUTH1:
            assert sec.api_key is not None
            assert sec.api_secret is not None
            assert sec.access_token is not None
            assert sec.access_token_secret is not None
            return OAuth1User(
                sec.api_key, sec.api_secret, sec.access_token, sec.access_token_secret
            )
        if kind is UserAuth.OAUTH2:
            assert sec.client_id
            return OAuth2User(
                http=self.ctx.http,
                state=self.ctx.state,
                clock=self.ctx.clock,
                token_url=self.settings.api_base + "/2/oauth2/token",
                client_id=sec.client_id,
                client_secret=sec.client_secret,
                access_token=sec.oauth2_access_token,
                refresh_token=sec.oauth2_refresh_token,
                timeout=self.settings.request_timeout,
            )
        return None

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        if self._started:
            return
        self._started = True
        self._started_at = self.ctx.clock.now()
        state = self.ctx.state
        self.intake.since_id = await state.get(CURSOR_KEY)
        self.cost.load(await state.get(COST_KEY))
        saved_writes = await state.get(WRITES_KEY)
        if saved_writes:
            with contextlib.suppress(ValueError, TypeError):
                self.window.load(json.loads(saved_writes))
        saved_host = await state.get(HOST_KEY)
        if saved_host:
            with contextlib.suppress(ValueError, KeyError, TypeError):
                data = json.loads(saved_host)
                self._set_host(str(data["id"]), str(data["username"]))
        self.board.set_running(True)
        if self._tier_problem:
            self.board.set("tier", HealthStatus.DEGRADED, self._tier_problem)
            self.log.warning("x_tier_cannot_ingest", tier=self.settings.tier.value)
        self._spawn("ingest", self._ingest)
        if self.read_cred is not None and self.mode is not IngestMode.OFF:
            self.deletions = DeletionWatch(
                platform=self.ctx.platform,
                client=self.client,
                cred=self.read_cred,
                intake=self.intake,
                clock=self.ctx.clock,
                board=self.board,
                cost=self.cost,
                log=self.log,
                window_hours=self.settings.compliance_window_hours,
            )
            self.deletions.load(await state.get(RECENT_KEY))
            # Kept as the journal until the whole list is saved again.
            self.intake.journal.update(parse_watch(await state.get(JOURNAL_KEY)))
            self.intake.recent.update(self.intake.journal)
            deletions = self.deletions
            self._spawn("compliance", lambda: deletions.run(self.settings.compliance_interval))
        self._spawn("persist", self._persist_often)
        self.log.info("x_started", mode=self.mode.value, tier=self.settings.tier.value)

    async def stop(self) -> None:
        if not self._started:
            return
        self._started = False
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        with contextlib.suppress(Exception):
            await self._persist()
        self.board.set_running(False)
        self.log.info("x_stopped")

    def _spawn(self, name: str, work: Callable[[], Awaitable[None]]) -> None:
        async def guarded() -> None:
            try:
                await work()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - a loop's failure becomes health
                # No traceback: exception messages may quote payload text.
                self.log.error("x_task_failed", task=name, error=type(exc).__name__)
                self.board.set(
                    name, HealthStatus.DOWN, f"X {name} stopped after {type(exc).__name__}"
                )

        self._tasks.append(asyncio.create_task(guarded(), name=f"x-{name}"))

    async def _persist_often(self) -> None:
        """Save the deletion watch list, cost and write window while running: a crash skips
        ``stop()``. Saved well within ``rewind_seconds``, so what a crash loses is searched
        again by the gap fill at the next start and watched for deletion again."""
        every = min(10.0, self.settings.rewind_seconds / 3) or 10.0
        while True:
            await self.ctx.clock.sleep(every)
            await self._persist()

    async def _persist(self) -> None:
        state = self.ctx.state
        await state.set(COST_KEY, self.cost.dump())
        await state.set(WRITES_KEY, json.dumps(self.window.dump()))
        if self.deletions is not None:
            saved = list(self.intake.journal)
            await state.set(RECENT_KEY, self.deletions.dump())
            for key in saved:
                self.intake.journal.pop(key, None)

    # -- host identity ---------------------------------------------------------------------

    def _set_host(self, user_id: str, username: str) -> None:
        self.host = HostIdentity(user_id=user_id, username=username)
        self.normaliser.host = self.host

    async def _host_id(self) -> str:
        async with self._host_lock:
            if self.host.user_id is not None:
                return self.host.user_id
            if self.user_cred is None:
                raise AuthExpired("the host's X user id is unknown without user credentials")
            body = await self.client.request(
                "GET", "/2/users/me", endpoint="me", cred=self.user_cred
            )
            data = body.get("data") if isinstance(body.get("data"), dict) else {}
            assert isinstance(data, dict)
            if not data.get("id"):
                raise PermanentFailure("X did not return the host account")
            self._set_host(str(data["id"]), str(data.get("username", "")))
            await self.ctx.state.set(
                HOST_KEY, json.dumps({"id": self.host.user_id, "username": self.host.username})
            )
            return str(data["id"])

    async def _resolve_host(self) -> None:
        """Learn the host's id before ingest, so own posts and mentions are recognised."""
        if self.user_cred is None or self.host.user_id is not None:
            return
        delay = 1.0
        while True:
            try:
                await self._host_id()
            except (AuthExpired, PermanentFailure):
                return
            except (TransientFailure, RateLimited) as exc:
                self.board.set(
                    "host", HealthStatus.DEGRADED, "cannot reach X to identify the host"
                )
                self.log.info("x_host_lookup_failed", error=type(exc).__name__)
                await self.ctx.clock.sleep(delay)
                delay = min(delay * 2, 60.0)
            else:
                self.board.clear("host")
                return

    # -- ingest ----------------------------------------------------------------------------

    def _query(self) -> str:
        host = self.host.user_id or self.host.username
        return search_query(self.ctx.chat.hashtag, host, self.settings.include_own_posts)

    def _rule(self) -> str:
        value = f"#{self.ctx.chat.hashtag}"
        host = self.host.user_id or self.host.username
        if host and not self.settings.include_own_posts:
            value += f" -from:{host}"
        return value

    def _searcher(self) -> Searcher:
        assert self.read_cred is not None
        return Searcher(
            client=self.client,
            cred=self.read_cred,
            normaliser=self.normaliser,
            cost=self.cost,
            board=self.board,
            max_results=self.settings.search_max_results,
        )

    def _base_interval(self) -> float:
        s = self.settings
        if s.poll_interval is not None:
            return s.poll_interval
        per_15 = max(s.rules.search_per_15min, 1)
        return max(s.min_poll_interval, 900.0 / per_15)

    def _first_start(self) -> Any:
        minutes = self.settings.first_backfill_minutes
        if minutes <= 0:
            return None
        return self.ctx.clock.now() - timedelta(minutes=min(minutes, 7 * 24 * 60 - 1))

    async def _ingest(self) -> None:
        await self._resolve_host()
        if self.mode is IngestMode.OFF or self.read_cred is None:
            return
        if self.mode is IngestMode.SEARCH:
            self.poller = SearchPoller(
                intake=self.intake,
                searcher=self._searcher(),
                query=self._query,
                clock=self.ctx.clock,
                board=self.board,
                ratebook=self.ratebook,
                cost=self.cost,
                log=self.log,
                base_interval=self._base_interval(),
                # Without a cursor, start where the adapter started rather than a week back.
                first_start=self._first_start()
                or self._started_at - timedelta(seconds=self.settings.rewind_seconds),
            )
            await self.poller.run()
            return
        assert self.app_cred is not None
        self.stream = StreamIngest(
            client=self.client,
            cred=self.app_cred,
            intake=self.intake,
            normaliser=self.normaliser,
            settings=self.settings,
            clock=self.ctx.clock,
            board=self.board,
            cost=self.cost,
            log=self.log,
            rule_value=self._rule,
            on_connected=self._fill_gap,
        )
        await self.stream.run()

    async def _fill_gap(self) -> None:
        """After a stream (re)connect, search what arrived while it was down."""
        since = self.intake.since_id
        start = None
        if since is None:
            # First start: cover at least the moments between start() and the connection.
            start = self._first_start() or self._started_at - timedelta(
                seconds=self.settings.rewind_seconds
            )
        else:
            since = rewind_id(since, self.settings.rewind_seconds)
        clock = self.ctx.clock
        for attempt in range(1, 6):
            try:
                count = await backfill(
                    self.intake,
                    self._searcher(),
                    self._query(),
                    clock,
                    since_id=since,
                    start_time=start,
                )
            except RateLimited as exc:
                wait = (exc.retry_at - clock.now()).total_seconds() if exc.retry_at else 60.0
            except TransientFailure:
                wait = 2.0**attempt
            except (PermanentFailure, AuthExpired, CostCapped) as exc:
                self.log.info("x_gap_fill_failed", error=type(exc).__name__)
                return
            else:
                self.board.bump("backfilled", count)
                return
            self.log.info("x_gap_fill_retry", attempt=attempt, wait=round(wait, 2))
            await clock.sleep(max(wait, 0.0) + 0.1)
        # Still open: the cursor stays put, so the next (re)connect or restart covers it.

    async def backfill(self, since_seconds: float) -> int:
        if self.read_cred is None:
            return 0
        start = self.ctx.clock.now() - timedelta(seconds=min(since_seconds, 7 * 86400 - 60))
        return await backfill(
            self.intake, self._searcher(), self._query(), self.ctx.clock, start_time=start
        )

    # -- actions ---------------------------------------------------------------------------

    async def perform(self, action: Action) -> Sent | Skipped:
        return await self.writer.perform(action)

    async def check_outcome(self, action: Action) -> Sent | None:
        return await self.writer.check_outcome(action)

    # -- health ----------------------------------------------------------------------------

    def health(self) -> Health:
        now = self.ctx.clock.now()
        counters = dict(self.board.counters)
        counters["cost_microusd"] = self.cost.spent_microusd
        if self.cost.cap_microusd is not None:
            counters["cost_cap_microusd"] = self.cost.cap_microusd
        budgets = list(self.ratebook.budgets())
        budgets.append(("writes_3h", self.window.budget(now)))
        return Health(
            status=self.board.status(),
            detail=self.board.detail(),
            budgets=tuple(budgets),
            counters=tuple(sorted(counters.items())),
        )

    def _health_changed(self) -> None:
        event = AdapterHealthChanged(
            platform=self.ctx.platform, health=self.health(), at=self.ctx.clock.now()
        )
        with contextlib.suppress(RuntimeError):
            self.ctx.sink.offer([event])


__all__ = ["RULE_TAG", "XAdapter"]
