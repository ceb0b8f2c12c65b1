"""Actions as the page through the Graph emulator: writes, typed errors, token checks, budgets."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from mhchat.actions import Publish, Purpose, Reply, Repost, Unrepost
from mhchat.emulators.facebook import FacebookEmulator
from mhchat.errors import (
    AdapterError,
    AuthExpired,
    ConfigError,
    OutcomeUnknown,
    PermanentFailure,
    RateLimited,
    TransientFailure,
    Unsupported,
)
from mhchat.events import AdapterHealthChanged, HealthStatus, PostRef, RemoteId
from mhchat.testing import FakeClock, RecordingSink
from mhchat_facebook import create
from mhchat_facebook.graph import GraphError, parse_error, to_adapter_error, usage_budgets

from .conftest import ALICE, FACEBOOK, Rig, RigFactory, context, load, secrets_for, settings_for


def publish(text: str = "Q1 How are you today? #MHChat") -> Publish:
    return Publish(key="q1", platform=FACEBOOK, purpose=Purpose.QUESTION, text=text)


def reply(parent: str, text: str = "Welcome, be kind #MHChat") -> Reply:
    ref = PostRef(remote_id=RemoteId(parent))
    return Reply(
        key=f"welcome:{parent}",
        platform=FACEBOOK,
        purpose=Purpose.WELCOME,
        text=text,
        parent=ref,
        root=ref,
    )


class TestActions:
    async def test_publish_and_reply_as_the_page(self, rig: Rig) -> None:
        emu = rig.emulator
        sent = await rig.adapter.perform(publish())
        assert sent.remote_id.startswith(emu.page.id + "_")
        comment = await emu.comment(ALICE, "A1 better now", on_post=sent.remote_id)
        answered = await rig.adapter.perform(reply(comment))
        assert [(r.kind, r.target, r.remote_id) for r in emu.sent] == [
            ("publish", emu.page.id, sent.remote_id),
            ("comment", comment, answered.remote_id),
        ]
        assert emu.nodes[answered.remote_id].parent_id == comment

    async def test_our_writes_come_back_by_webhook_as_our_own(self, rig: Rig) -> None:
        sent = await rig.adapter.perform(publish())
        await rig.emulator.drain()
        (post,) = rig.sink.posts()
        assert post.remote_id == sent.remote_id
        assert post.is_own
        assert post.hashtags == ("mhchat",)

    async def test_the_token_never_travels_in_a_url(self, rig: Rig) -> None:
        sent = await rig.adapter.perform(publish())
        await rig.adapter.check_outcome(publish())
        await rig.adapter.backfill(600)
        await rig.adapter.perform(reply(sent.remote_id))
        assert rig.emulator.requests
        assert not any(rig.emulator.page_token in path for _, path in rig.emulator.requests)

    async def test_repost_and_unrepost_are_unsupported(self, rig: Rig) -> None:
        target = PostRef(remote_id=RemoteId("1_2"))
        for action in (
            Repost(key="r", platform=FACEBOOK, purpose=Purpose.REPOST, target=target),
            Unrepost(key="u", platform=FACEBOOK, purpose=Purpose.UNDO_REPOST, target=target),
        ):
            with pytest.raises(Unsupported):
                await rig.adapter.perform(action)
        assert rig.emulator.sent == []

    async def test_an_id_that_is_not_an_id_is_refused_before_sending(self, rig: Rig) -> None:
        with pytest.raises(PermanentFailure):
            await rig.adapter.perform(reply("1_2/../../me/feed"))
        assert rig.emulator.requests == [] or all(
            "me/feed" not in path for _, path in rig.emulator.requests
        )


class TestErrors:
    @pytest.mark.parametrize("code", [4, 17, 32, 613, 80001])
    async def test_rate_limit_codes_are_rate_limited_until_the_header_says(
        self, rig: Rig, code: int
    ) -> None:
        rig.emulator.rate_limit_next(code, minutes=7)
        before = rig.adapter.ctx.clock.now()
        with pytest.raises(RateLimited) as caught:
            await rig.adapter.perform(publish())
        assert caught.value.retry_at is not None
        wait = caught.value.retry_at - before
        assert timedelta(minutes=6) < wait < timedelta(minutes=8)
        health = rig.adapter.health()
        assert health.status == HealthStatus.RATE_LIMITED
        budgets = dict(health.budgets)
        assert budgets["buc:pages"].remaining == 0
        # While the limit holds, nothing is sent at all.
        with pytest.raises(RateLimited):
            await rig.adapter.perform(publish())
        assert rig.emulator.sent == []

    async def test_expired_token_is_auth_expired_and_shows_in_health(self, rig: Rig) -> None:
        rig.emulator.expire_token()
        with pytest.raises(AuthExpired):
            await rig.adapter.perform(publish())
        health = rig.adapter.health()
        assert health.status == HealthStatus.AUTH_EXPIRED
        assert "190" in health.detail
        (report,) = [e for e in rig.sink.events if isinstance(e, AdapterHealthChanged)]
        assert report.health.status == HealthStatus.AUTH_EXPIRED

    @pytest.mark.parametrize(
        ("code", "status", "error"),
        [
            (10, 403, PermanentFailure),
            (200, 403, PermanentFailure),
            (100, 400, PermanentFailure),
            (1, 500, TransientFailure),
            (2, 503, TransientFailure),
            (368, 400, PermanentFailure),
        ],
    )
    async def test_graph_codes_map_to_typed_errors(
        self, rig: Rig, code: int, status: int, error: type[AdapterError]
    ) -> None:
        rig.emulator.fail_next(code, status=status)
        with pytest.raises(error):
            await rig.adapter.perform(publish())
        assert rig.emulator.sent == []

    async def test_gateway_error_without_graph_body_on_a_write_is_unknown(self, rig: Rig) -> None:
        rig.emulator.server_error_next(502, graph_body=False)
        with pytest.raises(OutcomeUnknown):
            await rig.adapter.perform(publish())

    async def test_timeout_after_the_effect_is_unknown_and_the_check_finds_it(
        self, rig: Rig
    ) -> None:
        action = publish("Q2 What helps you rest? #MHChat")
        rig.emulator.timeout_next(after_effect=True)
        with pytest.raises(OutcomeUnknown):
            await rig.adapter.perform(action)
        (record,) = rig.emulator.sent
        found = await rig.adapter.check_outcome(action)
        assert found is not None
        assert found.remote_id == record.remote_id

    async def test_timeout_before_the_effect_checks_as_not_sent(self, rig: Rig) -> None:
        question = await rig.adapter.perform(publish())
        action = reply(question.remote_id)
        rig.emulator.timeout_next(after_effect=False)
        with pytest.raises(OutcomeUnknown):
            await rig.adapter.perform(action)
        assert await rig.adapter.check_outcome(action) is None
        await rig.adapter.perform(action)
        found = await rig.adapter.check_outcome(action)
        assert found is not None
        assert found.remote_id == rig.emulator.sent[-1].remote_id

    async def test_reset_connection_on_a_write_is_unknown(self, rig: Rig) -> None:
        rig.emulator.reset_next()
        with pytest.raises(OutcomeUnknown):
            await rig.adapter.perform(publish())

    async def test_unreachable_graph_is_transient(self, make_rig: RigFactory) -> None:
        rig = await make_rig(settings={"graph_url": "http://127.0.0.1:9"})
        with pytest.raises(TransientFailure):
            await rig.adapter.perform(publish())

    def test_recorded_error_bodies_map_to_permanent_failures(self) -> None:
        now = settings_now()
        for name in ("error.json", "error_data.json"):
            error = parse_error(400, load(name))
            assert error.code == 100
            assert isinstance(to_adapter_error(error, {}, write=False, now=now), PermanentFailure)

    def test_recorded_usage_headers_become_budgets(self) -> None:
        headers = load("rate-limit-usage-headers.json")
        budgets = usage_budgets(headers, settings_now())
        assert budgets["app"].remaining == 9  # call_count 91 %
        assert budgets["buc:pages"].remaining == 99
        assert budgets["buc:pages"].resets_at is None

    def test_unknown_5xx_on_a_read_is_transient(self) -> None:
        error = GraphError(status=502, code=None, subcode=None, message="", fbtrace_id=None)
        assert isinstance(
            to_adapter_error(error, {}, write=False, now=settings_now()), TransientFailure
        )


def settings_now() -> datetime:
    return FakeClock().now()


class TestToken:
    async def test_page_token_is_healthy(self, rig: Rig) -> None:
        health = await rig.adapter.check_token()
        assert health.status == HealthStatus.OK

    async def test_user_token_is_detected_and_writes_are_refused(
        self, make_rig: RigFactory, emulator: FacebookEmulator
    ) -> None:
        rig = await make_rig(secrets=secrets_for(emulator, PAGE_ACCESS_TOKEN=emulator.user_token))
        assert rig.adapter.health().status == HealthStatus.AUTH_EXPIRED  # found at start
        health = await rig.adapter.check_token()
        assert health.status == HealthStatus.AUTH_EXPIRED
        assert "not a Page access token" in health.detail
        assert rig.emulator.user.id in health.detail
        with pytest.raises(AuthExpired, match="Page access token"):
            await rig.adapter.perform(publish())
        # Nothing but /me was asked: no write went out under a person's name.
        assert {(m, p.split("?")[0]) for m, p in emulator.requests} == {("GET", "/v26.0/me")}
        assert emulator.sent == []


class TestConfig:
    async def test_missing_settings_and_secrets_are_listed(self, rig: Rig) -> None:
        settings = {"graph_version": "2.8", "quiet_second": 5, "ack_timeout": -1}
        ctx = context(rig.adapter.ctx.http, RecordingSink(), settings, {})
        with pytest.raises(ConfigError) as caught:
            create(ctx)
        problems = " ".join(caught.value.problems)
        assert "page_id" in problems
        assert "MHCHAT_FACEBOOK_APP_SECRET" in problems
        assert "MHCHAT_FACEBOOK_PAGE_ACCESS_TOKEN" in problems
        assert "MHCHAT_FACEBOOK_VERIFY_TOKEN" in problems
        assert "facebook.quiet_second is not a setting" in problems
        assert "facebook.ack_timeout must be a positive number" in problems
        assert "graph_version v2.8 has expired" in problems

    async def test_version_is_pinned_and_configurable(self, make_rig: RigFactory) -> None:
        rig = await make_rig(settings={"graph_version": "v27.0"})
        await rig.adapter.perform(publish())
        assert all(path.startswith("/v27.0/") for _, path in rig.emulator.requests)
        default = create(
            context(
                rig.adapter.ctx.http,
                RecordingSink(),
                {k: v for k, v in settings_for(rig.emulator).items() if k != "graph_version"},
                secrets_for(rig.emulator),
            )
        )
        assert default.config.graph_version == "v26.0"


class TestFetch:
    async def test_fetch_posts_and_comments_for_context(self, rig: Rig) -> None:
        emu = rig.emulator
        question = await emu.page_post("Q1 How are you? #MHChat")
        comment = await emu.comment(ALICE, "A1 okay #MHChat", on_post=question)
        reply = await emu.comment(ALICE, "thanks", on_post=question, parent=comment)
        post = await rig.adapter.fetch(question)
        assert post is not None
        assert post.is_own
        assert post.reply_parent is None
        fetched = await rig.adapter.fetch(reply)
        assert fetched is not None
        assert fetched.text == "thanks"
        assert fetched.author.author_id == ALICE.id
        assert fetched.reply_parent == PostRef(remote_id=RemoteId(comment))
        assert fetched.reply_root == PostRef(remote_id=RemoteId(question))
        top = await rig.adapter.fetch(comment)
        assert top is not None
        assert top.reply_parent == PostRef(remote_id=RemoteId(question))
        await emu.remove(reply)
        assert await rig.adapter.fetch(reply) is None
        rig.emulator.fail_next(10, status=403, methods=("GET",))
        with pytest.raises(PermanentFailure):
            await rig.adapter.fetch(comment)
