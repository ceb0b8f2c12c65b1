"""Posts, replies and reposts against the emulator, with X's rules and failures."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from mhchat.actions import Publish, Purpose, Reply, Repost, Sent, Skipped, Unrepost
from mhchat.emulators.x import XEmulator
from mhchat.errors import (
    AuthExpired,
    NotAllowed,
    OutcomeUnknown,
    PermanentFailure,
    RateLimited,
    TransientFailure,
)
from mhchat.events import HealthStatus, PostRef, RemoteId

from .conftest import Rig, X

OFF = {"ingest": "off"}


def publish(text: str, key: str = "q1") -> Publish:
    return Publish(key=key, platform=X, purpose=Purpose.QUESTION, text=text)


def reply(parent: str, *, mentions: bool, text: str = "Welcome! Be kind #MHChat") -> Reply:
    ref = PostRef(remote_id=RemoteId(parent))
    return Reply(
        key=f"welcome:{parent}",
        platform=X,
        purpose=Purpose.WELCOME,
        text=text,
        parent=ref,
        root=ref,
        parent_mentions_host=mentions,
    )


def repost(target: str) -> Repost:
    return Repost(
        key=f"repost:{target}",
        platform=X,
        purpose=Purpose.REPOST,
        target=PostRef(remote_id=RemoteId(target)),
    )


class TestPublishAndReply:
    async def test_publish_returns_the_new_id(
        self, rig: Callable[..., Rig], emulator: XEmulator
    ) -> None:
        adapter, _ = rig(settings=OFF).adapter()
        await adapter.start()
        try:
            result = await adapter.perform(publish("Q1 How are you today? #MHChat"))
        finally:
            await adapter.stop()
        assert isinstance(result, Sent)
        assert emulator.created_tweets == [
            {"text": "Q1 How are you today? #MHChat", "id": result.remote_id}
        ]
        assert emulator.tweets[result.remote_id].author_id == emulator.host_id

    async def test_reply_goes_to_the_parent_id(
        self, rig: Callable[..., Rig], emulator: XEmulator
    ) -> None:
        parent = emulator.post_tweet("alice", "A1 hi @MHChatHost #MHChat")
        adapter, _ = rig(settings=OFF).adapter()
        await adapter.start()
        try:
            result = await adapter.perform(reply(parent, mentions=True))
        finally:
            await adapter.stop()
        assert isinstance(result, Sent)
        assert emulator.created_tweets[-1]["reply"] == {"in_reply_to_tweet_id": parent}
        made = emulator.tweets[result.remote_id]
        assert made.ref("replied_to") == parent
        assert made.conversation_id == emulator.tweets[parent].conversation_id

    async def test_reply_to_an_edited_post_targets_the_newest_version(
        self, rig: Callable[..., Rig], emulator: XEmulator
    ) -> None:
        original = emulator.post_tweet("alice", "A1 hi @MHChatHost #MHChat")
        newest = emulator.edit_tweet(original, "A1 hello @MHChatHost #MHChat")
        ref = PostRef(remote_id=RemoteId(original), version=newest)
        action = Reply(
            key="w",
            platform=X,
            purpose=Purpose.WELCOME,
            text="Welcome!",
            parent=ref,
            root=ref,
            parent_mentions_host=True,
        )
        adapter, _ = rig(settings=OFF).adapter()
        await adapter.start()
        try:
            await adapter.perform(action)
        finally:
            await adapter.stop()
        assert emulator.created_tweets[-1]["reply"] == {"in_reply_to_tweet_id": newest}

    async def test_reply_without_mention_is_skipped_without_calling_x(
        self, rig: Callable[..., Rig], emulator: XEmulator
    ) -> None:
        parent = emulator.post_tweet("alice", "A1 hi #MHChat")
        adapter, _ = rig(settings=OFF).adapter()
        await adapter.start()
        try:
            result = await adapter.perform(reply(parent, mentions=False))
        finally:
            await adapter.stop()
        assert isinstance(result, Skipped)
        assert "@mention or quote the host" in result.reason
        assert emulator.calls("create_tweet") == 0
        assert dict(adapter.health().counters)["skipped_reply_rule"] == 1

    async def test_enterprise_may_reply_without_mention(self, rig: Callable[..., Rig]) -> None:
        emu = XEmulator(enterprise=True)
        await emu.start()
        try:
            parent = emu.post_tweet("alice", "A1 hi #MHChat")
            r = Rig(emu, rig().http, settings={**OFF, "tier": "enterprise"})
            adapter, _ = r.adapter()
            await adapter.start()
            try:
                result = await adapter.perform(reply(parent, mentions=False))
            finally:
                await adapter.stop()
        finally:
            await emu.stop()
        assert isinstance(result, Sent)

    async def test_x_refusing_a_reply_is_not_allowed(
        self, rig: Callable[..., Rig], emulator: XEmulator
    ) -> None:
        """If X says the host was not summoned after all, the 403 becomes NotAllowed."""
        parent = emulator.post_tweet("alice", "A1 hi #MHChat")
        adapter, _ = rig(settings=OFF).adapter()
        await adapter.start()
        try:
            with pytest.raises(NotAllowed, match="mentioned or otherwise engaged"):
                await adapter.perform(reply(parent, mentions=True))
        finally:
            await adapter.stop()
        assert emulator.created_tweets == []

    async def test_text_is_weighed_the_way_x_counts(
        self, rig: Callable[..., Rig], emulator: XEmulator
    ) -> None:
        adapter, _ = rig(settings=OFF).adapter()
        long_link = "https://example.org/" + "a" * 200
        fits = "x" * 250 + " " + long_link  # the link counts 23: 274 in all
        too_long = "心" * 141  # CJK counts 2: 282
        await adapter.start()
        try:
            assert isinstance(await adapter.perform(publish(fits, "k1")), Sent)
            with pytest.raises(PermanentFailure, match="282 characters"):
                await adapter.perform(publish(too_long, "k2"))
        finally:
            await adapter.stop()
        assert emulator.calls("create_tweet") == 1


class TestFailures:
    async def test_timeout_after_send_then_check_outcome_finds_the_post(
        self, rig: Callable[..., Rig], emulator: XEmulator
    ) -> None:
        text = "Q2 What helps? https://example.org/help #MHChat"
        r = rig(settings=OFF)
        adapter, _ = r.adapter()
        await adapter.start()
        try:
            emulator.hang_next("create_tweet", after_write=True)
            with pytest.raises(OutcomeUnknown):
                await adapter.perform(publish(text))
            found = await adapter.check_outcome(publish(text))
            missing = await adapter.check_outcome(publish("Q9 never sent #MHChat"))
        finally:
            await adapter.stop()
        assert isinstance(found, Sent)
        assert found.remote_id == emulator.created_tweets[0]["id"]
        assert missing is None

    async def test_timeout_before_the_write_is_found_missing(
        self, rig: Callable[..., Rig], emulator: XEmulator
    ) -> None:
        adapter, _ = rig(settings=OFF).adapter()
        await adapter.start()
        try:
            emulator.hang_next("create_tweet", after_write=False)
            with pytest.raises(OutcomeUnknown):
                await adapter.perform(publish("Q3 #MHChat"))
            assert await adapter.check_outcome(publish("Q3 #MHChat")) is None
            emulator.reset_connection_next("create_tweet")
            with pytest.raises(OutcomeUnknown):
                await adapter.perform(publish("Q3 #MHChat"))
            assert await adapter.check_outcome(publish("Q3 #MHChat")) is None
            # Nothing landed, so a retry is safe and goes through once.
            assert isinstance(await adapter.perform(publish("Q3 #MHChat")), Sent)
        finally:
            await adapter.stop()
        assert len(emulator.created_tweets) == 1

    async def test_no_duplicate_retweet_after_a_restart(
        self, rig: Callable[..., Rig], emulator: XEmulator
    ) -> None:
        target = emulator.post_tweet("alice", "A1 good answer #MHChat")
        r = rig(settings=OFF)
        first, _ = r.adapter()
        await first.start()
        try:
            emulator.hang_next("retweet", after_write=True)
            with pytest.raises(OutcomeUnknown):
                await first.perform(repost(target))
        finally:
            await first.stop()
        # A new process with the same state asks X before any retry.
        second, _ = r.adapter()
        await second.start()
        try:
            outcome = await second.check_outcome(repost(target))
        finally:
            await second.stop()
        assert isinstance(outcome, Sent)
        assert emulator.retweets == [(emulator.host_id, target)]
        assert emulator.calls("retweet", "POST") == 1

    async def test_repost_and_undo(self, rig: Callable[..., Rig], emulator: XEmulator) -> None:
        target = emulator.post_tweet("alice", "A1 #MHChat")
        adapter, _ = rig(settings=OFF).adapter()
        undo = Unrepost(
            key="u",
            platform=X,
            purpose=Purpose.UNDO_REPOST,
            target=PostRef(remote_id=RemoteId(target)),
        )
        await adapter.start()
        try:
            done = await adapter.perform(repost(target))
            assert emulator.retweets == [(emulator.host_id, target)]
            assert await adapter.check_outcome(undo) is None
            await adapter.perform(undo)
            assert await adapter.check_outcome(undo) == Sent(remote_id="")
        finally:
            await adapter.stop()
        assert isinstance(done, Sent)
        assert done.remote_id
        assert emulator.retweets == []

    async def test_server_error_is_transient_and_429_carries_the_reset(
        self, rig: Callable[..., Rig], emulator: XEmulator
    ) -> None:
        adapter, _ = rig(settings=OFF).adapter()
        await adapter.start()
        try:
            emulator.fail_next("create_tweet", status=503)
            with pytest.raises(TransientFailure):
                await adapter.perform(publish("Q4 #MHChat"))
            emulator.rate_limit_next("create_tweet", reset_in=120)
            with pytest.raises(RateLimited) as caught:
                await adapter.perform(publish("Q4 #MHChat"))
            assert caught.value.retry_at is not None
            calls = emulator.calls("create_tweet")
            # Known exhausted: refused locally until the reset, without calling X.
            with pytest.raises(RateLimited):
                await adapter.perform(publish("Q4 #MHChat"))
            assert emulator.calls("create_tweet") == calls
        finally:
            await adapter.stop()

    async def test_shared_three_hour_write_budget(
        self, rig: Callable[..., Rig], emulator: XEmulator
    ) -> None:
        target = emulator.post_tweet("alice", "A1 #MHChat")
        adapter, _ = rig(settings={**OFF, "writes_per_3h": 2}).adapter()
        await adapter.start()
        try:
            await adapter.perform(publish("Q1 #MHChat"))
            await adapter.perform(repost(target))
            with pytest.raises(RateLimited, match="3 hours"):
                await adapter.perform(publish("Q2 #MHChat"))
        finally:
            await adapter.stop()
        budgets = dict(adapter.health().budgets)
        assert budgets["writes_3h"].remaining == 0
        assert budgets["create_tweet"].limit == 100
        assert budgets["create_tweet:user_24h"].remaining is not None

    async def test_revoked_user_token_is_auth_expired_once(
        self, rig: Callable[..., Rig], emulator: XEmulator
    ) -> None:
        adapter, _ = rig(settings=OFF).adapter()
        await adapter.start()
        try:
            emulator.revoke_oauth1()
            with pytest.raises(AuthExpired):
                await adapter.perform(publish("Q1 #MHChat"))
            calls = emulator.calls("create_tweet")
            with pytest.raises(AuthExpired):
                await adapter.perform(publish("Q1 #MHChat"))
            assert emulator.calls("create_tweet") == calls  # stops trying
            health = adapter.health()
            assert health.status is HealthStatus.AUTH_EXPIRED
            assert "authorise the app again" in health.detail
        finally:
            await adapter.stop()


class TestOAuth2:
    async def test_expired_access_token_is_refreshed_and_rotated(
        self, rig: Callable[..., Rig], emulator: XEmulator
    ) -> None:
        r = rig(settings=OFF, auth="oauth2")
        adapter, _ = r.adapter()
        await adapter.start()
        try:
            emulator.expire_user_tokens()
            result = await adapter.perform(publish("Q1 #MHChat"))
        finally:
            await adapter.stop()
        assert isinstance(result, Sent)
        saved = json.loads(r.state.values["oauth2_tokens"])
        _, first_refresh = emulator.host_oauth2
        assert saved["refresh_token"] != first_refresh
        # A restart uses the saved (rotated) refresh token, not the stale one from the env.
        emulator.expire_user_tokens()
        again, _ = r.adapter()
        await again.start()
        try:
            assert isinstance(await again.perform(publish("Q2 #MHChat")), Sent)
        finally:
            await again.stop()
        assert emulator.calls("token") == 2

    async def test_refused_refresh_is_auth_expired(
        self, rig: Callable[..., Rig], emulator: XEmulator
    ) -> None:
        adapter, _ = rig(settings=OFF, auth="oauth2").adapter()
        await adapter.start()
        try:
            emulator.expire_user_tokens()
            emulator.revoke_refresh_tokens()
            with pytest.raises(AuthExpired):
                await adapter.perform(publish("Q1 #MHChat"))
            assert adapter.health().status is HealthStatus.AUTH_EXPIRED
        finally:
            await adapter.stop()


class TestCost:
    async def test_cost_is_estimated_and_capped(
        self, rig: Callable[..., Rig], emulator: XEmulator
    ) -> None:
        adapter, _ = rig(settings={**OFF, "max_cost_usd": 0.04}).adapter()
        await adapter.start()
        try:
            assert isinstance(await adapter.perform(publish("Q1 #MHChat", "a")), Sent)
            assert isinstance(await adapter.perform(publish("Q2 #MHChat", "b")), Sent)
            third = await adapter.perform(publish("Q3 #MHChat", "c"))
        finally:
            await adapter.stop()
        assert isinstance(third, Skipped)
        assert "cost cap" in third.reason
        counters = dict(adapter.health().counters)
        assert counters["cost_microusd"] == 30_000  # two posts at $0.015
        assert counters["cost_cap_microusd"] == 40_000
        assert emulator.calls("create_tweet") == 2

    async def test_a_post_with_a_link_costs_more(
        self, rig: Callable[..., Rig], emulator: XEmulator
    ) -> None:
        adapter, _ = rig(settings=OFF).adapter()
        await adapter.start()
        try:
            await adapter.perform(publish("Help: https://example.org #MHChat"))
        finally:
            await adapter.stop()
        assert dict(adapter.health().counters)["cost_microusd"] == 200_000

    async def test_subscription_tiers_are_not_metered(
        self, rig: Callable[..., Rig], emulator: XEmulator
    ) -> None:
        adapter, _ = rig(settings={**OFF, "tier": "pro", "max_cost_usd": 0.0}).adapter()
        await adapter.start()
        try:
            assert isinstance(await adapter.perform(publish("Q1 #MHChat")), Sent)
        finally:
            await adapter.stop()
        assert dict(adapter.health().counters)["cost_microusd"] == 0
