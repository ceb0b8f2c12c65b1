"""The whole service on 127.0.0.1 with the real X, Bluesky and Facebook adapters talking to the
local emulators, the dashboard installed, and a headless Chromium (Debian's package) to drive it.

One service and one browser serve the whole module, to keep the browser tests quick.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web
from playwright.async_api import Browser, BrowserContext, Page, ViewportSize, async_playwright

from mhchat.config import parse_settings
from mhchat.emulators.bluesky import BlueskyEmulator
from mhchat.emulators.facebook import FacebookEmulator, Person
from mhchat.emulators.x import XEmulator
from mhchat.facilitation.triage.classifier import profanity_model
from mhchat.runtime import Runtime
from mhchat.service import build_service
from mhchat.web.dashboard import install_dashboard
from mhchat.web.keys import RUNTIME

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TOKEN = "browser-test-dashboard-token-0123456789"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"
DESKTOP: ViewportSize = {"width": 1366, "height": 900}
PHONE: ViewportSize = {"width": 390, "height": 844}
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
BSKY_HOST = "mhchathost.test"

# Fast reconnects and polls so the adapters settle in well under a second.
X_SETTINGS: dict[str, Any] = {
    "tier": "pay_per_use",
    "request_timeout": 2.0,
    "stall_seconds": 5.0,
    "backoff_network_step": 0.05,
    "backoff_network_max": 0.2,
    "backoff_http_initial": 0.05,
    "backoff_http_max": 0.2,
    "backoff_429_initial": 0.1,
    "backoff_429_max": 3.0,
    "min_poll_interval": 0.1,
    "compliance_interval": 3600.0,
}


@dataclass
class World:
    base_url: str
    app: web.Application
    runtime: Runtime
    x: XEmulator
    bsky: BlueskyEmulator
    fb: FacebookEmulator
    bsky_host: str
    fb_thread: str
    """The page's post the Facebook participants comment under."""
    chatted: bool = False

    def url(self, path: str) -> str:
        return self.base_url + path

    async def chat_once(self) -> None:
        """One answer to Q1 from a participant on each platform (once per module)."""
        if self.chatted:
            return
        self.chatted = True
        self.x.post_tweet("xavier", "A1 hello from X tonight #MHChat")
        bea = self.bsky.create_account("bea.test")
        self.bsky.post(bea, "A1 hello from Bluesky tonight #MHChat")
        await self.fb.comment(
            Person("100000000000123", "Fiona"),
            "A1 hello from Facebook tonight #MHChat",
            on_post=self.fb_thread,
        )

    async def stored(self, like: str, count: int, within: float = 15.0) -> None:
        """Wait until ``count`` posts whose text contains ``like`` are stored."""
        async with asyncio.timeout(within):
            while True:
                async with self.runtime.require_db().read() as tx:
                    row = await tx.fetchone(
                        "SELECT COUNT(*) FROM posts WHERE text LIKE ?", (f"%{like}%",)
                    )
                if row is not None and int(row[0]) >= count:
                    return
                await asyncio.sleep(0.05)


def _schedule() -> dict[str, Any]:
    # A session that started 50 minutes ago: live now, its questions already past their lateness
    # (they expire rather than go out), so what the emulators receive is what the tests cause.
    start = datetime.now(UTC) - timedelta(minutes=50)
    return {
        "zone": "UTC",
        "weekday": WEEKDAYS[start.weekday()],
        "time": f"{start:%H:%M}",
        "length_minutes": 120,
        "lateness_minutes": 1,
    }


@pytest.fixture(scope="module")
def chromium() -> str:
    if shutil.which(CHROMIUM) is None:
        pytest.fail(
            "Debian's chromium is not installed: run `apt-get install -y chromium`"
            " (scripts/test installs it)."
        )
    return CHROMIUM


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    profanity_model()(["warm up"])  # loads a model for seconds; do it before anything runs
    x, bsky, fb = XEmulator(keepalive_seconds=0.5), BlueskyEmulator(), FacebookEmulator()
    await x.start()
    await bsky.start()
    await fb.start()
    host_did = bsky.create_account(BSKY_HOST, password="host-app-password")
    fb_thread = await fb.page_post("Welcome to tonight's #MHChat: answer below")
    db_path = tmp_path_factory.mktemp("service") / "mhchat.db"
    doc = {
        "chat": {"hashtag": "MHChat"},
        "database": {"url": f"sqlite:///{db_path}"},
        "sender": {"min_interval_seconds": 0.0, "poll_seconds": 0.1},
        "schedule": _schedule(),
        "dashboard": {"facilitators": ["Sam"]},
        "adapters": {
            "x": {**X_SETTINGS, "api_base": x.base_url},
            "bluesky": {
                "handle": BSKY_HOST,
                "service_url": bsky.base_url,
                "jetstream_url": bsky.jetstream_url,
                "request_timeout_seconds": 2.0,
                "reconnect_initial_seconds": 0.05,
                "reconnect_max_seconds": 0.2,
                "checkpoint_interval_seconds": 0.0,
                "batch_linger_seconds": 0.01,
                "search_poll_seconds": 3600.0,
                "fallback_after_seconds": 3600.0,
            },
            "facebook": {
                "page_id": fb.page.id,
                "graph_url": fb.base_url,
                "request_timeout": 2.0,
                "connect_timeout": 2.0,
                "ack_timeout": 2.0,
            },
        },
    }
    env = {f"MHCHAT_X_{k}": v for k, v in x.adapter_secrets("oauth1").items()}
    env |= {
        "MHCHAT_BLUESKY_APP_PASSWORD": "host-app-password",
        "MHCHAT_FACEBOOK_APP_SECRET": fb.app_secret,
        "MHCHAT_FACEBOOK_VERIFY_TOKEN": "browser-verify-token",
        "MHCHAT_FACEBOOK_PAGE_ACCESS_TOKEN": fb.page_token,
        "MHCHAT_DASHBOARD_TOKEN": TOKEN,
    }
    settings = parse_settings(doc, env)
    app = await build_service(settings, extra_hooks=[install_dashboard])
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    base_url = f"http://127.0.0.1:{port}"
    fb.webhook_url = f"{base_url}/webhooks/facebook"
    # Posts made before an adapter listens would only come back through catch-up searches:
    # wait until X's filtered stream and Bluesky's Jetstream are connected.
    async with asyncio.timeout(15):
        while x.open_streams < 1 or not bsky._subscribers:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    try:
        yield World(
            base_url=base_url,
            app=app,
            runtime=app[RUNTIME],
            x=x,
            bsky=bsky,
            fb=fb,
            bsky_host=host_did,
            fb_thread=fb_thread,
        )
    finally:
        await runner.cleanup()
        await fb.stop()
        await bsky.stop()
        await x.stop()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser(chromium: str) -> AsyncIterator[Browser]:
    async with async_playwright() as pw:
        launched = await pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            await launched.close()


NewPage = Callable[..., Awaitable[Page]]


@pytest_asyncio.fixture(loop_scope="module")
async def new_page(browser: Browser, world: World) -> AsyncIterator[NewPage]:
    """Open a signed-in page (desktop size unless told otherwise).

    Every page's script errors and Content-Security-Policy complaints are collected: a test fails
    if the dashboard's own code breaks or needs anything the policy forbids.
    """
    contexts: list[BrowserContext] = []
    problems: list[str] = []

    async def make(viewport: ViewportSize | None = None, *, sign_in: bool = True) -> Page:
        context = await browser.new_context(
            viewport=viewport or DESKTOP, accept_downloads=True, base_url=world.base_url
        )
        context.set_default_timeout(10_000)
        contexts.append(context)
        page = await context.new_page()
        page.on("pageerror", lambda exc: problems.append(f"script error: {exc}"))
        page.on(
            "console",
            lambda msg: (
                problems.append(f"console: {msg.text}")
                if msg.type == "error" and "Content Security Policy" in msg.text
                else None
            ),
        )
        if sign_in:
            await page.goto("/dashboard/login")
            await page.get_by_label("Password or access token").fill(TOKEN)
            await page.get_by_role("button", name="Sign in").click()
            await page.wait_for_url("**/dashboard/")
        return page

    yield make
    for context in contexts:
        await context.close()
    assert problems == []


async def shoot(page: Page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    return path
