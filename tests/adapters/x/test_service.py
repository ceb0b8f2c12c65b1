"""The X adapter inside the real service: posts reach the store; an expired token stays local."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from mhchat.config import parse_settings
from mhchat.emulators.x import XEmulator
from mhchat.runtime import Runtime
from mhchat.testing import FakeAdapter, make_post
from mhchat.web.app import build_app
from mhchat.web.keys import RUNTIME

from .conftest import FAST, until


def settings_for(tmp_path: Path, emulator: XEmulator, **extra: dict[str, Any]) -> Any:
    doc = {
        "chat": {"hashtag": "MHChat"},
        "database": {"url": f"sqlite:///{tmp_path / 'app.db'}"},
        "adapters": {"x": {**FAST, "api_base": emulator.base_url}, **extra},
    }
    env = {f"MHCHAT_X_{k}": v for k, v in emulator.adapter_secrets("oauth1").items()}
    return parse_settings(doc, env)


async def query(runtime: Runtime, sql: str) -> tuple[Any, ...] | None:
    async with runtime.require_db().read() as tx:
        row = await tx.fetchone(sql)
    return None if row is None else tuple(row)


async def until_row(runtime: Runtime, sql: str, expected: tuple[Any, ...]) -> None:
    async with asyncio.timeout(8):
        while await query(runtime, sql) != expected:  # noqa: ASYNC110 - polls the database
            await asyncio.sleep(0.02)


class TestInTheService:
    async def test_stream_posts_are_stored_with_the_cursor(
        self, tmp_path: Path, emulator: XEmulator
    ) -> None:
        app = await build_app(settings_for(tmp_path, emulator))
        runtime = app[RUNTIME]
        async with TestClient(TestServer(app)):
            await until(lambda: emulator.open_streams == 1)
            posted = [emulator.post_tweet(f"p{i}", f"A{i} hello #MHChat") for i in range(3)]
            await until_row(runtime, "SELECT count(*) FROM posts WHERE platform = 'x'", (3,))
            await until_row(
                runtime,
                "SELECT value FROM adapter_state WHERE platform = 'x' AND key = 'since_id'",
                (max(posted, key=int),),
            )

    async def test_expired_token_shows_on_readyz_and_the_others_keep_going(
        self, tmp_path: Path, emulator: XEmulator
    ) -> None:
        app = await build_app(settings_for(tmp_path, emulator, fake={}))
        runtime = app[RUNTIME]
        async with TestClient(TestServer(app)) as client:
            await until(lambda: emulator.open_streams == 1)
            emulator.revoke_app_token()
            emulator.disconnect_streams()
            x = runtime.slots["x"]
            await until(lambda: x.health().status.value == "auth_expired")
            body = await (await client.get("/readyz")).json()
            assert body["adapters"]["x"]["status"] == "auth_expired"
            assert "bearer token" in body["adapters"]["x"]["detail"]
            assert body["adapters"]["fake"]["status"] == "ok"
            fake = runtime.slots["fake"].adapter
            assert isinstance(fake, FakeAdapter)
            await fake.inject(make_post("f1"))
            await until_row(runtime, "SELECT count(*) FROM posts WHERE platform = 'fake'", (1,))
            assert not runtime.tasks["ingest"].done()
