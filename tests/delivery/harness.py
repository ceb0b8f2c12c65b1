"""A real ``mhchat serve`` process wired to the three platform emulators, for the delivery tests.

The emulators run in the test process on 127.0.0.1; the service runs as a subprocess with the
real X, Bluesky and Facebook adapters pointed at them, JSON logs written to a file, and every
secret passed in the environment the way a host would. Each emulator is subclassed only to
keep an append-only log of the host's effects (a retweet, a record written), which the plain
emulators forget when an effect is undone; the wire behaviour is untouched.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from mhchat.emulators.bluesky import POST, REPOST, BlueskyEmulator, StoredRecord
from mhchat.emulators.facebook import FacebookEmulator
from mhchat.emulators.x import Principal, XEmulator
from mhchat.tomlwrite import to_toml

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
BSKY_HOST = "mhchathost.test"

# The X adapter's timings scaled down (X's are 20 s stall, 5 s / 60 s backoffs).
X_FAST: dict[str, Any] = {
    "tier": "pay_per_use",
    "request_timeout": 1.5,
    "stall_seconds": 1.0,
    "backoff_network_step": 0.05,
    "backoff_network_max": 0.3,
    "backoff_http_initial": 0.05,
    "backoff_http_max": 0.3,
    "backoff_429_initial": 0.1,
    "backoff_429_max": 1.0,
    "min_poll_interval": 0.2,
    "compliance_interval": 3.0,
    "rewind_seconds": 60.0,
    "writes_per_3h": 10_000,
}


class RecordingX(XEmulator):
    """X, plus the id of every tweet the host retweeted (an undo does not erase it here)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.retweet_log: list[str] = []

    async def _retweet(
        self, request: web.Request, who: Principal, body: dict[str, Any]
    ) -> web.StreamResponse:
        before = len(self.retweets)
        response = await super()._retweet(request, who, body)
        if len(self.retweets) > before:
            self.retweet_log.append(str(body.get("tweet_id", "")))
        return response


class RecordingBluesky(BlueskyEmulator):
    """Bluesky, plus every post and repost record the host account created."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.host_did = ""
        self.host_writes: list[StoredRecord] = []

    def _write(
        self, did: str, collection: str, record: dict[str, Any], *, rkey: str | None = None
    ) -> StoredRecord:
        stored = super()._write(did, collection, record, rkey=rkey)
        if did == self.host_did and collection in (POST, REPOST):
            self.host_writes.append(stored)
        return stored


async def meta_retries(fb: FacebookEmulator, rounds: int = 30) -> int:
    """Meta's later retries: every failed delivery sent again, all at once, until none is left
    (``redeliver_failed`` sends them one after another, too slow for thousands).
    Returns how many rounds it took."""
    for n in range(1, rounds + 1):
        failed = [d for d in fb.deliveries if not d.delivered]
        if not failed:
            return n - 1
        await asyncio.gather(*(fb._send(d) for d in failed))
    return rounds


def schedule_now(minutes_ago: int = 0) -> tuple[datetime, dict[str, Any]]:
    """A live session that started at the start of this minute (UTC), and its [schedule]."""
    now = datetime.now(UTC)
    start = now.replace(second=0, microsecond=0) - timedelta(minutes=minutes_ago)
    return start, {
        "zone": "UTC",
        "weekday": WEEKDAYS[start.weekday()],
        "time": f"{start:%H:%M}",
        "length_minutes": 60,
        "reminder_minutes_before": 30,
        "lateness_minutes": 5,
    }


def questions_file(path: Path, offsets: list[int]) -> Path:
    lines = [
        "[default]",
        'topic = "Looking after ourselves"',
        'reminder = "#{hashtag} starts soon ({times})."',
        'intro = "Welcome to #{hashtag}! Answer with A1, A2 and be kind."',
    ]
    for n, offset in enumerate(offsets, start=1):
        lines += [
            "",
            "[[default.questions]]",
            f"n = {n}",
            f"offset_minutes = {offset}",
            f'text = "Question {n}: what helped you this week?"',
        ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@dataclass
class Platforms:
    """The three emulators, started, with the host accounts and secrets a host would set."""

    x: RecordingX
    bsky: RecordingBluesky
    fb: FacebookEmulator
    bsky_password: str
    verify_token: str

    @classmethod
    async def start(cls) -> Platforms:
        x = RecordingX(keepalive_seconds=0.3)
        await x.start()
        for endpoint in ("create_tweet", "retweet", "unretweet", "search", "lookup"):
            x.set_limit(endpoint, 1_000_000, 1_000_000)
        x.set_limit("stream_connect", 10_000, 10_000)
        bsky = RecordingBluesky(session_limit=10_000, points_per_hour=10**7, points_per_day=10**8)
        await bsky.start()
        password = "bsky-" + secrets.token_urlsafe(18)
        bsky.host_did = bsky.create_account(BSKY_HOST, password=password)
        fb = FacebookEmulator(
            page_token="EAAGpage" + secrets.token_urlsafe(24),
            app_secret="fbsecret" + secrets.token_hex(16),
            retry_delays=(0.0, 0.2, 0.6),
            call_budget=10**7,
        )
        await fb.start()
        return cls(x, bsky, fb, password, "verify-" + secrets.token_urlsafe(12))

    async def stop(self) -> None:
        await self.fb.stop()
        await self.bsky.stop()
        await self.x.stop()

    def env(self) -> dict[str, str]:
        found = {f"MHCHAT_X_{k}": v for k, v in self.x.adapter_secrets("oauth1").items()}
        found["MHCHAT_BLUESKY_APP_PASSWORD"] = self.bsky_password
        found["MHCHAT_FACEBOOK_APP_SECRET"] = self.fb.app_secret
        found["MHCHAT_FACEBOOK_VERIFY_TOKEN"] = self.verify_token
        found["MHCHAT_FACEBOOK_PAGE_ACCESS_TOKEN"] = self.fb.page_token
        return found

    def adapters(self) -> dict[str, Any]:
        return {
            "x": {**X_FAST, "api_base": self.x.base_url},
            "bluesky": {
                "handle": BSKY_HOST,
                "service_url": self.bsky.base_url,
                "jetstream_url": self.bsky.jetstream_url,
                "cursor_overlap_seconds": 5.0,
                "checkpoint_interval_seconds": 0.5,
                "reconnect_initial_seconds": 0.1,
                "reconnect_max_seconds": 0.5,
                "request_timeout_seconds": 1.5,
                "fallback_after_seconds": 2.0,
                "search_poll_seconds": 1.0,
            },
            "facebook": {
                "page_id": self.fb.page.id,
                "graph_url": self.fb.base_url,
                "request_timeout": 1.5,
                "connect_timeout": 1.0,
                "ack_timeout": 1.0,
                "backfill_check_seconds": 5.0,
                "quiet_seconds": 30.0,
            },
        }


def service_config(
    tmp_path: Path,
    platforms: Platforms,
    *,
    schedule: dict[str, Any],
    questions: Path,
    extra: dict[str, Any] | None = None,
) -> Path:
    doc: dict[str, Any] = {
        "chat": {"id": "default", "hashtag": "MHChat"},
        "database": {"url": f"sqlite:///{tmp_path / 'mhchat.db'}"},
        "web": {"host": "127.0.0.1"},
        "bus": {"capacity": 1000, "max_batch": 500, "shutdown_deadline_seconds": 5.0},
        "sender": {"min_interval_seconds": 0.02, "poll_seconds": 0.1},
        "logging": {"level": "info", "json": True},
        "schedule": schedule,
        "questions": {"file": str(questions)},
        "reposts": {"budget": 2000},
        "welcomes": {"budget": 2000},
        "adapters": platforms.adapters(),
        **(extra or {}),
    }
    path = tmp_path / "mhchat.toml"
    path.write_text(to_toml(doc), encoding="utf-8")
    return path


@dataclass
class Service:
    """One ``mhchat serve`` subprocess; stdout and stderr (JSON logs) go to ``log_path``."""

    config: Path
    env: dict[str, str]
    port: int
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0
    kills: int = 0
    ready_times: list[float] = field(default_factory=list)
    started_at: float = 0.0

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.starts += 1
        self.started_at = time.monotonic()
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "mhchat",
                    "serve",
                    "-c",
                    str(self.config),
                    "--port",
                    str(self.port),
                ],
                env={**os.environ, **self.env},
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self.kills += 1

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    async def wait_ready(self, http: aiohttp.ClientSession, within: float = 60.0) -> None:
        started = time.monotonic()
        while time.monotonic() - started < within:
            if not self.alive:
                raise AssertionError(f"mhchat exited:\n{self.tail()}")
            try:
                async with http.get(
                    f"{self.base}/readyz", timeout=aiohttp.ClientTimeout(total=2)
                ) as resp:
                    body = await resp.json()
                    if body.get("ready"):
                        self.ready_times.append(time.monotonic() - self.started_at)
                        return
            except (aiohttp.ClientError, TimeoutError, ValueError):
                pass
            await asyncio.sleep(0.05)
        raise AssertionError(f"mhchat not ready in {within} s\n{self.tail()}")

    def tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""


def query(db_path: Path, sql: str, params: Iterable[object] = ()) -> list[tuple[Any, ...]]:
    """Read the service's SQLite database (WAL: readers never block the writer)."""
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=10)
    try:
        return conn.execute(sql, tuple(params)).fetchall()
    finally:
        conn.close()


def leaks(log_text: str, secrets_: Iterable[str], texts: Iterable[str]) -> list[str]:
    """What must never be in a log and is: secret values and post texts (named, not quoted)."""
    found = [f"secret #{i}" for i, s in enumerate(sorted(set(secrets_))) if s and s in log_text]
    found += [f"post text {t[:12]!r}..." for t in set(texts) if t and t in log_text]
    return found
