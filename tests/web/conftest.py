"""Fixtures for the dashboard's server tests: the whole service (fake platform) with the
dashboard installed, and a signed-in client."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from argon2 import PasswordHasher

from mhchat.config import Settings, parse_settings
from mhchat.events import PlatformName, PostDeleted, PostReceived, RemoteId
from mhchat.runtime import Runtime
from mhchat.service import build_service
from mhchat.testing import FakeAdapter, make_post
from mhchat.web.dashboard import install_dashboard
from mhchat.web.keys import RUNTIME

TOKEN = "a-long-enough-dashboard-token-123"
PASSWORD = "correct horse battery staple"
PASSWORD_HASH = PasswordHasher().hash(PASSWORD)

Client = TestClient[web.Request, web.Application]


WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


def live_schedule(now: datetime | None = None) -> dict[str, Any]:
    """A chat session that started 50 minutes ago (UTC), so posts made now are live.

    Its questions were all due more than the lateness ago, so they expire instead of being
    sent: the only actions the tests see are the ones the tests cause.
    """
    start = (now or datetime.now(UTC)) - timedelta(minutes=50)
    return {
        "zone": "UTC",
        "weekday": WEEKDAYS[start.weekday()],
        "time": f"{start:%H:%M}",
        "length_minutes": 120,
        "lateness_minutes": 1,
    }


def now_post(remote_id: str, **kwargs: Any) -> Any:
    """A post made now, inside the live session."""
    return make_post(remote_id, created_at=datetime.now(UTC), **kwargs)


def dashboard_settings(
    tmp_path: Path,
    *,
    dashboard: dict[str, Any] | None = None,
    env: dict[str, str] | None = None,
    fake: dict[str, Any] | None = None,
) -> Settings:
    doc: dict[str, Any] = {
        "chat": {"hashtag": "MHChat"},
        "database": {"url": f"sqlite:///{tmp_path / 'dash.db'}"},
        "sender": {"min_interval_seconds": 0.0, "poll_seconds": 0.05},
        "adapters": {"fake": fake or {}},
        "schedule": live_schedule(),
        "dashboard": dashboard if dashboard is not None else {"facilitators": ["Sam", "Alex"]},
    }
    environ = (
        env
        if env is not None
        else {
            "MHCHAT_DASHBOARD_TOKEN": TOKEN,
            "MHCHAT_DASHBOARD_PASSWORD_HASH": PASSWORD_HASH,
        }
    )
    return parse_settings(doc, environ)


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf-token" content="([^"]+)"', html)
    assert found is not None, "the page carries no CSRF token"
    return found.group(1)


@dataclass
class Rig:
    client: Client
    runtime: Runtime
    app: web.Application

    @property
    def fake(self) -> FakeAdapter:
        adapter = self.runtime.slots["fake"].adapter
        assert isinstance(adapter, FakeAdapter)
        return adapter

    async def sign_in(self, who: str = "Sam", secret: str = TOKEN) -> str:
        """Sign in; return the session's CSRF token."""
        page = await self.client.get("/dashboard/login")
        token = csrf_of(await page.text())
        resp = await self.client.post(
            "/dashboard/login",
            data={"csrf_token": token, "facilitator": who, "password": secret},
            allow_redirects=False,
        )
        assert resp.status == 303, await resp.text()
        live = await self.client.get("/dashboard/")
        assert live.status == 200
        return csrf_of(await live.text())

    async def inject(self, *posts: Any) -> None:
        await self.fake.ctx.sink.publish_and_wait(
            [PostReceived(post=p) for p in posts], timeout=15
        )

    async def delete(self, remote_id: str) -> None:
        """The author deletes a post (waits until the deletion is stored)."""
        gone = PostDeleted(
            platform=PlatformName("fake"),
            remote_id=RemoteId(remote_id),
            deleted_at=datetime.now(UTC),
        )
        await self.fake.ctx.sink.publish_and_wait([gone], timeout=15)

    async def rows(self, sql: str, params: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
        async with self.runtime.require_db().read() as tx:
            return list(await tx.fetchall(sql, params))


RigFactory = Callable[..., Awaitable[Rig]]


@pytest.fixture(scope="session", autouse=True)
def _abuse_model_loaded() -> None:
    """Load the abuse model once, before any server runs (it takes seconds, blocking the loop)."""
    from mhchat.facilitation.triage.classifier import profanity_model  # noqa: PLC0415

    profanity_model()(["warm up"])


@pytest.fixture
async def make_rig(tmp_path: Path) -> AsyncIterator[RigFactory]:
    clients: list[Client] = []

    async def make(**kwargs: Any) -> Rig:
        app = await build_service(
            dashboard_settings(tmp_path, **kwargs), extra_hooks=[install_dashboard]
        )
        client = TestClient(TestServer(app))
        await client.start_server()
        clients.append(client)
        return Rig(client=client, runtime=app[RUNTIME], app=app)

    yield make
    for client in clients:
        await client.close()


@pytest.fixture
async def rig(make_rig: RigFactory) -> Rig:
    return await make_rig()


__all__ = ["make_post", "now_post"]
