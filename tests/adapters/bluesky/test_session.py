"""Sessions: reused across restarts, refreshed on expiry, AuthExpired as health; bot labels."""

from __future__ import annotations

import asyncio
import json

import pytest
from tests.adapters.bluesky.conftest import Runner, World
from tests.adapters.bluesky.test_actions import publish

from mhchat.emulators.bluesky import PROFILE
from mhchat.errors import AuthExpired
from mhchat.testing import MemoryState, RecordingSink

CREATE = "com.atproto.server.createSession"
REFRESH = "com.atproto.server.refreshSession"


class TestSessionReuse:
    async def test_session_string_survives_restarts(self, world: World, running: Runner) -> None:
        state = MemoryState()
        for _ in range(3):
            async with running(RecordingSink(state)) as adapter:
                assert adapter.client.did == world.host
        assert world.emulator.calls(CREATE) == 1
        saved = json.loads(state.values["session"])
        assert saved["handle"] == "mhchathost.test"
        assert saved["service"] == world.emulator.base_url

    async def test_expired_access_token_is_refreshed(self, world: World, running: Runner) -> None:
        state = MemoryState()
        async with running(RecordingSink(state)) as adapter:
            before = state.values["session"]
            world.emulator.expire_access_tokens()
            assert adapter.health().status.value != "auth_expired"
            await adapter.perform(publish("Q1 after expiry #MHChat"))
            assert state.values["session"] != before
        assert world.emulator.calls(REFRESH) == 1
        assert world.emulator.calls(CREATE) == 1

    async def test_concurrent_calls_refresh_once(self, world: World, running: Runner) -> None:
        async with running() as adapter:
            world.emulator.expire_access_tokens()
            sent = await asyncio.gather(
                *(adapter.perform(publish(f"Q{i} together #MHChat")) for i in range(4))
            )
        assert len(sent) == 4
        assert world.emulator.calls(REFRESH) == 1

    async def test_revoked_session_logs_in_again(self, world: World, running: Runner) -> None:
        async with running() as adapter:
            world.emulator.revoke_sessions(world.host)
            await adapter.perform(publish("Q1 after revocation #MHChat"))
        assert world.emulator.calls(CREATE) == 2

    async def test_refused_password_is_auth_expired_and_not_retried(
        self, world: World, running: Runner
    ) -> None:
        async with running(password="wrong") as adapter:
            health = adapter.health()
            with pytest.raises(AuthExpired):
                await adapter.perform(publish("Q1 #MHChat"))
            with pytest.raises(AuthExpired):
                await adapter.perform(publish("Q1 #MHChat"))
        assert health.status.value == "auth_expired"
        assert "AuthenticationRequired" in health.detail
        assert world.emulator.calls(CREATE) == 1

    async def test_refused_sign_in_shows_as_rate_limited(
        self, world: World, running: Runner
    ) -> None:
        """A 429 on createSession at start is reported by health, not hidden behind OK."""
        world.emulator.rate_limit_next(CREATE, reset_in=300)
        async with running() as adapter:
            health = adapter.health()
        assert health.status.value == "rate_limited"
        assert "sign-in paused" in health.detail

    async def test_session_for_another_server_is_not_imported(
        self, world: World, running: Runner
    ) -> None:
        state = MemoryState()
        async with running(RecordingSink(state)):
            pass
        saved = json.loads(state.values["session"])
        saved["service"] = "https://elsewhere.example"
        state.values["session"] = json.dumps(saved)
        async with running(RecordingSink(state)):
            pass
        assert world.emulator.calls(CREATE) == 2


class TestAutomatedLabel:
    async def test_host_profile_is_self_labelled_once(self, world: World, running: Runner) -> None:
        state = MemoryState()
        for _ in range(2):
            async with running(RecordingSink(state)):
                pass
        (profile,) = world.emulator.records(world.host, PROFILE)
        assert [v["val"] for v in profile.value["labels"]["values"]] == ["bot"]
        assert world.emulator.calls("com.atproto.repo.putRecord") == 1

    async def test_label_keeps_the_rest_of_the_profile(
        self, world: World, running: Runner
    ) -> None:
        world.emulator.set_profile(world.host, {"displayName": "MHChat host", "description": "hi"})
        async with running():
            pass
        (profile,) = world.emulator.records(world.host, PROFILE)
        assert profile.value["displayName"] == "MHChat host"
        assert profile.value["description"] == "hi"
        assert [v["val"] for v in profile.value["labels"]["values"]] == ["bot"]

    async def test_posts_by_labelled_bots_are_marked(self, world: World, running: Runner) -> None:
        robot = world.emulator.create_account("robot.test", bot=True)
        sink = RecordingSink()
        async with running(sink, label_automated=False):
            human = world.emulator.post(world.alice, "A1 human #MHChat")
            bot = world.emulator.post(robot, "A1 beep #MHChat")
            await sink.wait_for(lambda _: {human, bot} <= set(sink.remote_ids()), 5)
        flags = {p.remote_id: p.is_bot for p in sink.posts()}
        assert flags == {human: False, bot: True}
