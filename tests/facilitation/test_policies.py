"""Requests, deletions, edits, blocklist, bots and modes, through the real ingest path."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from mhchat.actions import Purpose
from mhchat.events import (
    PersonForgetRequested,
    PlatformName,
    Post,
    PostDeleted,
    PostEdited,
    PostReceived,
    RemoteId,
)
from mhchat.facilitation import views
from mhchat.facilitation.questions import parse_questions
from mhchat.facilitation.scheduler import Scheduler
from mhchat.ledger import Mode, State, transition
from mhchat.store.db import SqliteDatabase
from mhchat.testing import FakeClock, make_post

from .conftest import START, Harness, add_chat, make_harness, settings_from

X = PlatformName("x")


def post(
    rid: str,
    author: str = "ann",
    text: str = "A1 ok tonight #MHChat",
    minutes: int = 6,
    *,
    parent: str | None = None,
    is_own: bool = False,
    mentions_host: bool = False,
) -> Post:
    return make_post(
        rid,
        author=author,
        text=text,
        platform=X,
        created_at=START + timedelta(minutes=minutes),
        parent=parent,
        is_own=is_own,
        mentions_host=mentions_host,
    )


async def states(h: Harness) -> dict[str, str]:
    return {str(r[0]): str(r[1]) for r in await h.rows("SELECT key, state FROM actions")}


class TestDeletion:
    async def test_deleting_a_post_we_reposted_undoes_the_repost(self, harness: Harness) -> None:
        await harness.feed([PostReceived(post=post("p1"))])
        async with harness.db.write() as tx:
            row = await tx.fetchone("SELECT id FROM actions WHERE key = 'repost:x:p1'")
            assert row is not None
            await transition(tx, int(row[0]), to=State.SENT, now=START, remote_id="rt-1")
        await harness.feed(
            [
                PostDeleted(
                    platform=X, remote_id=RemoteId("p1"), deleted_at=START + timedelta(minutes=9)
                )
            ]
        )
        rows = await harness.rows(
            "SELECT kind, state, payload, reason FROM actions WHERE key = 'unrepost:x:p1'"
        )
        assert rows
        assert rows[0][0] == "unrepost"
        assert rows[0][1] == "pending"
        assert '"repost_id":"rt-1"' in rows[0][2]
        assert "deleted" in rows[0][3]
        # The waiting welcome reply to the deleted post is dropped, not sent.
        assert (await states(harness))["welcome:x:id-ann:2026-11-25"] == "dropped"

    async def test_a_deleted_flagged_post_leaves_the_safety_queue(self, harness: Harness) -> None:
        await harness.feed([PostReceived(post=post("c1", text="I want to die tonight #MHChat"))])
        await harness.feed(
            [
                PostDeleted(
                    platform=X, remote_id=RemoteId("c1"), deleted_at=START + timedelta(minutes=9)
                )
            ]
        )
        async with harness.db.read() as tx:
            assert await views.safety_queue(tx, "default", START + timedelta(hours=1)) == []
        assert (await states(harness))["signpost:x:c1"] == "dropped"


class TestRequests:
    async def test_dont_repost_me_addressed_to_the_host(self, harness: Harness) -> None:
        ask = post(
            "r1", text="@host please don't repost me #MHChat", minutes=1, mentions_host=True
        )
        await harness.feed([PostReceived(post=ask)])
        await harness.feed([PostReceived(post=post("p2", minutes=7))])
        keys = await states(harness)
        assert not any(k.startswith("repost:") for k in keys)
        note = await harness.rows("SELECT note FROM posts WHERE remote_id = 'p2'")
        assert "asked not to be reposted" in note[0][0]
        # "you can repost me again" turns it back.
        await harness.feed(
            [
                PostReceived(
                    post=post(
                        "r2", text="@host you can repost me again", minutes=8, mentions_host=True
                    )
                )
            ]
        )
        await harness.feed([PostReceived(post=post("p3", minutes=9))])
        assert "repost:x:p3" in await states(harness)

    async def test_the_same_words_not_addressed_to_the_host_are_not_a_request(
        self, harness: Harness
    ) -> None:
        await harness.feed(
            [PostReceived(post=post("r1", text="I told my friend don't repost me lol #MHChat"))]
        )
        rows = await harness.rows("SELECT opted_out FROM participants")
        assert rows[0][0] == 0

    async def test_a_reply_to_our_post_counts_as_addressed(self, harness: Harness) -> None:
        q1 = post("q1", author="host", text="Q1: how are you? #MHChat", minutes=5, is_own=True)
        await harness.feed([PostReceived(post=q1)])
        await harness.feed([PostReceived(post=post("r1", text="opt me out please", parent="q1"))])
        rows = await harness.rows("SELECT opted_out FROM participants WHERE author_id = 'id-ann'")
        assert rows[0][0] == 1

    async def test_forget_me_removes_posts_flags_tallies_and_the_person(
        self, harness: Harness
    ) -> None:
        await harness.feed(
            [
                PostReceived(post=post("p1")),
                PostReceived(post=post("c1", text="I want to die #MHChat", minutes=7)),
            ]
        )
        await harness.feed(
            [
                PostReceived(
                    post=post("f1", text="@host forget me please", minutes=8, mentions_host=True)
                )
            ]
        )
        for table in ("posts", "participants", "safety_flags", "session_reposts", "welcomes"):
            rows = await harness.rows(f"SELECT COUNT(*) FROM {table}")
            assert rows[0][0] == 0, table
        keys = await states(harness)
        assert keys["repost:x:p1"] == "dropped"
        # Redelivery of a forgotten post does not bring it back.
        await harness.feed([PostReceived(post=post("p1"))])
        assert (await harness.rows("SELECT COUNT(*) FROM posts"))[0][0] == 0


class TestNeverAmplified:
    async def test_blocklist_bots_own_posts_and_outside_hours(self, db: SqliteDatabase) -> None:
        await add_chat(db)
        settings = settings_from({"safety": {"blocklist": ["x:id-mal"]}})
        h = make_harness(db, FakeClock(START), settings)
        await h.feed(
            [
                PostReceived(post=post("b1", author="mal")),
                PostReceived(post=replace(post("b2", author="robot"), is_bot=True)),
                PostReceived(post=post("o1", author="host", text="Q1: hi #MHChat", is_own=True)),
                PostReceived(post=post("late", author="kim", minutes=60 * 24)),
            ]
        )
        assert await states(h) == {}
        notes = {
            str(r[0]): str(r[1])
            for r in await h.rows("SELECT remote_id, note FROM posts WHERE note IS NOT NULL")
        }
        assert "blocklist" in notes["b1"]
        assert "automated" in notes["b2"]
        assert "outside chat hours" in notes["late"]

    async def test_a_post_edited_into_abuse_loses_its_waiting_repost(
        self, harness: Harness
    ) -> None:
        await harness.feed([PostReceived(post=post("p1"))])
        edited = post("p1", text="you are all fucking idiots and losers #MHChat")
        await harness.feed([PostEdited(post=edited, edited_at=START + timedelta(minutes=7))])
        keys = await states(harness)
        assert keys["repost:x:p1"] == "dropped"
        flags = await harness.rows("SELECT category FROM safety_flags WHERE remote_id = 'p1'")
        assert flags == [("abuse",)]


class TestModesAndReasons:
    async def test_signposting_is_approve_first_even_when_replies_are_automatic(
        self, db: SqliteDatabase
    ) -> None:
        await add_chat(db)
        h = make_harness(
            db, FakeClock(START), modes={Purpose.WELCOME: Mode.AUTO, Purpose.REPOST: Mode.DRY_RUN}
        )
        await h.feed(
            [PostReceived(post=post("c1", text="I can't go on, I want to end my life #MHChat"))]
        )
        rows = {
            str(r[0]): (str(r[1]), str(r[2]))
            for r in await h.rows("SELECT key, state, reason FROM actions")
        }
        assert rows["signpost:x:c1"][0] == "awaiting_approval"
        assert "never reposted" in rows["signpost:x:c1"][1]
        assert not any(k.startswith(("repost:", "welcome:")) for k in rows)

    async def test_x_reply_rule_is_stated_in_the_welcome_reason(self, harness: Harness) -> None:
        await harness.feed([PostReceived(post=post("p1"))])
        reason = (await harness.rows("SELECT reason FROM actions WHERE purpose = 'welcome'"))[0][0]
        assert "does not mention the host" in reason
        payload = (await harness.rows("SELECT payload FROM actions WHERE purpose = 'welcome'"))[0][
            0
        ]
        assert '"parent_mentions_host":false' in payload
        assert "Be Kind" in payload

    async def test_signposting_names_the_region_a_post_mentions(self, harness: Harness) -> None:
        await harness.feed(
            [PostReceived(post=post("c1", text="I'm in London and I want to die #MHChat"))]
        )
        payload = (await harness.rows("SELECT payload FROM actions WHERE key = 'signpost:x:c1'"))[
            0
        ][0]
        assert "116 123" in payload
        assert "988" not in payload

    async def test_budget_per_platform_per_session(self, db: SqliteDatabase) -> None:
        await add_chat(db)
        h = make_harness(
            db,
            FakeClock(START),
            settings_from({"reposts": {"budget": {"x": 2}}, "welcomes": {"budget": {"x": 1}}}),
        )
        await h.feed(
            [
                PostReceived(
                    post=post(
                        f"p{i}",
                        author=f"u{i}",
                        text=f"A1 answer number {i} #MHChat",
                        minutes=6 + i,
                    )
                )
                for i in range(4)
            ]
        )
        keys = await states(h)
        assert sum(k.startswith("repost:") for k in keys) == 2
        assert sum(k.startswith("welcome:") for k in keys) == 1
        notes = [
            str(r[0])
            for r in await h.rows("SELECT note FROM posts WHERE note LIKE 'not reposted%'")
        ]
        assert len(notes) == 2
        assert "budget" in notes[0]


class TestFlagRetention:
    async def test_flags_expire_with_the_retention_setting(self, db: SqliteDatabase) -> None:
        await add_chat(db)
        settings = settings_from({"safety": {"flag_retention_days": 2}})
        clock = FakeClock(START)
        h = make_harness(db, clock, settings)
        await h.feed([PostReceived(post=post("c1", text="I want to die #MHChat"))])
        async with db.read() as tx:
            assert len(await views.safety_queue(tx, "default", START + timedelta(days=1))) == 1
            assert await views.safety_queue(tx, "default", START + timedelta(days=3)) == []
        qfile, _ = parse_questions(
            {"default": {"questions": [{"n": 1, "offset_minutes": 5, "text": "q"}]}}
        )
        clock.set(START + timedelta(days=3))
        scheduler = Scheduler(
            db=db, clock=clock, settings=settings, modes={}, platforms=["x"], questions=qfile
        )
        report = await scheduler.tick()
        assert report.flags_purged == 1
        # The flag named the post, never the person: the participant row holds no flag.
        columns = [str(r[1]) for r in await h.rows("PRAGMA table_info(participants)")]
        assert not any("flag" in c or "crisis" in c for c in columns)

    async def test_a_facilitator_marks_a_flag_handled(self, harness: Harness) -> None:
        await harness.feed([PostReceived(post=post("c1", text="I want to die #MHChat"))])
        async with harness.db.read() as tx:
            (flag,) = await views.safety_queue(tx, "default", START)
        async with harness.db.write() as tx:
            assert await views.set_flag_state(tx, "default", flag.id, "handled", START)
        async with harness.db.read() as tx:
            assert await views.safety_queue(tx, "default", START) == []
            assert len(await views.safety_queue(tx, "default", START, include_handled=True)) == 1
            sessions = await views.sessions(tx, "default")
        assert [s.session_id for s in sessions] == ["2026-11-25"]


async def test_mode_changes_at_run_time_apply_to_the_next_batch(db: SqliteDatabase) -> None:
    await add_chat(db)
    modes: dict[Purpose, Mode] = {Purpose.REPOST: Mode.AUTO}
    h = make_harness(db, FakeClock(START), modes=modes)
    await h.feed([PostReceived(post=post("p1", author="a"))])
    modes[Purpose.REPOST] = Mode.APPROVE_FIRST
    await h.feed([PostReceived(post=post("p2", author="b"))])
    keys = await states(h)
    assert keys["repost:x:p1"] == "pending"
    assert keys["repost:x:p2"] == "awaiting_approval"


async def test_a_platform_data_deletion_request_forgets_the_person(harness: Harness) -> None:
    await harness.feed([PostReceived(post=post("p1")), PostReceived(post=post("p2", author="bo"))])
    request = PersonForgetRequested(
        platform=X, author_id="id-ann", requested_at=START, confirmation_code="abc"
    )
    await harness.feed([request])
    authors = {str(r[0]) for r in await harness.rows("SELECT author_id FROM posts")}
    assert authors == {"id-bo"}
    assert (await states(harness))["repost:x:p1"] == "dropped"


async def test_a_signposting_text_too_long_for_the_platform_says_so(harness: Harness) -> None:
    long_handle = make_post(
        "c9", author="h" * 300, text="I want to die #MHChat", platform=X, created_at=START
    )
    await harness.feed([PostReceived(post=long_handle)])
    reason = (await harness.rows("SELECT reason FROM actions WHERE key = 'signpost:x:c9'"))[0][0]
    assert "X allows 280: shorten it before approving" in str(reason)


async def test_a_first_post_between_chats_is_welcomed_at_the_chat(harness: Harness) -> None:
    morning = post("m1", text="first time joining #MHChat tonight, a bit nervous", minutes=-7 * 60)
    await harness.feed([PostReceived(post=morning)])
    assert await states(harness) == {}
    notes = await harness.rows("SELECT note FROM posts WHERE remote_id = 'm1'")
    assert "outside chat hours" in str(notes[0][0])
    await harness.feed([PostReceived(post=post("a1", text="A1 ok actually #MHChat", minutes=7))])
    keys = await states(harness)
    assert keys["welcome:x:id-ann:2026-11-25"] == "pending"
    payload = (await harness.rows("SELECT payload FROM actions WHERE purpose = 'welcome'"))[0][0]
    assert '"remote_id":"a1"' in str(payload)
    # Once, ever: another post later in the chat is not welcomed again.
    await harness.feed([PostReceived(post=post("a2", text="A2 walking #MHChat", minutes=17))])
    assert sum(k.startswith("welcome:") for k in await states(harness)) == 1


async def test_a_crisis_post_gets_signposting_not_a_cheerful_welcome(harness: Harness) -> None:
    await harness.feed(
        [
            PostReceived(post=post("c1", text="I want to die tonight #MHChat", minutes=6)),
            PostReceived(post=post("c2", text="A1 sorry, ignore me #MHChat", minutes=7)),
        ]
    )
    keys = await states(harness)
    assert "signpost:x:c1" in keys
    assert not any(k.startswith("welcome:") for k in keys)
