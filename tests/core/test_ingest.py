"""Events flow from an adapter through the bus into the store, and out as actions."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Sequence

import aiohttp
import pytest
import structlog

from mhchat import ledger
from mhchat.actions import Purpose, Repost
from mhchat.adapters import AdapterContext, ChatInfo, Checkpoint
from mhchat.bus import BusFull, BusSink, EventBus
from mhchat.controls import Controls
from mhchat.events import PlatformName, PostReceived
from mhchat.ingest import IngestWorker, refused_content
from mhchat.ledger import Decision, Mode, State
from mhchat.runtime import DbState
from mhchat.sender import Sender
from mhchat.store.db import SqliteDatabase, Tx
from mhchat.store.posts import StoredBatch
from mhchat.testing import FakeAdapter, FakeClock, make_post

FAKE = PlatformName("fake")


class RepostEverything:
    """A minimal decision handler: repost every new post."""

    name = "repost-everything"

    def __init__(self) -> None:
        self.seen: list[str] = []

    async def handle(self, tx: Tx, batch: StoredBatch) -> None:
        self.seen.extend(p.remote_id for p in batch.new_posts)
        await ledger.record(
            tx,
            chat_id=batch.chat_id,
            decisions=[
                Decision(
                    action=Repost(
                        key=f"repost:{p.platform}:{p.remote_id}",
                        platform=p.platform,
                        purpose=Purpose.REPOST,
                        target=p.ref,
                    ),
                    reason="test",
                )
                for p in batch.new_posts
            ],
            modes={},
            now=batch.now,
        )


class Exploding:
    name = "exploding"

    async def handle(self, tx: Tx, batch: StoredBatch) -> None:
        await tx.execute("INSERT INTO audit (chat_id, at, actor, what) VALUES ('c','t','a','w')")
        raise RuntimeError("boom")


async def db_rows(db: SqliteDatabase, sql: str) -> list[tuple[object, ...]]:
    async with db.read() as tx:
        return await tx.fetchall(sql)


async def count(db: SqliteDatabase, sql: str, params: Sequence[object] = ()) -> int:
    async with db.read() as tx:
        row = await tx.fetchone(sql, params)
    assert row is not None
    return int(row[0])


def fake_adapter(
    bus: EventBus, db: SqliteDatabase, clock: FakeClock, http: aiohttp.ClientSession
) -> FakeAdapter:
    ctx = AdapterContext(
        platform=FAKE,
        chat=ChatInfo(chat_id="default", hashtag="MHChat"),
        sink=BusSink(bus, FAKE),
        http=http,
        clock=clock,
        log=structlog.get_logger("test"),
        state=DbState(db, "default", FAKE, clock),
        settings={},
    )
    return FakeAdapter(ctx)


class TestIngest:
    async def test_posts_flow_to_store_and_out_as_actions(
        self, db: SqliteDatabase, clock: FakeClock, http: aiohttp.ClientSession
    ) -> None:
        """FakeAdapter -> bus -> store -> ledger -> sender -> FakeAdapter.perform."""
        bus = EventBus(10)
        handler = RepostEverything()
        worker = IngestWorker(bus=bus, db=db, clock=clock, chat_id="default", handlers=[handler])
        adapter = fake_adapter(bus, db, clock, http)
        await adapter.inject(make_post("1", author="ann"), make_post("2", author="bob"))
        await worker.drain()
        assert await count(db, "SELECT count(*) FROM posts") == 2
        controls = Controls(db, "default", {})
        sender = Sender(
            platform=FAKE, adapter=adapter, db=db, clock=clock, controls=controls, min_interval=0
        )
        assert await sender.step()
        assert await sender.step()
        assert not await sender.step()
        assert [a.key for a in adapter.performed] == ["repost:fake:1", "repost:fake:2"]
        assert await count(db, "SELECT count(*) FROM actions WHERE state = 'sent'") == 2

    async def test_duplicates_are_stored_once(self, db: SqliteDatabase, clock: FakeClock) -> None:
        bus = EventBus(10)
        handler = RepostEverything()
        worker = IngestWorker(bus=bus, db=db, clock=clock, chat_id="default", handlers=[handler])
        sink = BusSink(bus, FAKE)
        post = make_post("7")
        await sink.publish([PostReceived(post=post), PostReceived(post=post)])
        await sink.publish([PostReceived(post=post)])
        await worker.drain()
        await sink.publish([PostReceived(post=post)])
        await worker.drain()
        assert await count(db, "SELECT count(*) FROM posts") == 1
        assert handler.seen == ["7"]
        assert await count(db, "SELECT count(*) FROM actions") == 1
        assert worker.stats.duplicates == 3

    async def test_checkpoint_saved_with_the_events(
        self, db: SqliteDatabase, clock: FakeClock
    ) -> None:
        bus = EventBus(10)
        worker = IngestWorker(bus=bus, db=db, clock=clock, chat_id="default")
        sink = BusSink(bus, FAKE)
        await sink.publish(
            [PostReceived(post=make_post("1"))], checkpoint=Checkpoint(key="cursor", value="42")
        )
        assert await DbState(db, "default", FAKE, clock).get("cursor") is None
        await worker.drain()
        assert await DbState(db, "default", FAKE, clock).get("cursor") == "42"

    async def test_full_queue_applies_back_pressure(
        self, db: SqliteDatabase, clock: FakeClock
    ) -> None:
        """A full bus makes publish wait, offer refuse, and the refusal is counted."""
        bus = EventBus(2)
        sink = BusSink(bus, FAKE)
        await sink.publish([PostReceived(post=make_post("1"))])
        await sink.publish([PostReceived(post=make_post("2"))])
        assert sink.offer([PostReceived(post=make_post("3"))]) is None
        blocked = asyncio.create_task(sink.publish([PostReceived(post=make_post("4"))]))
        await asyncio.sleep(0.05)
        assert not blocked.done()
        with pytest.raises(BusFull):
            await sink.publish_and_wait([PostReceived(post=make_post("5"))], timeout=0.05)
        worker = IngestWorker(bus=bus, db=db, clock=clock, chat_id="default")
        task = asyncio.create_task(worker.run())
        await asyncio.wait_for(blocked, 2)
        await asyncio.sleep(0.05)
        task.cancel()
        assert bus.stats.refused == 2
        assert await count(db, "SELECT count(*) FROM posts") == 3

    async def test_publish_and_wait_returns_after_storing(
        self, db: SqliteDatabase, clock: FakeClock
    ) -> None:
        bus = EventBus(10)
        worker = IngestWorker(bus=bus, db=db, clock=clock, chat_id="default")
        task = asyncio.create_task(worker.run())
        await BusSink(bus, FAKE).publish_and_wait([PostReceived(post=make_post("9"))], timeout=5)
        assert await count(db, "SELECT count(*) FROM posts WHERE remote_id = '9'") == 1
        task.cancel()

    async def test_failing_handler_does_not_stop_the_worker(
        self, db: SqliteDatabase, clock: FakeClock
    ) -> None:
        """The failing handler's writes roll back; posts and other handlers commit."""
        errors: list[str] = []
        bus = EventBus(10)
        good = RepostEverything()
        worker = IngestWorker(
            bus=bus,
            db=db,
            clock=clock,
            chat_id="default",
            handlers=[Exploding(), good],
            error_hook=lambda where, exc: errors.append(where),
        )
        sink = BusSink(bus, FAKE)
        await sink.publish([PostReceived(post=make_post("1"))])
        await worker.drain()
        await sink.publish([PostReceived(post=make_post("2"))])
        await worker.drain()
        assert errors == ["handler.exploding", "handler.exploding"]
        assert good.seen == ["1", "2"]
        assert await count(db, "SELECT count(*) FROM audit") == 0
        assert await count(db, "SELECT count(*) FROM posts") == 2

    async def test_a_post_the_store_refuses_is_set_aside_and_the_rest_stored(
        self, db: SqliteDatabase, clock: FakeClock
    ) -> None:
        """Text no database can hold fails its batch every time: it must not hold back the
        posts beside it, its envelope's cursor, or anyone waiting for their posts."""
        bus = EventBus(10)
        handler = RepostEverything()
        worker = IngestWorker(
            bus=bus,
            db=db,
            clock=clock,
            chat_id="default",
            handlers=[handler],
            error_hook=lambda where, exc: None,
            retry_delay=0.01,
        )
        task = asyncio.create_task(worker.run())
        sink = BusSink(bus, FAKE)
        poison = make_post("2", text="bad \ud800 text")
        await sink.publish(
            [PostReceived(post=make_post("1")), PostReceived(post=poison)],
            checkpoint=Checkpoint(key="cursor", value="42"),
        )
        await sink.publish_and_wait([PostReceived(post=make_post("3"))], timeout=10)
        await asyncio.wait_for(bus.join(), 10)
        task.cancel()
        rows = await db_rows(db, "SELECT remote_id FROM posts ORDER BY remote_id")
        assert rows == [("1",), ("3",)]
        assert handler.seen == ["1", "3"]
        assert worker.stats.refused_events == 1
        assert await DbState(db, "default", FAKE, clock).get("cursor") == "42"

    async def test_only_errors_about_the_data_set_an_event_aside(self) -> None:
        refused: tuple[Exception, ...] = (
            UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed"),
            OverflowError("Python int too large to convert to SQLite INTEGER"),
            sqlite3.IntegrityError("NOT NULL constraint failed"),
        )
        retried: tuple[Exception, ...] = (
            sqlite3.OperationalError("database is locked"),
            sqlite3.OperationalError("database or disk is full"),
            sqlite3.ProgrammingError("Cannot operate on a closed database."),
            OSError(28, "No space left on device"),
            AttributeError("a bug"),
            RuntimeError("boom"),
        )
        assert all(refused_content(exc) for exc in refused)
        assert not any(refused_content(exc) for exc in retried)

    async def test_a_post_a_handler_cannot_take_costs_the_others_nothing(
        self, db: SqliteDatabase, clock: FakeClock
    ) -> None:
        errors: list[str] = []
        good = RepostEverything()

        class ChokesOnTwo(RepostEverything):
            name = "chokes-on-two"

            async def handle(self, tx: Tx, batch: StoredBatch) -> None:
                await super().handle(tx, batch)
                if any(p.remote_id == "2" for p in batch.new_posts):
                    raise ValueError("cannot take post 2")

        choking = ChokesOnTwo()
        bus = EventBus(10)
        worker = IngestWorker(
            bus=bus,
            db=db,
            clock=clock,
            chat_id="default",
            handlers=[choking, good],
            error_hook=lambda where, exc: errors.append(where),
        )
        await BusSink(bus, FAKE).publish(
            [PostReceived(post=make_post(n, author=f"a{n}")) for n in ("1", "2", "3")]
        )
        await worker.drain()
        assert errors == ["handler.chokes-on-two", "handler.chokes-on-two"]
        assert good.seen == ["1", "2", "3"]
        rows = await db_rows(db, "SELECT key FROM actions ORDER BY key")
        # The choking handler's work on 1 and 3 stands; on 2 it was rolled back (and the good
        # handler's repost of 2 is the same key, recorded once).
        assert rows == [("repost:fake:1",), ("repost:fake:2",), ("repost:fake:3",)]
        assert worker.stats.handler_errors == 2

    async def test_deletion_before_post_keeps_it_out(
        self, db: SqliteDatabase, clock: FakeClock
    ) -> None:
        from mhchat.events import PostDeleted, RemoteId  # noqa: PLC0415

        bus = EventBus(10)
        worker = IngestWorker(bus=bus, db=db, clock=clock, chat_id="default")
        sink = BusSink(bus, FAKE)
        await sink.publish([PostReceived(post=make_post("1"))])
        await worker.drain()
        await sink.publish(
            [
                PostDeleted(platform=FAKE, remote_id=RemoteId("1"), deleted_at=clock.now()),
                PostDeleted(platform=FAKE, remote_id=RemoteId("2"), deleted_at=clock.now()),
            ]
        )
        await worker.drain()
        await sink.publish([PostReceived(post=make_post("2"))])
        await worker.drain()
        assert await count(db, "SELECT count(*) FROM posts") == 0

    async def test_a_deletion_with_replies_takes_the_stored_replies_with_it(
        self, db: SqliteDatabase, clock: FakeClock
    ) -> None:
        """A Facebook post takes its comments, and a comment its replies, when deleted."""
        from mhchat.events import PostDeleted, RemoteId  # noqa: PLC0415

        bus = EventBus(10)
        worker = IngestWorker(bus=bus, db=db, clock=clock, chat_id="default")
        sink = BusSink(bus, FAKE)
        thread = [
            make_post("p", author="host", is_own=True),
            make_post("c1", author="ann", parent="p", root="p"),
            make_post("r1", author="bob", parent="c1", root="p"),
            make_post("c2", author="cat", parent="other", root="other"),
            make_post("q", author="dan", parent="r1", root="p"),
        ]
        await sink.publish([PostReceived(post=p) for p in thread])
        await worker.drain()
        await sink.publish(
            [
                PostDeleted(
                    platform=FAKE,
                    remote_id=RemoteId("p"),
                    deleted_at=clock.now(),
                    with_replies=True,
                )
            ]
        )
        await worker.drain()
        assert await db_rows(db, "SELECT remote_id FROM posts") == [("c2",)]
        tombstones = await db_rows(db, "SELECT remote_id FROM tombstones ORDER BY remote_id")
        assert tombstones == [("c1",), ("p",), ("q",), ("r1",)]
        # A reply delivered late (a retried webhook), and a reply to it, are kept out too.
        await sink.publish(
            [
                PostReceived(post=make_post("r2", author="eve", parent="c1", root="p")),
                PostReceived(post=make_post("r3", author="fay", parent="r2", root="p")),
            ]
        )
        await worker.drain()
        assert await db_rows(db, "SELECT remote_id FROM posts") == [("c2",)]
        tombstones = await db_rows(db, "SELECT remote_id FROM tombstones ORDER BY remote_id")
        assert tombstones == [("c1",), ("p",), ("q",), ("r1",), ("r2",), ("r3",)]
        # Elsewhere a reply outlives its parent.
        await sink.publish([PostReceived(post=make_post("c3", parent="c2", root="other"))])
        await worker.drain()
        await sink.publish(
            [PostDeleted(platform=FAKE, remote_id=RemoteId("c2"), deleted_at=clock.now())]
        )
        await worker.drain()
        assert await db_rows(db, "SELECT remote_id FROM posts") == [("c3",)]

    async def test_first_timers_are_reported_once(
        self, db: SqliteDatabase, clock: FakeClock
    ) -> None:
        seen: list[set[tuple[str, str]]] = []

        class Watch:
            name = "watch"

            async def handle(self, tx: Tx, batch: StoredBatch) -> None:
                seen.append(set(batch.first_timers))

        bus = EventBus(10)
        worker = IngestWorker(bus=bus, db=db, clock=clock, chat_id="default", handlers=[Watch()])
        sink = BusSink(bus, FAKE)
        await sink.publish([PostReceived(post=make_post("1", author="ann"))])
        await worker.drain()
        await sink.publish(
            [
                PostReceived(post=make_post("2", author="ann")),
                PostReceived(post=make_post("3", author="bob")),
            ]
        )
        await worker.drain()
        assert seen == [{("fake", "id-ann")}, {("fake", "id-bob")}]


class TestSender:
    async def _one(self, db: SqliteDatabase, clock: FakeClock, key: str = "k1") -> None:
        async with db.write() as tx:
            await ledger.record(
                tx,
                chat_id="default",
                decisions=[
                    Decision(
                        action=Repost(
                            key=key,
                            platform=FAKE,
                            purpose=Purpose.REPOST,
                            target=make_post("1").ref,
                            not_after=clock.now().replace(hour=23),
                        ),
                        reason="test",
                    )
                ],
                modes={Purpose.REPOST: Mode.AUTO},
                now=clock.now(),
            )

    async def test_kill_switch_stops_sending(
        self, db: SqliteDatabase, clock: FakeClock, http: aiohttp.ClientSession
    ) -> None:
        await self._one(db, clock)
        adapter = fake_adapter(EventBus(), db, clock, http)
        controls = Controls(db, "default", {})
        await controls.set_killed(True, now=clock.now(), actor="test")
        sender = Sender(
            platform=FAKE,
            adapter=adapter,
            db=db,
            clock=clock,
            controls=controls,
            min_interval=0,
            poll_seconds=0.01,
        )
        task = asyncio.create_task(sender.run())
        await asyncio.sleep(0.1)
        assert adapter.performed == []
        await controls.set_killed(False, now=clock.now(), actor="test")
        sender.poke()
        for _ in range(100):
            if adapter.performed:
                break
            await asyncio.sleep(0.01)
        task.cancel()
        assert len(adapter.performed) == 1

    async def test_stale_action_expires(
        self, db: SqliteDatabase, clock: FakeClock, http: aiohttp.ClientSession
    ) -> None:
        await self._one(db, clock)
        clock.set(clock.now().replace(day=8))
        adapter = fake_adapter(EventBus(), db, clock, http)
        sender = Sender(
            platform=FAKE,
            adapter=adapter,
            db=db,
            clock=clock,
            controls=Controls(db, "default", {}),
            min_interval=0,
        )
        assert await sender.step()
        assert adapter.performed == []
        assert await count(db, "SELECT count(*) FROM actions WHERE state = 'expired'") == 1

    async def test_unknown_outcome_is_checked_not_retried(
        self, db: SqliteDatabase, clock: FakeClock, http: aiohttp.ClientSession
    ) -> None:
        from mhchat.errors import OutcomeUnknown  # noqa: PLC0415

        await self._one(db, clock)
        adapter = fake_adapter(EventBus(), db, clock, http)
        adapter.fail_next(OutcomeUnknown("timeout after send"), reached=True)
        sender = Sender(
            platform=FAKE,
            adapter=adapter,
            db=db,
            clock=clock,
            controls=Controls(db, "default", {}),
            min_interval=0,
        )
        assert await sender.step()
        assert not await sender.step()
        assert len(adapter.performed) == 1
        async with db.read() as tx:
            rows = await ledger.by_state(tx, "default", [State.SENT])
        assert rows[0].detail == "found on the platform after an unknown outcome"


class TestSendOrder:
    async def test_questions_go_before_a_backlog_of_reposts(
        self, db: SqliteDatabase, clock: FakeClock, http: aiohttp.ClientSession
    ) -> None:
        """A question decided after 20 reposts is still the next thing sent."""
        from mhchat.actions import Publish  # noqa: PLC0415

        reposts = [
            Decision(
                action=Repost(
                    key=f"repost:fake:{i}",
                    platform=FAKE,
                    purpose=Purpose.REPOST,
                    target=make_post(str(i)).ref,
                ),
                reason="test",
            )
            for i in range(20)
        ]
        question = Decision(
            action=Publish(
                key="question:s:2:fake", platform=FAKE, purpose=Purpose.QUESTION, text="Q2"
            ),
            reason="schedule",
        )
        async with db.write() as tx:
            await ledger.record(
                tx, chat_id="default", decisions=[*reposts, question], modes={}, now=clock.now()
            )
        adapter = fake_adapter(EventBus(), db, clock, http)
        sender = Sender(
            platform=FAKE,
            adapter=adapter,
            db=db,
            clock=clock,
            controls=Controls(db, "default", {}),
            min_interval=0,
        )
        assert await sender.step()
        assert [a.key for a in adapter.performed] == ["question:s:2:fake"]
