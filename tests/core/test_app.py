"""The aiohttp application: lifecycle, health, adapter isolation, drain on shutdown."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from mhchat.config import parse_settings
from mhchat.events import PostReceived
from mhchat.testing import FakeAdapter, make_post
from mhchat.web.app import build_app
from mhchat.web.keys import RUNTIME


def settings_for(tmp_path: Path, **adapters: dict[str, Any]) -> Any:
    doc = {
        "chat": {"hashtag": "MHChat"},
        "database": {"url": f"sqlite:///{tmp_path / 'app.db'}"},
        "adapters": adapters,
    }
    return parse_settings(doc, {"MHCHAT_FAKE_TOKEN": "s3cr3t-token-value"})


class TestApp:
    async def test_health_and_ready(self, tmp_path: Path) -> None:
        app = await build_app(settings_for(tmp_path, fake={}))
        async with TestClient(TestServer(app)) as client:
            assert (await client.get("/healthz")).status == 200
            ready = await client.get("/readyz")
            body = await ready.json()
            assert ready.status == 200
            assert body["adapters"]["fake"]["status"] == "ok"
            metrics = await (await client.get("/metrics")).text()
            assert "mhchat_bus_capacity 1000" in metrics

    async def test_crashing_adapter_does_not_take_the_service_down(self, tmp_path: Path) -> None:
        """One adapter failing at start is reported; the other keeps working."""
        app = await build_app(settings_for(tmp_path, fake={"crash_on_start": True}, missing={}))
        runtime = app[RUNTIME]
        async with TestClient(TestServer(app)) as client:
            body = await (await client.get("/readyz")).json()
            assert body["adapters"]["fake"]["status"] == "down"
            assert "failed to start" in body["adapters"]["fake"]["detail"]
            assert "no adapter called 'missing'" in body["adapters"]["missing"]["detail"]
            assert (await client.get("/healthz")).status == 200
            assert runtime.tasks.get("ingest") is not None

    async def test_shutdown_drains_queued_events(self, tmp_path: Path) -> None:
        """Events already on the bus at shutdown are stored before the database closes."""
        settings = settings_for(tmp_path, fake={})
        app = await build_app(settings)
        runtime = app[RUNTIME]
        async with TestClient(TestServer(app)):
            slot = runtime.slots["fake"]
            assert isinstance(slot.adapter, FakeAdapter)
            assert runtime.worker is not None
            runtime.tasks["ingest"].cancel()
            await slot.adapter.inject(*(make_post(str(i), author=f"p{i}") for i in range(50)))
            assert runtime.bus is not None
            assert runtime.bus.depth == 1
            # Start a fresh worker that the shutdown must let finish.
            from mhchat.web.tasks import spawn  # noqa: PLC0415

            _ = spawn(runtime, "ingest", runtime.worker.run())
        from mhchat.store.db import SqliteDatabase  # noqa: PLC0415

        db = await SqliteDatabase.open(tmp_path / "app.db")
        async with db.read() as tx:
            row = await tx.fetchone("SELECT count(*) FROM posts")
        await db.close()
        assert row == (50,)

    async def test_events_from_adapter_reach_the_store(self, tmp_path: Path) -> None:
        app = await build_app(settings_for(tmp_path, fake={}))
        runtime = app[RUNTIME]
        async with TestClient(TestServer(app)):
            adapter = runtime.slots["fake"].adapter
            assert isinstance(adapter, FakeAdapter)
            await adapter.ctx.sink.publish_and_wait(
                [PostReceived(post=make_post("x1"))], timeout=5
            )
            db = runtime.require_db()
            async with db.read() as tx:
                row = await tx.fetchone("SELECT remote_id FROM posts")
            assert row == ("x1",)
