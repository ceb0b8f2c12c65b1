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
