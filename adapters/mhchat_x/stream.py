"""The filtered stream: rule management, line reading, stall detection and reconnects.

X's rules (https://docs.x.com/x-api/fundamentals/handling-disconnections and the filtered-stream
introduction): a blank line (``\\r\\n``) arrives every 20 s as a keep-alive, and no data or
keep-alive for 20 s means reconnect. Reconnect at once the first time, then back off: network
errors linearly by 250 ms up to 16 s; HTTP errors exponentially from 5 s up to 320 s; HTTP 429
exponentially from 60 s. After every (re)connect, recent search fills the gap since the cursor.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from typing import Any, Literal

import aiohttp
import orjson
import structlog
from yarl import URL

from mhchat.clock import Clock
from mhchat.errors import AuthExpired, PermanentFailure, RateLimited, TransientFailure
from mhchat.events import HealthStatus
from mhchat_x.auth import Credential
from mhchat_x.client import USER_AGENT, XClient
from mhchat_x.config import XSettings
from mhchat_x.cost import CostMeter
from mhchat_x.intake import Intake
from mhchat_x.mapping import EXPANSIONS, TWEET_FIELDS, USER_FIELDS, Normaliser, newer_id
from mhchat_x.ratelimit import reset_of
from mhchat_x.search import CostCapped
from mhchat_x.status import HealthBoard

RULE_TAG = "mhchat"
Failure = Literal["network", "http", "rate"]


class Backoff:
    """X's documented reconnect schedule; ``reset`` once a connection delivers anything."""

    def __init__(self, settings: XSettings) -> None:
        self.s = settings
        self.attempts = 0
        self.kind: Failure | None = None

    def reset(self) -> None:
        self.attempts = 0
        self.kind = None

    def next_delay(self, kind: Failure) -> float:
        if kind != self.kind:
            self.kind = kind
            self.attempts = 0
        self.attempts += 1
        n = self.attempts
        if kind == "network":
            # The first reconnect is immediate, then +250 ms each time.
            return min((n - 1) * self.s.backoff_network_step, self.s.backoff_network_max)
        if kind == "http":
            return min(self.s.backoff_http_initial * 2.0 ** (n - 1), self.s.backoff_http_max)
        return min(self.s.backoff_429_initial * 2.0 ** (n - 1), self.s.backoff_429_max)


class StreamHTTPError(Exception):
    def __init__(self, status: int, retry_after: float | None = None) -> None:
        super().__init__(f"stream connect answered HTTP {status}")
        self.status = status
        self.retry_after = retry_after


class StreamIngest:
    def __init__(
        self,
        *,
        client: XClient,
        cred: Credential,
        intake: Intake,
        normaliser: Normaliser,
        settings: XSettings,
        clock: Clock,
        board: HealthBoard,
        cost: CostMeter,
        log: structlog.typing.FilteringBoundLogger,
        rule_value: Callable[[], str],
        on_connected: Callable[[], Coroutine[Any, Any, None]],
    ) -> None:
        self.client = client
        self.cred = cred
        self.intake = intake
        self.normaliser = normaliser
        self.s = settings
        self.clock = clock
        self.board = board
        self.cost = cost
        self.log = log
        self.rule_value = rule_value
        self.on_connected = on_connected
        self.backoff = Backoff(settings)
        self.rule_ids: set[str] = set()
        self._last_seen = clock.now()
        self.connections = 0

    async def sync_rules(self) -> None:
        """Make the app's rules hold exactly one ``mhchat`` rule with the wanted value."""
        wanted = self.rule_value()
        body = await self.client.request(
            "GET", "/2/tweets/search/stream/rules", endpoint="rules_read", cred=self.cred
        )
        ours = [
            r for r in body.get("data") or [] if isinstance(r, dict) and r.get("tag") == RULE_TAG
        ]
        stale = [str(r["id"]) for r in ours if r.get("value") != wanted]
        keep = {str(r["id"]) for r in ours if r.get("value") == wanted}
        if stale:
            await self.client.request(
                "POST",
                "/2/tweets/search/stream/rules",
                endpoint="rules_write",
                cred=self.cred,
                body={"delete": {"ids": stale}},
            )
        if not keep:
            added = await self.client.request(
                "POST",
                "/2/tweets/search/stream/rules",
                endpoint="rules_write",
                cred=self.cred,
                body={"add": [{"value": wanted, "tag": RULE_TAG}]},
            )
            keep = {str(r["id"]) for r in added.get("data") or [] if isinstance(r, dict)}
        self.rule_ids = keep

    async def run(self) -> None:
        rules_synced = False
        while True:
            kind: Failure = "network"
            retry_after: float | None = None
            try:
                if self.cost.refuse(self.clock.now()) is not None:
                    reason = self.cost.refuse(self.clock.now())
                    self.board.set(
                        "cost", HealthStatus.DEGRADED, reason.sentence() if reason else ""
                    )
                    await self.clock.sleep(max(60.0, self.s.min_poll_interval))
                    continue
                self.board.clear("cost")
                if not rules_synced:
                    await self.sync_rules()
                    rules_synced = True
                await self.connect_once()
                self.board.bump("disconnects")
            except AuthExpired:
                self.log.warning("x_stream_stopped_auth")
                return
            except CostCapped:
                self.log.info("x_stream_paused_cost_cap")
                continue
            except RateLimited as exc:
                kind = "rate"
                if exc.retry_at is not None:
                    retry_after = (exc.retry_at - self.clock.now()).total_seconds()
            except StreamHTTPError as exc:
                kind = "rate" if exc.status == 429 else "http"
                retry_after = exc.retry_after
            except (TransientFailure, PermanentFailure):
                kind = "http"
            except (aiohttp.ClientError, TimeoutError, ConnectionError) as exc:
                self.log.info("x_stream_network_error", error=type(exc).__name__)
            delay = self.backoff.next_delay(kind)
            if kind == "rate" and retry_after is not None:
                delay = max(delay, min(retry_after, self.s.backoff_429_max))
            self.board.bump("reconnects")
            status = HealthStatus.RATE_LIMITED if kind == "rate" else HealthStatus.DEGRADED
            if self.backoff.attempts > 1 or kind != "network":
                self.board.set(
                    "stream",
                    status,
                    f"X stream reconnecting in {delay:.2f} s after a {kind} error",
                )
            self.log.info("x_stream_reconnect", kind=kind, delay=delay)
            await self.clock.sleep(delay)

    async def connect_once(self) -> None:
        params = {
            "tweet.fields": TWEET_FIELDS,
            "expansions": EXPANSIONS,
            "user.fields": USER_FIELDS,
        }
        url = self.client.url("/2/tweets/search/stream", params)
        self.client.check_usable(self.cred, "stream_connect")
        headers = {
            "Authorization": await self.cred.authorization("GET", url),
            "User-Agent": USER_AGENT,
        }
        timeout = aiohttp.ClientTimeout(total=None, connect=self.s.request_timeout)
        async with self.client.http.get(
            URL(url, encoded=True), headers=headers, timeout=timeout
        ) as resp:
            lowered = {k.lower(): v for k, v in resp.headers.items()}
            self.client.ratebook.observe("stream_connect", lowered)
            if resp.status == 401:
                self.client.mark_expired(
                    self.cred, "X rejected the app bearer token on the stream (401)"
                )
                raise AuthExpired("stream 401")
            if resp.status != 200:
                await resp.read()
                reset = reset_of(lowered)
                after = (reset - self.clock.now()).total_seconds() if reset else None
                self.log.info("x_stream_http_error", status=resp.status)
                raise StreamHTTPError(resp.status, after)
            self.connections += 1
            self._last_seen = self.clock.now()
            self.log.info("x_stream_connected", connection=self.connections)
            watchdog = asyncio.create_task(self._watch(resp))
            gap = asyncio.create_task(self.on_connected())
            try:
                await self._read(resp)
            finally:
                for task in (watchdog, gap):
                    task.cancel()
                for task in (watchdog, gap):
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await task

    async def _watch(self, resp: aiohttp.ClientResponse) -> None:
        """Close the connection when neither data nor a keep-alive came for stall_seconds."""
        tick = min(self.s.stall_seconds / 4, 1.0)
        while True:
            await self.clock.sleep(tick)
            quiet = (self.clock.now() - self._last_seen).total_seconds()
            if quiet > self.s.stall_seconds:
                self.board.bump("stalls")
                self.log.info("x_stream_stalled", quiet_seconds=round(quiet, 2))
                resp.close()
                return

    async def _read(self, resp: aiohttp.ClientResponse) -> None:
        buffer = b""
        async for chunk in resp.content.iter_any():
            self._last_seen = self.clock.now()
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                await self._line(line.strip())
        if buffer.strip():
            # A line cut off by the disconnect: count it, never guess its content.
            self.board.bump("malformed_lines")

    async def _line(self, line: bytes) -> None:
        if self.backoff.attempts:
            self.backoff.reset()
        self.board.clear("stream")
        if not line:
            self.board.bump("keepalives")
            return
        try:
            message: Any = orjson.loads(line)
        except orjson.JSONDecodeError:
            self.board.bump("malformed_lines")
            self.log.info("x_stream_malformed_line", size=len(line))
            return
        if not isinstance(message, dict):
            self.board.bump("malformed_lines")
            return
        if "data" not in message:
            if message.get("errors"):
                self.board.bump("stream_errors")
                self.log.info("x_stream_error_message", count=len(message["errors"]))
            return
        if not self._ours(message):
            self.board.bump("foreign_rule_posts")
            return
        now = self.clock.now()
        parsed = self.normaliser.parse(message)
        self.board.bump("malformed_posts", parsed.skipped)
        self.cost.charge_reads(now, parsed.post_ids, parsed.user_ids)
        newest: str | None = None
        data = message["data"]
        if isinstance(data, dict) and data.get("id") is not None:
            newest = newer_id(newest, str(data["id"]))
        await self.intake.emit(parsed.events, newest, now)
        if self.cost.refuse(now) is not None:
            # Every further post read costs money: hang up until the cap allows reading again.
            raise CostCapped

    def _ours(self, message: dict[str, Any]) -> bool:
        rules = message.get("matching_rules")
        if not isinstance(rules, list) or not rules or not self.rule_ids:
            return True
        for rule in rules:
            if isinstance(rule, dict) and (
                str(rule.get("id")) in self.rule_ids or rule.get("tag") == RULE_TAG
            ):
                return True
        return False
