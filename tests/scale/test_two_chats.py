"""Two chats in one deployment, at the same time, on PostgreSQL + JetStream: different
schedules, accounts (each its own X app) and budgets; one chat's kill switch stops only it;
nothing crosses between them."""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import nats
import pytest
from aiohttp.test_utils import TestClient, TestServer

from mhchat.actions import Publish, Purpose
from mhchat.chats import chat_env, load_chats, parse_chats, runtimes
from mhchat.config import parse_settings
from mhchat.emulators.x import XEmulator
from mhchat.errors import ConfigError
from mhchat.events import PlatformName
from mhchat.ledger import Decision, Mode, record
from mhchat.service import build_service
from mhchat.store.migrate import migrate
from mhchat.store.postgres import PostgresDatabase

from .conftest import NATS_URL, PgDatabases, require_nats, unique
from .services import WEEKDAYS, X_FAST, questions_file

pytestmark = [pytest.mark.scale, pytest.mark.timeout(180)]


def other_day_zone(now: datetime) -> str:
    """A time zone whose date differs from UTC's right now.

    A session's id is its local date and the scheduler's action keys are built from it; the
    ledger's keys are unique across chats, so two chats whose sessions share a date and a
    platform would share keys (see test_same_day_sessions_in_two_chats_collide).
    """
    return "Pacific/Pago_Pago" if now.hour < 11 else "Pacific/Kiritimati"


def schedule_started(minutes_ago: int, zone: str = "UTC") -> dict[str, Any]:
    start = datetime.now(ZoneInfo(zone)).replace(second=0, microsecond=0) - timedelta(
        minutes=minutes_ago
    )
    return {
        "zone": zone,
        "weekday": WEEKDAYS[start.weekday()],
        "time": f"{start:%H:%M}",
        "length_minutes": 60,
        "reminder_minutes_before": 30,
        "lateness_minutes": 5,
    }


async def until(predicate: Any, within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if await predicate():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def secrets_for(chat: str, emu: XEmulator) -> dict[str, str]:
    return {f"MHCHAT_CHAT_{chat.upper()}_X_{k}": v for k, v in emu.adapter_secrets().items()}


def test_a_chat_sees_its_own_secrets_first() -> None:
    env = {"MHCHAT_X_API_KEY": "shared", "MHCHAT_CHAT_NORTH_X_API_KEY": "north", "OTHER": "1"}
    assert chat_env(env, "north")["MHCHAT_X_API_KEY"] == "north"
    assert chat_env(env, "south")["MHCHAT_X_API_KEY"] == "shared"
    assert "MHCHAT_CHAT_NORTH_X_API_KEY" not in chat_env(env, "south")


def test_bad_chat_tables_are_explained() -> None:
    doc = {"chats": [{"id": "Bad Id"}, {"id": "ok", "hashtag": "Ok", "database": {}}]}
    with pytest.raises(ConfigError) as caught:
        parse_chats(doc, {})
    text = " ".join(caught.value.problems)
    assert "lower-case letters" in text
    assert "'database' is shared by every chat" in text


def test_a_deployment_file_that_is_not_utf8_is_explained(tmp_path: Path) -> None:
    path = tmp_path / "chats.toml"
    path.write_bytes(b"\xff\xfe")
    with pytest.raises(ConfigError) as caught:
        load_chats(path, {})
    assert caught.value.problems == [f"The configuration file {path} is not UTF-8 text."]


async def test_two_chats_run_side_by_side_and_nothing_crosses(
    tmp_path: Path, pg_databases: PgDatabases
) -> None:
    require_nats()
    pg_url = await pg_databases.create()
    stream = unique("MHCHAT_CHATS")
    emus = {"alpha": XEmulator(keepalive_seconds=0.3), "beta": XEmulator(keepalive_seconds=0.3)}
    for emu in emus.values():
        await emu.start()
    doc: dict[str, Any] = {
        "database": {"url": pg_url},
        "bus": {
            "backend": "nats",
            "nats_url": NATS_URL,
            "stream": stream,
            "subject_prefix": stream.lower(),
            "ack_wait_seconds": 2.0,
        },
        "leases": {"timeout_seconds": 5.0, "renew_seconds": 0.5},
        "sender": {"min_interval_seconds": 0.05, "poll_seconds": 0.1},
        "chats": [
            {
                "id": "alpha",
                "hashtag": "AlphaChat",
                "schedule": schedule_started(1),
                "questions": {"file": str(questions_file(tmp_path / "a.toml", [1], "Alpha"))},
                "reposts": {"budget": 0},
                "adapters": {"x": {**X_FAST, "api_base": emus["alpha"].base_url}},
            },
            {
                "id": "beta",
                "hashtag": "BetaChat",
                "schedule": schedule_started(2, other_day_zone(datetime.now(UTC))),
                "questions": {"file": str(questions_file(tmp_path / "b.toml", [1, 2], "Beta"))},
                "reposts": {"budget": 2},
                "adapters": {"x": {**X_FAST, "api_base": emus["beta"].base_url}},
            },
        ],
    }
    env = {**secrets_for("alpha", emus["alpha"]), **secrets_for("beta", emus["beta"])}
    # Alpha's facilitator has pulled its kill switch before the chat starts.
    db = await PostgresDatabase.open(pg_url)
    await migrate(db)
    async with db.write() as tx:
        await tx.execute(
            "INSERT INTO switches (chat_id, name, value, updated_at) VALUES (?, ?, ?, ?)",
            ("alpha", "kill_switch", "on", datetime.now(UTC).isoformat()),
        )
    await db.close()

    app = await build_service(parse_settings(doc, env))
    client = TestClient(TestServer(app))
    await client.start_server()
    conn = await asyncpg.connect(pg_url)
    try:
        chats = runtimes(app)
        assert sorted(chats) == ["alpha", "beta"]
        ids = {
            "alpha": [
                emus["alpha"].post_tweet(f"a{i}", f"A1 alpha {i} #AlphaChat") for i in range(6)
            ],
            "beta": [emus["beta"].post_tweet(f"b{i}", f"A1 beta {i} #BetaChat") for i in range(6)],
        }

        async def beta_done() -> bool:
            texts = [t["text"] for t in emus["beta"].created_tweets]
            return sum("Beta question number" in t for t in texts) == 2

        await until(beta_done, 40, "beta's questions")

        async def stored() -> bool:
            rows = await conn.fetch("SELECT chat_id, remote_id FROM posts WHERE is_own = 0")
            got = {(r[0], r[1]) for r in rows}
            return all((c, i) in got for c, posted in ids.items() for i in posted)

        await until(stored, 30, "both chats' posts")
        # Alpha is switched off: it decided its questions but sent nothing.
        assert emus["alpha"].created_tweets == []
        pending = await conn.fetch(
            "SELECT purpose FROM actions WHERE chat_id = 'alpha' AND state = 'pending'"
        )
        assert {r[0] for r in pending} >= {"question", "intro"}
        # Its facilitator turns it back on; only then do alpha's posts go out, on alpha's account.
        alpha = chats["alpha"]
        assert alpha.controls is not None
        await alpha.controls.set_killed(False, now=datetime.now(UTC), actor="test")

        async def alpha_done() -> bool:
            return any(
                "Alpha question number 1" in t["text"] for t in emus["alpha"].created_tweets
            )

        await until(alpha_done, 30, "alpha's question after the switch is released")
        body = await (await client.get("/readyz")).json()
        assert set(body["chats"]) == {"alpha", "beta"}
        for chat_id in ("alpha", "beta"):
            leads = body["chats"][chat_id]["leadership"]["leads"]
            assert f"{chat_id}/platform.x" in leads
            assert f"{chat_id}/component.scheduler" in leads
        await asyncio.sleep(1.0)
        rows = await conn.fetch("SELECT chat_id, remote_id FROM posts WHERE is_own = 0")
        actions = await conn.fetch("SELECT chat_id, purpose, state FROM actions")
    finally:
        await conn.close()
        await client.close()
        for emu in emus.values():
            await emu.stop()
        with contextlib.suppress(Exception):
            nc = await nats.connect(NATS_URL)
            await nc.jetstream().delete_stream(stream)
            await nc.close()

    by_chat: dict[str, set[str]] = {"alpha": set(), "beta": set()}
    for chat_id, remote_id in rows:
        by_chat[chat_id].add(remote_id)
    assert by_chat == {c: set(v) for c, v in ids.items()}
    alpha_texts = [t["text"] for t in emus["alpha"].created_tweets]
    beta_texts = [t["text"] for t in emus["beta"].created_tweets]
    assert not any("Beta" in t or "#BetaChat" in t for t in alpha_texts), alpha_texts
    assert not any("Alpha" in t or "#AlphaChat" in t for t in beta_texts), beta_texts
    assert sum("Alpha question number" in t for t in alpha_texts) == 1
    assert sum("Beta question number" in t for t in beta_texts) == 2
    # Budgets are per chat: alpha's is 0, beta's 2.
    assert emus["alpha"].retweets == []
    assert 1 <= len(emus["beta"].retweets) <= 2
    assert {(c, p) for c, p, s in actions if p == "repost" and s == "sent"} <= {("beta", "repost")}


async def test_same_day_sessions_in_two_chats_each_get_their_questions(pg_url: str) -> None:
    db = await PostgresDatabase.open(pg_url)
    try:
        await migrate(db)
        decision = Decision(
            action=Publish(
                key="question:2026-11-25:1:x",
                platform=PlatformName("x"),
                purpose=Purpose.QUESTION,
                text="Q1",
            ),
            reason="due",
        )
        recorded = []
        for chat in ("alpha", "beta"):
            async with db.write() as tx:
                recorded += await record(
                    tx,
                    chat_id=chat,
                    decisions=[decision],
                    modes={Purpose.QUESTION: Mode.AUTO},
                    now=datetime.now(UTC),
                )
        assert len(recorded) == 2
    finally:
        await db.close()


def test_the_production_configuration_describes_two_chats() -> None:
    path = Path(__file__).resolve().parents[2] / "deploy" / "mhchat.production.toml"
    chats = load_chats(path, {"MHCHAT_CHAT_MHCHAT_UK_BLUESKY_APP_PASSWORD": "x"})
    assert [c.chat.chat_id for c in chats] == ["mhchat-uk", "mhchat-us"]
    assert {c.database.url for c in chats} == {
        "postgresql://mhchat:change-me@postgres:5432/mhchat"
    }
    assert all(c.bus.backend == "nats" and c.leases_on for c in chats)
    uk, us = chats
    assert uk.enabled_adapters[0].secrets == {"APP_PASSWORD": "x"}
    assert us.enabled_adapters[0].secrets == {}
    assert uk.section("schedule")["zone"] != us.section("schedule")["zone"]


def test_a_bad_chat_is_reported_by_the_shared_settings_check() -> None:
    doc = {
        "database": {"url": "sqlite:///x.db"},
        "chats": [{"id": "uk", "hashtag": "MHChat", "schedule": {"zone": "Nowhere/City"}}],
    }
    with pytest.raises(ConfigError) as caught:
        parse_settings(doc, {})
    assert any(p.startswith("[[chats]] uk: [schedule] zone") for p in caught.value.problems)
