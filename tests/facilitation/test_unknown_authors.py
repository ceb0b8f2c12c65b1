"""Posts whose author the platform could not vouch for: kept and shown, never amplified.

An adapter that must look the author's bot label up (Bluesky) marks the post
``author_checked=False`` when that lookup failed. Such a post is stored, threaded and triaged as
any other, with a note saying why it was not amplified; the welcome waits for a later post.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import orjson

from mhchat.event_codec import decode_event, encode_event
from mhchat.events import PlatformName, Post, PostReceived
from mhchat.facilitation import views
from mhchat.facilitation.questions import parse_questions
from mhchat.facilitation.scheduler import Scheduler
from mhchat.testing import make_post

from .conftest import SESSION_ID, START, Harness

BSKY = PlatformName("bluesky")
UNCHECKED = "not amplified: the platform could not tell us whether the author is automated"


def post(
    rid: str,
    author: str = "ann",
    text: str = "A1 ok tonight #MHChat",
    minutes: int = 6,
    *,
    checked: bool = True,
    parent: str | None = None,
    is_own: bool = False,
) -> Post:
    made = make_post(
        rid,
        author=author,
        text=text,
        platform=BSKY,
        created_at=START + timedelta(minutes=minutes),
        parent=parent,
        is_own=is_own,
    )
    return replace(made, author_checked=checked)


async def keys(h: Harness) -> set[str]:
    return {str(r[0]) for r in await h.rows("SELECT key FROM actions")}


async def notes(h: Harness) -> dict[str, str | None]:
    rows = await h.rows("SELECT remote_id, note FROM posts")
    return {str(r[0]): None if r[1] is None else str(r[1]) for r in rows}


async def test_an_unchecked_post_is_stored_threaded_and_triaged_but_not_amplified(
    harness: Harness,
) -> None:
    question = post("q1", author="host", text="Q1 how was your week? #MHChat", is_own=True)
    await harness.feed([PostReceived(post=question)])
    answer = post("u1", text="A1 a good week, thanks #MHChat", minutes=7, parent="q1")
    await harness.feed([PostReceived(post=replace(answer, author_checked=False))])
    assert {k for k in await keys(harness) if not k.startswith("question:")} == set()
    rows = await harness.rows(
        "SELECT session_id, triage, thread_root, question_n, note FROM posts"
        " WHERE remote_id = 'u1'"
    )
    assert rows == [(SESSION_ID, "ok", "q1", 1, UNCHECKED)]
    welcomed = await harness.rows("SELECT COUNT(*) FROM welcomes")
    assert welcomed == [(0,)]
    participant = await harness.rows(
        "SELECT first_post_id FROM participants WHERE author_id = 'id-ann'"
    )
    assert participant == [("u1",)]


async def test_the_welcome_comes_with_a_later_checked_post(harness: Harness) -> None:
    await harness.feed([PostReceived(post=post("u1", minutes=6, checked=False))])
    assert await keys(harness) == set()
    harness.clock.set(START + timedelta(minutes=20))
    later = post("a2", text="A2 walking helps #MHChat", minutes=19)
    await harness.feed([PostReceived(post=later)])
    assert await keys(harness) == {f"welcome:bluesky:id-ann:{SESSION_ID}", "repost:bluesky:a2"}
    payload = await harness.rows("SELECT payload FROM actions WHERE purpose = 'welcome'")
    assert '"remote_id":"a2"' in str(payload[0][0])
    found = await notes(harness)
    assert found["u1"] == UNCHECKED
    assert str(found["a2"]).startswith("reposted: ")


async def test_in_one_batch_the_welcome_skips_to_the_checked_post(harness: Harness) -> None:
    await harness.feed(
        [
            PostReceived(post=post("u1", minutes=6, checked=False)),
            PostReceived(post=post("a2", text="A2 walking helps #MHChat", minutes=8)),
        ]
    )
    payload = await harness.rows("SELECT payload FROM actions WHERE purpose = 'welcome'")
    assert len(payload) == 1
    assert '"remote_id":"a2"' in str(payload[0][0])
    assert "repost:bluesky:u1" not in await keys(harness)


async def test_an_unchecked_bot_is_never_welcomed_even_when_it_is_checked_later(
    harness: Harness,
) -> None:
    await harness.feed([PostReceived(post=post("u1", author="helperbot", checked=False))])
    bot = replace(post("b2", author="helperbot", minutes=9), is_bot=True)
    await harness.feed([PostReceived(post=bot)])
    assert await keys(harness) == set()
    found = await notes(harness)
    assert found["u1"] == UNCHECKED
    assert found["b2"] == "not amplified: the platform labels the author as automated"


async def test_an_unchecked_crisis_post_is_still_flagged_and_signposted(
    harness: Harness,
) -> None:
    crisis = post("c1", text="I want to die tonight #MHChat", checked=False)
    await harness.feed([PostReceived(post=crisis)])
    async with harness.db.read() as tx:
        queue = await views.safety_queue(tx, "default", START + timedelta(hours=1))
    assert [f.remote_id for f in queue] == ["c1"]
    assert await keys(harness) == {"signpost:bluesky:c1"}
    # The triage reason comes first: it is the more important thing to know about the post.
    assert str((await notes(harness))["c1"]).startswith("not amplified: ")
    assert (await notes(harness))["c1"] != UNCHECKED


async def test_a_reason_that_applies_before_it_is_the_one_noted(harness: Harness) -> None:
    ask = post("r1", text="@host please don't repost me #MHChat", minutes=1, parent=None)
    await harness.feed([PostReceived(post=replace(ask, mentions_host=True))])
    await harness.feed([PostReceived(post=post("u2", minutes=7, checked=False))])
    assert (await notes(harness))["u2"] == "not amplified: the author asked not to be reposted"


def test_the_event_codec_carries_the_flag_and_reads_old_messages_as_checked() -> None:
    unchecked = PostReceived(post=post("u1", checked=False))
    assert decode_event(encode_event(unchecked)) == unchecked
    old = orjson.loads(encode_event(PostReceived(post=post("p1"))))
    del old["post"]["author_checked"]
    decoded = decode_event(orjson.dumps(old))
    assert isinstance(decoded, PostReceived)
    assert decoded.post.author_checked


async def test_the_second_round_of_reposts_leaves_an_unchecked_post_out(
    harness: Harness,
) -> None:
    await harness.feed(
        [
            PostReceived(post=post("u1", author="ann", checked=False)),
            PostReceived(post=post("k1", author="kim", minutes=7)),
            PostReceived(post=post("k2", author="kim", text="A2 and more #MHChat", minutes=8)),
        ]
    )
    assert "repost:bluesky:u1" not in await keys(harness)
    questions, problems = parse_questions(
        {"default": {"questions": [{"n": 1, "offset_minutes": 5, "text": "q"}]}}
    )
    assert problems == []
    harness.clock.set(START + timedelta(minutes=61))
    scheduler = Scheduler(
        db=harness.db,
        clock=harness.clock,
        settings=harness.handler.settings,
        modes={},
        platforms=["bluesky"],
        questions=questions,
    )
    report = await scheduler.tick()
    assert report.filled == 1  # kim's second post: the round ran, and passed ann's by
    reposts = {k for k in await keys(harness) if k.startswith("repost:")}
    assert reposts == {"repost:bluesky:k1", "repost:bluesky:k2"}
