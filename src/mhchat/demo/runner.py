"""``mhchat demo``: a whole chat on this machine, compressed in time.

Order: the emulators start; a configuration is written (SQLite, the three real adapters on the
emulators, the chat starting a few virtual minutes from now); the service starts at real speed
(connecting streams takes real seconds); then the clock is compressed and the simulated
participants play the script through the platforms' inbound paths while the service posts the
questions, reposts, welcomes and triages. At the end the closing figures are read from the
database and the emulators, and the transcript files are written.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import sys
import webbrowser
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from aiohttp import web
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from mhchat.config import Settings, load_settings
from mhchat.demo.archive import import_history
from mhchat.demo.clock import SpeedClock
from mhchat.demo.config import document, questions_toml, to_toml
from mhchat.demo.script import AFTER_HOURS_MINUTES, LENGTH_MINUTES, PLATFORMS, Script, generate
from mhchat.demo.simulator import Progress, Simulator
from mhchat.demo.summary import Summary, summarise
from mhchat.demo.world import World
from mhchat.facilitation.handler import FacilitationHandler
from mhchat.runtime import Runtime
from mhchat.store.db import Database
from mhchat.web.keys import RUNTIME

DEFAULT_SPEED = 60.0
"""One real second is one chat minute: the 80-minute chat window takes under two minutes."""
LEAD_MINUTES = 6.5
"""Virtual minutes between launch and the chat's start (returning people's history first)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class DemoOptions:
    speed: float = DEFAULT_SPEED
    out: Path = Path("var/demo")
    browser: bool = True
    seed: int = 7
    participants: int = 36
    configure_logs: bool = True
    """Set up logging for a terminal (warnings only); tests keep their own set-up."""
    on_started: Callable[[str], Awaitable[None]] | None = None
    """Called with the dashboard URL once the service answers (tests look at it live)."""


@dataclass(slots=True, kw_only=True)
class DemoResult:
    script: Script
    summary: Summary
    transcripts: dict[str, Path]
    remote: dict[str, str]
    """Step id -> the id of the post it made on its platform."""
    skipped_steps: list[str]
    dashboard_url: str
    config_path: Path
    database: Path
    session_id: str
    errors: list[str] = field(default_factory=list)
    x_stream_connections: int = 0
    """How often the X adapter opened the filtered stream (1: it never had to reconnect)."""
    webhook_failures: int = 0
    """Facebook deliveries the service did not answer 2xx on the first attempt."""


def chat_start(now: datetime) -> datetime:
    """A whole minute (the schedule's resolution) a little after ``now``."""
    minute = now.replace(second=0, microsecond=0)
    return minute + timedelta(minutes=7)


async def run_demo(options: DemoOptions, console: Console | None = None) -> DemoResult:
    console = console or Console()
    out = options.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    database = out / "demo.db"
    for stale in (database, out / "demo.db-wal", out / "demo.db-shm"):
        stale.unlink(missing_ok=True)

    script = generate(options.seed, options.participants)
    starts_at = chat_start(datetime.now(UTC))
    clock = SpeedClock(starts_at - timedelta(minutes=LEAD_MINUTES), speed=1.0)
    world = World(clock=clock, script=script)
    await world.start()
    try:
        return await _with_world(
            options=options,
            console=console,
            script=script,
            world=world,
            clock=clock,
            starts_at=starts_at,
            database=database,
        )
    finally:
        await world.stop()


def virtual_of(speed: float) -> Callable[[float], float]:
    def virtual(real_seconds: float) -> float:
        return round(real_seconds * max(1.0, speed), 3)

    return virtual


def _write_config(
    options: DemoOptions, script: Script, world: World, starts_at: datetime, database: Path
) -> tuple[Path, Settings]:
    out = database.parent
    questions = out / "questions.toml"
    questions.write_text(questions_toml(), encoding="utf-8")
    doc = document(
        starts_at=starts_at,
        database=database,
        questions_file=questions,
        adapters=world.adapter_settings(virtual_of(options.speed)),
        script=script,
        virtual_seconds=max(1.0, options.speed),
    )
    path = out / "mhchat-demo.toml"
    path.write_text(to_toml(doc), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MHCHAT_")}
    env.update(world.secrets())
    # A fresh sign-in for this run's dashboard, shown in the terminal (never logged).
    env["MHCHAT_DASHBOARD_TOKEN"] = secrets.token_urlsafe(18)
    return path, load_settings(path, env)


async def _with_world(
    *,
    options: DemoOptions,
    console: Console,
    script: Script,
    world: World,
    clock: SpeedClock,
    starts_at: datetime,
    database: Path,
) -> DemoResult:
    from mhchat.service import build_service  # noqa: PLC0415 - loads the facilitation engine

    config_path, settings = _write_config(options, script, world, starts_at, database)
    # Returning participants were here weeks ago: import that earlier chat's archive first.
    await import_history(settings, script, world, starts_at, database.parent / "history")
    if options.configure_logs:
        from mhchat.logs import configure_logging  # noqa: PLC0415

        configure_logging(
            level=settings.logging.level, json=False, secrets=settings.secrets.values()
        )
    app = await build_service(settings, clock=clock)
    runtime = app[RUNTIME]
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    service_url = f"http://127.0.0.1:{port}"
    world.connect_webhooks(service_url)
    dashboard = f"{service_url}/dashboard" if _has_dashboard(app) else f"{service_url}/readyz"
    console.print(f"mhchat demo: the service is at {service_url}")
    console.print(f"Dashboard: [link={dashboard}]{dashboard}[/link]")
    if _has_dashboard(app):
        token = settings.secrets["MHCHAT_DASHBOARD_TOKEN"]
        console.print(f"  sign in as [bold]demo[/bold] with the password [bold]{token}[/bold]")
    console.print(f"Configuration written to {config_path}")
    if options.browser and _display_available():
        with contextlib.suppress(Exception):
            webbrowser.open(dashboard)
    try:
        await _wait_connected(world, runtime)
        if options.on_started is not None:
            await options.on_started(dashboard)
        await _warm_up(runtime)
        clock.set_speed(options.speed)
        simulator = Simulator(script, world, clock, starts_at)
        closes_at = starts_at + timedelta(minutes=LENGTH_MINUTES + AFTER_HOURS_MINUTES)
        await _play(
            console=console,
            simulator=simulator,
            runtime=runtime,
            clock=clock,
            starts_at=starts_at,
            closes_at=closes_at,
        )
        await _settle(runtime)
        clock.set_speed(1.0)
        session_id = starts_at.date().isoformat()
        db = runtime.require_db()
        summary = await summarise(db, settings.chat.chat_id, session_id, world)
        transcripts = await write_transcripts(
            db, settings.chat.chat_id, session_id, database.parent
        )
    finally:
        await runner.cleanup()
    console.print(summary.table())
    for fmt, path in transcripts.items():
        console.print(f"Transcript ({fmt}): {path}")
    return DemoResult(
        script=script,
        summary=summary,
        transcripts=transcripts,
        remote=dict(world.remote),
        skipped_steps=list(simulator.progress.skipped),
        dashboard_url=dashboard,
        config_path=config_path,
        database=database,
        session_id=session_id,
        errors=list(runtime.errors),
        x_stream_connections=world.x.stream_connections,
        webhook_failures=sum(1 for d in world.facebook.deliveries if d.attempts[:1] != [200]),
    )


def _has_dashboard(app: web.Application) -> bool:
    try:
        from mhchat.web.dashboard import DASHBOARD_APP  # noqa: PLC0415
    except ImportError:
        return False
    return DASHBOARD_APP in app


def _display_available() -> bool:
    if sys.platform in ("darwin", "win32"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


async def _wait_connected(world: World, runtime: Runtime, within: float = 20.0) -> None:
    """Until the X stream and Jetstream are connected (webhooks need nothing)."""
    async with asyncio.timeout(within):
        while not (  # noqa: ASYNC110 - polls the emulators and the runtime
            runtime.ready
            and world.x.open_streams >= 1
            and world.bluesky.calls("com.atproto.server.createSession") >= 1
            and world.bluesky._subscribers
        ):
            await asyncio.sleep(0.05)


async def _warm_up(runtime: Runtime) -> None:
    """Load the abuse model before time is compressed.

    Loading it takes seconds and happens on the first post otherwise, blocking the event loop:
    at 60x every blocked second is a chat minute, enough to make questions late.
    """
    for handler in runtime.handlers:
        if isinstance(handler, FacilitationHandler):
            await asyncio.to_thread(_load_model, handler)


def _load_model(handler: FacilitationHandler) -> None:
    handler.triage.model(["warm up"])


async def _play(
    *,
    console: Console,
    simulator: Simulator,
    runtime: Runtime,
    clock: SpeedClock,
    starts_at: datetime,
    closes_at: datetime,
) -> None:
    task = asyncio.create_task(simulator.run(), name="demo-simulator")
    stored: dict[str, int] = {}
    if not console.is_terminal:
        # Redirected to a file or a CI log: a plain line every few seconds instead of a
        # redrawn table, so the progress is still there to read.
        ticks = 0
        while not (task.done() and clock.now() >= closes_at + timedelta(seconds=30)):
            if ticks % 20 == 0:
                stored = await _stored(runtime)
                line = _progress_line(simulator.progress, runtime, clock, starts_at, stored)
                console.print(line, soft_wrap=True)
            ticks += 1
            await asyncio.sleep(0.25)
        await task
        return
    with Live(console=console, refresh_per_second=4, transient=True) as live:
        while True:
            stored = await _stored(runtime)
            live.update(_progress(simulator.progress, runtime, clock, starts_at, stored))
            if task.done() and clock.now() >= closes_at + timedelta(seconds=30):
                break
            await asyncio.sleep(0.25)
    await task


async def _stored(runtime: Runtime) -> dict[str, int]:
    async with runtime.require_db().read() as tx:
        rows = await tx.fetchall(
            "SELECT platform, COUNT(*) FROM posts WHERE is_own = 0 GROUP BY platform"
        )
    return {str(r[0]): int(r[1]) for r in rows}


def _phase(clock: SpeedClock, starts_at: datetime) -> str:
    minutes = (clock.now() - starts_at).total_seconds() / 60
    if minutes < 0:
        return f"before the chat (starts in {-minutes:.0f} min)"
    if minutes < LENGTH_MINUTES:
        return f"live, minute {minutes:.0f} of {LENGTH_MINUTES}"
    return f"after hours, {minutes - LENGTH_MINUTES:.0f} min past the hour"


def _sent(runtime: Runtime, platform: str) -> int:
    slot = runtime.slots.get(platform)
    sender = slot.sender if slot is not None else None
    return sender.stats.sent if sender is not None else 0


def _progress_line(
    progress: Progress,
    runtime: Runtime,
    clock: SpeedClock,
    starts_at: datetime,
    stored: dict[str, int],
) -> str:
    parts = [
        f"{p} posted {progress.posted[p]}, stored {stored.get(p, 0)}, sent {_sent(runtime, p)}"
        for p in PLATFORMS
    ]
    return f"#MHChat demo: {_phase(clock, starts_at)}; " + "; ".join(parts)


def _progress(
    progress: Progress,
    runtime: Runtime,
    clock: SpeedClock,
    starts_at: datetime,
    stored: dict[str, int],
) -> Group:
    phase = _phase(clock, starts_at)
    table = Table(show_header=True, header_style="bold")
    table.add_column("platform")
    table.add_column("posted by participants", justify="right")
    table.add_column("stored", justify="right")
    table.add_column("actions sent", justify="right")
    for platform in PLATFORMS:
        table.add_row(
            platform,
            str(progress.posted[platform]),
            str(stored.get(platform, 0)),
            str(_sent(runtime, platform)),
        )
    return Group(Text(f"#MHChat demo: {phase} (x{clock.speed:g})"), table)


async def _settle(runtime: Runtime, within: float = 10.0) -> None:
    """Let the senders finish what is decided (pending or in flight), within a bound."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while loop.time() < deadline:
        async with runtime.require_db().read() as tx:
            row = await tx.fetchone(
                "SELECT COUNT(*) FROM actions WHERE state IN ('pending', 'sending')"
            )
        if row is None or int(row[0]) == 0:
            return
        await asyncio.sleep(0.1)


async def write_transcripts(
    db: Database, chat_id: str, session_id: str, out: Path
) -> dict[str, Path]:
    """The session's transcript in every format, named as ``mhchat transcript`` names them."""
    from mhchat.transcript import Format, export, filename  # noqa: PLC0415

    written: dict[str, Path] = {}
    for fmt in Format:
        path = out / filename(session_id, fmt, anonymise=False)
        path.write_text(await export(db, chat_id, session_id, fmt), encoding="utf-8")
        written[fmt.value] = path
    return written
