"""Real ``mhchat serve`` processes for the scale tests, on PostgreSQL and NATS JetStream."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")

# The X adapter's timings scaled down so a take-over settles in seconds.
X_FAST: dict[str, Any] = {
    "tier": "pay_per_use",
    "request_timeout": 2.0,
    "stall_seconds": 1.0,
    "backoff_network_step": 0.05,
    "backoff_network_max": 0.3,
    "backoff_http_initial": 0.05,
    "backoff_http_max": 0.3,
    "backoff_429_initial": 0.1,
    "backoff_429_max": 1.0,
    "min_poll_interval": 0.2,
    "compliance_interval": 3600.0,
}


def session_now(now: datetime | None = None) -> tuple[datetime, dict[str, Any]]:
    """A session that started at the start of this minute (UTC), and its [schedule] table."""
    now = now or datetime.now(UTC)
    start = now.replace(second=0, microsecond=0)
    return start, {
        "zone": "UTC",
        "weekday": WEEKDAYS[start.weekday()],
        "time": f"{start:%H:%M}",
        "length_minutes": 60,
        "reminder_minutes_before": 30,
        "lateness_minutes": 5,
    }


def questions_file(path: Path, offsets: list[int], label: str = "") -> Path:
    suffix = f" {label}" if label else ""
    lines = [
        "[default]",
        f'topic = "{label or "Looking after ourselves"}"',
        'reminder = "#{hashtag} starts soon ({times})."',
        f'intro = "Welcome to #{{hashtag}}{suffix}! Answer with A1, A2..."',
    ]
    for n, offset in enumerate(offsets, start=1):
        lines += [
            "",
            "[[default.questions]]",
            f"n = {n}",
            f"offset_minutes = {offset}",
            f'text = "{label} question number {n}?"',
        ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@dataclass
class Service:
    """One ``mhchat serve`` subprocess."""

    name: str
    config: Path
    env: dict[str, str]
    port: int
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.starts += 1
        log = self.log_path.open("ab")
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
        log.close()

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

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

    async def readyz(self, http: aiohttp.ClientSession) -> dict[str, Any] | None:
        try:
            async with http.get(
                f"{self.base}/readyz", timeout=aiohttp.ClientTimeout(total=2)
            ) as resp:
                body: dict[str, Any] = await resp.json()
                return body
        except (aiohttp.ClientError, TimeoutError, ValueError):
            return None

    async def wait_ready(self, http: aiohttp.ClientSession, within: float = 40.0) -> None:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if not self.alive:
                raise AssertionError(f"{self.name} exited: see {self.log_path}\n{self.tail()}")
            body = await self.readyz(http)
            if body is not None and body.get("ready"):
                return
            await asyncio.sleep(0.1)
        raise AssertionError(f"{self.name} not ready in {within} s\n{self.tail()}")

    async def leads(self, http: aiohttp.ClientSession) -> set[str]:
        body = await self.readyz(http)
        if body is None:
            return set()
        return set(body.get("leadership", {}).get("leads", []))

    def tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""


@dataclass
class Figures:
    takeovers: list[float] = field(default_factory=list)

    def summary(self) -> str:
        if not self.takeovers:
            return "no take-overs"
        ordered = sorted(self.takeovers)
        p50 = ordered[len(ordered) // 2]
        return (
            f"{len(ordered)} take-overs: p50 {p50:.2f} s, max {ordered[-1]:.2f} s"
            f" (all: {', '.join(f'{t:.2f}' for t in self.takeovers)})"
        )
