"""A first post flows through ingest into the facilitation decisions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from mhchat.events import PlatformName, PostReceived
from mhchat.testing import make_post

from .conftest import START, Harness


async def test_first_post_is_reposted_and_welcomed(harness: Harness) -> None:
    post = make_post(
        "p1",
        author="ann",
        text="A1 feeling ok tonight #MHChat",
        created_at=START + timedelta(minutes=6),
        platform=PlatformName("bluesky"),
    )
    await harness.feed([PostReceived(post=post)])
    rows = await harness.rows("SELECT key, state, reason FROM actions ORDER BY id")
    keys = [r[0] for r in rows]
    assert keys == ["repost:bluesky:p1", "welcome:bluesky:id-ann:2026-11-25"]


async def test_no_repost_is_decided_where_the_platform_has_none(harness: Harness) -> None:
    """A platform whose adapter cannot repost gets the welcome but no repost decision."""
    harness.handler.cannot_repost = frozenset({"facebook"})
    post = make_post(
        "c1",
        author="fay",
        text="A1 a comment on the page #MHChat",
        created_at=START + timedelta(minutes=6),
        platform=PlatformName("facebook"),
    )
    await harness.feed([PostReceived(post=post)], platform="facebook")
    rows = await harness.rows("SELECT key FROM actions ORDER BY id")
    assert [r[0] for r in rows] == ["welcome:facebook:id-fay:2026-11-25"]


async def test_a_post_dated_at_the_end_of_the_calendar_does_not_stop_triage(
    harness: Harness,
) -> None:
    """A claimed time of year 9999 (or year 1) leaves no room for a schedule's date arithmetic:
    such a post belongs to no session, and the crisis post beside it is still triaged."""
    crisis = make_post(
        "p1",
        author="ann",
        text="A3 I am going to kill myself tonight #MHChat",
        created_at=START + timedelta(minutes=6),
    )
    far = [
        make_post(
            f"p{n}",
            author="bob",
            text="A1 hello #MHChat",
            created_at=datetime(year, month, day, 23, 59, tzinfo=UTC),
        )
        for n, (year, month, day) in enumerate([(9999, 12, 31), (1, 1, 1)], start=2)
    ]
    await harness.feed([PostReceived(post=p) for p in [crisis, *far]])
    rows = await harness.rows("SELECT remote_id, session_id, triage FROM posts ORDER BY id")
    assert rows == [("p1", "2026-11-25", "crisis"), ("p2", None, "ok"), ("p3", None, "ok")]
    flags = await harness.rows("SELECT remote_id, category FROM safety_flags")
    assert flags == [("p1", "crisis")]
