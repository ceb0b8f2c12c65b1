"""The dashboard in a real headless Chromium, against the real service and the platform emulators:
sign in, watch posts from X, Bluesky and Facebook arrive live, approve a signposting reply and see
it on the platform, press the kill switch and see the senders stop, export a transcript.

Screenshots of the main views (desktop and phone) go to artifacts/screenshots/.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import orjson
import pytest
from playwright.async_api import expect

from mhchat.emulators.bluesky import POST, REPOST

from .conftest import PHONE, NewPage, World, shoot

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]


async def until(check: Callable[[], bool], within: float = 15.0) -> None:
    async with asyncio.timeout(within):
        while not check():  # noqa: ASYNC110 - polls emulator state other tasks change
            await asyncio.sleep(0.05)


async def ledger_state(world: World, key: str) -> str | None:
    async with world.runtime.require_db().read() as tx:
        row = await tx.fetchone("SELECT state FROM actions WHERE key = ?", (key,))
    return None if row is None else str(row[0])


async def test_sign_in(new_page: NewPage) -> None:
    page = await new_page(sign_in=False)
    await page.goto("/dashboard/")
    assert page.url.endswith("/dashboard/login")  # sent to sign in first
    await page.keyboard.press("Tab")
    await expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    await shoot(page, "login-desktop")
    await page.get_by_label("Password or access token").fill("wrong token")
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("alert")).to_contain_text("did not match")
    await page.get_by_label("Password or access token").fill(
        "browser-test-dashboard-token-0123456789"
    )
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url("**/dashboard/")
    await expect(page.get_by_role("heading", name="Safety queue")).to_be_visible()
    await expect(page.locator("#feed-status")).to_contain_text("Live")


async def test_posts_from_every_platform_appear_live(new_page: NewPage, world: World) -> None:
    page = await new_page()
    await expect(page.locator("#feed-status")).to_contain_text("Live")
    await world.chat_once()
    feed = page.locator("#feed-groups")
    for platform, badge in (("X", "X"), ("Bluesky", "Bluesky"), ("Facebook", "Facebook")):
        post = feed.locator("li.post").filter(has_text=f"hello from {platform} tonight")
        await expect(post).to_be_visible()
        await expect(post.locator(".badge", has_text=badge).first).to_be_visible()
        await expect(post.locator(".badge.first")).to_have_text("First time")
        # A Facebook page cannot share a comment: there the decision is the welcome alone.
        decided = "welcome" if platform == "Facebook" else "repost"
        await expect(post.locator(".post-decisions")).to_contain_text(decided)
    q1 = feed.locator("section.qgroup").filter(has=page.get_by_role("heading", name="Q1"))
    for platform in ("X", "Bluesky", "Facebook"):  # the host's welcome replies join them
        await expect(q1.locator("li.post", has_text=f"hello from {platform}")).to_have_count(1)
    await expect(page.locator("#health")).to_contain_text("Bluesky")
    await shoot(page, "live-desktop")


async def test_approve_signposting_reply_is_sent_to_the_platform(
    new_page: NewPage, world: World
) -> None:
    page = await new_page()
    await expect(page.locator("#feed-status")).to_contain_text("Live")
    river = world.bsky.create_account("river.test")
    uri = world.bsky.post(river, "I want to end my life tonight #MHChat")
    flag = page.locator("#queue li.flag").filter(has_text="end my life")
    await expect(flag).to_be_visible()
    await expect(flag).to_contain_text("crisis")
    reply = "@river.test we are here with you tonight. Samaritans: call 116 123 any time. #MHChat"
    await flag.get_by_label("Signposting reply").fill(reply)
    await shoot(page, "safety-queue-desktop")
    await flag.get_by_role("button", name="Approve and send reply").click()
    await expect(page.locator("#notice")).to_contain_text("Reply approved")

    def replied() -> bool:
        return any(
            r.value.get("reply", {}).get("parent", {}).get("uri") == uri
            and r.value["text"] == reply
            for r in world.bsky.records(world.bsky_host, POST)
        )

    await until(replied)
    await expect(page.locator("#queue li.flag").filter(has_text="end my life")).to_have_count(0)


async def test_kill_switch_stops_the_senders(new_page: NewPage, world: World) -> None:
    page = await new_page()
    await page.get_by_role("button", name="Stop all senders (kill switch)").click()
    await expect(page.locator("#kill-state")).to_contain_text("Senders are stopped")
    sky = world.bsky.create_account("sky.test")
    uri = world.bsky.post(sky, "A2 a calm evening here #MHChat")
    key = f"repost:bluesky:{uri}"

    async def decided() -> None:
        async with asyncio.timeout(15):
            while await ledger_state(world, key) != "pending":  # noqa: ASYNC110
                await asyncio.sleep(0.05)

    await decided()
    await asyncio.sleep(1.0)  # ten sender polls: nothing may go out

    def reposted() -> bool:
        return any(
            r.value["subject"]["uri"] == uri for r in world.bsky.records(world.bsky_host, REPOST)
        )

    assert not reposted()
    assert await ledger_state(world, key) == "pending"
    await shoot(page, "kill-switch-on-desktop")
    await page.get_by_role("button", name="Start senders again").click()
    await expect(page.locator("#kill-state")).to_contain_text("Senders are running")
    await until(reposted)
    async with world.runtime.require_db().read() as tx:
        audit = await tx.fetchall(
            "SELECT actor, detail FROM audit WHERE what = 'set kill_switch' ORDER BY id"
        )
    assert audit == [("dashboard:Sam", "on"), ("dashboard:Sam", "off")]


async def test_export_transcript_and_charts(new_page: NewPage, world: World) -> None:
    await world.chat_once()
    await world.stored("tonight #MHChat", 3)
    page = await new_page()
    await page.get_by_role("link", name="Transcripts").click()
    session = page.locator("li.session").first
    await expect(session).to_be_visible()
    async with page.expect_download() as download:
        await session.get_by_role("link", name="Markdown").click()
    path = await (await download.value).path()
    text = path.read_text(encoding="utf-8")
    assert "## Q1" in text
    for platform in ("X", "Bluesky", "Facebook"):
        assert f"hello from {platform} tonight" in text
    await shoot(page, "transcripts-desktop")

    await session.get_by_label("Format").select_option("json")
    await expect(session.get_by_label("Anonymise participants")).to_be_checked()
    async with page.expect_download() as download:
        await session.get_by_role("button", name="Download").click()
    anonymised = (await (await download.value).path()).read_text(encoding="utf-8")
    data = orjson.loads(anonymised)
    assert data["anonymised"] is True
    assert "xavier" not in anonymised
    assert "bea.test" not in anonymised
    assert "Participant 1" in anonymised

    await session.get_by_role("link", name="Activity charts").click()
    await expect(page.locator("#chart-posts svg")).to_be_visible()
    await expect(page.locator("#chart-people svg polyline")).to_have_count(3)
    await shoot(page, "session-charts-desktop")


async def test_phone_screenshots(new_page: NewPage, world: World) -> None:
    await world.chat_once()
    await world.stored("tonight #MHChat", 3)
    page = await new_page(PHONE)
    await expect(page.locator("#feed-status")).to_contain_text("Live")
    await expect(page.locator("#feed-groups li.post").first).to_be_visible()
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"]  # nothing wider than the screen
    await shoot(page, "live-phone")
    await page.get_by_role("link", name="Transcripts").click()
    await shoot(page, "transcripts-phone")
    await page.locator("li.session").first.get_by_role("link", name="Activity charts").click()
    await expect(page.locator("#chart-posts svg")).to_be_visible()
    await shoot(page, "session-charts-phone")
