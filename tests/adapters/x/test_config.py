"""Settings, tiers and what the host is told about them."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from mhchat.errors import ConfigError
from mhchat.events import HealthStatus

from .conftest import Rig


class TestSettings:
    def test_every_problem_is_reported_at_once(self, rig: Callable[..., Rig]) -> None:
        r = rig(settings={"tier": "gold", "stall_seconds": "soon", "colour": "blue"})
        with pytest.raises(ConfigError) as caught:
            r.adapter()
        text = " ".join(caught.value.problems)
        assert "tier must be one of free, basic, pro, pay_per_use, enterprise" in text
        assert "stall_seconds must be a number" in text
        assert "unknown settings colour" in text

    def test_the_stream_needs_a_tier_that_has_it(self, rig: Callable[..., Rig]) -> None:
        with pytest.raises(ConfigError, match="basic tier has no filtered stream"):
            rig(settings={"tier": "basic", "ingest": "stream"}).adapter()

    def test_writes_need_user_credentials_unless_read_only(self, rig: Callable[..., Rig]) -> None:
        emu = rig().emu
        only_bearer = {"BEARER_TOKEN": emu.app_bearer}
        with pytest.raises(ConfigError, match="need user credentials"):
            rig(secrets=only_bearer, settings={"host_username": "MHChatHost"}).adapter()
        adapter, _ = rig(
            secrets=only_bearer, settings={"host_username": "MHChatHost", "read_only": True}
        ).adapter()
        assert adapter.user_cred is None

    def test_secrets_never_appear_in_reprs(self, rig: Callable[..., Rig]) -> None:
        adapter, _ = rig().adapter()
        assert adapter.secrets.bearer_token
        assert adapter.secrets.bearer_token not in repr(adapter.secrets)


class TestTiers:
    async def test_free_tier_says_it_cannot_follow_the_chat(self, rig: Callable[..., Rig]) -> None:
        adapter, _ = rig(settings={"tier": "free"}).adapter()
        await adapter.start()
        try:
            health = adapter.health()
        finally:
            await adapter.stop()
        assert health.status is HealthStatus.DEGRADED
        assert "free tier cannot read #MHChat" in health.detail
        assert "17 posts a day" in health.detail

    async def test_basic_tier_polls_search_and_says_so(self, rig: Callable[..., Rig]) -> None:
        adapter, _ = rig(settings={"tier": "basic"}).adapter()
        assert adapter.mode.value == "search"
        await adapter.start()
        try:
            health = adapter.health()
        finally:
            await adapter.stop()
        assert "no filtered stream" in health.detail
        assert "only to posts that @mention or quote the host" in health.detail

    async def test_pay_per_use_without_bearer_falls_back_to_search(
        self, rig: Callable[..., Rig]
    ) -> None:
        emu = rig().emu
        secrets = emu.adapter_secrets("oauth1")
        del secrets["BEARER_TOKEN"]
        adapter, _ = rig(secrets=secrets).adapter()
        assert adapter.mode.value == "search"
        assert "no app bearer token" in adapter.health().detail
