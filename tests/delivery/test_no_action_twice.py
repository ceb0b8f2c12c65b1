"""Promise 2, no action twice: decided actions are in the ledger before they are sent; after a
crash, an action left ``sending`` becomes ``unknown``, is checked against the platform, and is
never sent again blindly."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import structlog
from aiohttp.test_utils import TestClient, TestServer

from mhchat import ledger
from mhchat.actions import Purpose, Repost
from mhchat.adapters import AdapterContext, ChatInfo
from mhchat.config import parse_settings
from mhchat.controls import Controls
from mhchat.errors import OutcomeUnknown
from mhchat.events import PlatformName, PostRef, RemoteId
from mhchat.ledger import Decision, State
from mhchat.sender import Sender
from mhchat.store.chats import ensure_chat
from mhchat.store.db import Database, SqliteDatabase
from mhchat.store.migrate import migrate
from mhchat.testing import FakeAdapter, FakeClock, MemoryState, RecordingSink
from mhchat.web.app import build_app
from mhchat.web.keys import RUNTIME

FAKE = PlatformName("fake")


def repost(n: int) -> Repost:
    return Repost(
        key=f"repost:fake:{n}",
        platform=FAKE,
        purpose=Purpose.REPOST,
        target=PostRef(remote_id=RemoteId(str(n))),
    )


async def states(db: Database) -> dict[str, str]:
    async with db.read() as tx:
        rows = await tx.fetchall("SELECT key, state FROM actions")
    return {str(k): str(s) for k, s in rows}


async def test_a_crash_mid_send_is_checked_on_the_platform_never_resent(tmp_path: Path) -> None:
    """Two actions were ``sending`` when the process died: one had reached the platform, one
    had not. At start-up both become ``unknown``; the one the platform confirms becomes
    ``sent``, the other stays ``unknown`` for a facilitator; neither is performed again."""
    path = tmp_path / "mhchat.db"
    db = await SqliteDatabase.open(path)
    await migrate(db)
    now = datetime.now(UTC)
    await ensure_chat(db, "default", "MHChat", now)
    async with db.write() as tx:
        await ledger.record(
            tx,
            chat_id="default",
            decisions=[Decision(action=repost(n), reason="test") for n in (1, 2, 3)],
            modes={},
            now=now,
        )
        for action_id in (1, 2):
            await ledger.transition(tx, action_id, to=State.SENDING, now=now)
    await db.close()

    settings = parse_settings(
        {
            "database": {"url": f"sqlite:///{path}"},
            "sender": {"min_interval_seconds": 0.0, "poll_seconds": 0.05},
            "adapters": {"fake": {}},
        },
        {},
    )
    app = await build_app(settings)
    runtime = app[RUNTIME]
    adapter = runtime.slots["fake"].adapter
    assert isinstance(adapter, FakeAdapter)
    adapter.effects["repost:fake:1"] = "fake-remote-1"  # it reached the platform before the crash
    async with TestClient(TestServer(app)):
        db2 = runtime.require_db()
        for _ in range(100):
            found = await states(db2)
            if found["repost:fake:1"] == "sent" and found["repost:fake:3"] == "sent":
                break
            await runtime.clock.sleep(0.02)
        found = await states(db2)
        async with db2.read() as tx:
            trail = await tx.fetchall(
                "SELECT a.key, t.from_state, t.to_state FROM action_transitions t"
                " JOIN actions a ON a.id = t.action_id ORDER BY t.id"
            )
    assert found == {
        "repost:fake:1": "sent",  # confirmed by check_outcome
        "repost:fake:2": "unknown",  # the platform has no trace: a person decides
        "repost:fake:3": "sent",  # never started: sent normally
    }
    assert [a.key for a in adapter.performed] == ["repost:fake:3"]
    moves = [(str(k), str(f), str(t)) for k, f, t in trail]
    assert ("repost:fake:1", "sending", "unknown") in moves
    assert ("repost:fake:1", "unknown", "sent") in moves
    assert ("repost:fake:2", "sending", "unknown") in moves
    assert not [m for m in moves if m[1] == "unknown" and m[2] in ("pending", "sending")]


async def test_a_timeout_after_the_request_reached_the_platform_is_not_retried(
    db: SqliteDatabase,
) -> None:
    clock = FakeClock(datetime.now(UTC))
    async with aiohttp.ClientSession() as http:
        ctx = AdapterContext(
            platform=FAKE,
            chat=ChatInfo(chat_id="default", hashtag="MHChat"),
            sink=RecordingSink(),
            http=http,
            clock=clock,
            log=structlog.get_logger("test"),
            state=MemoryState(),
            settings={},
            secrets={},
        )
        adapter = FakeAdapter(ctx)
        sender = Sender(
            platform=FAKE,
            adapter=adapter,
            db=db,
            clock=clock,
            controls=Controls(db, "default", {}),
            min_interval=0.0,
        )
        async with db.write() as tx:
            await ledger.record(
                tx,
                chat_id="default",
                decisions=[Decision(action=repost(n), reason="test") for n in (7, 8)],
                modes={},
                now=clock.now(),
            )
        # 7: the platform did it, then the answer was lost; 8: lost before reaching it and
        # the platform keeps no trace, so only a person can tell.
        adapter.fail_next(OutcomeUnknown("read timeout after sending"), reached=True)
        adapter.fail_next(OutcomeUnknown("read timeout after sending"), reached=False)
        assert await sender.step()
        assert await sender.step()
        clock.advance(3600)
        assert not await sender.step()  # nothing is pending again: unknown is not retried
    assert await states(db) == {"repost:fake:7": "sent", "repost:fake:8": "unknown"}
    assert [a.key for a in adapter.performed] == ["repost:fake:7"]
    assert sender.stats.unknown == 1


async def test_the_same_decision_twice_is_one_ledger_row(db: SqliteDatabase) -> None:
    """A redelivered event or a second process decides the same key: one row, one send."""
    now = datetime.now(UTC)
    for _ in range(3):
        async with db.write() as tx:
            await ledger.record(
                tx,
                chat_id="default",
                decisions=[Decision(action=repost(n), reason="again") for n in range(5)],
                modes={},
                now=now + timedelta(seconds=1),
            )
    async with db.read() as tx:
        rows = await tx.fetchall("SELECT key, COUNT(*) FROM actions GROUP BY key")
    assert sorted((str(k), int(c)) for k, c in rows) == [(f"repost:fake:{n}", 1) for n in range(5)]
