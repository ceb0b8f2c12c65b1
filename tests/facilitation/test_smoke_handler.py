"""A first post flows through ingest into the facilitation decisions."""

from __future__ import annotations

from datetime import timedelta

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
