"""Settings: every problem reported at once, in words a host can act on."""

from __future__ import annotations

import pytest

from mhchat.errors import ConfigError
from mhchat_bluesky.config import BlueskyConfig


class TestConfig:
    def test_defaults_reach_the_public_network(self) -> None:
        config = BlueskyConfig.from_settings(
            {"handle": "@host.bsky.social"}, {"APP_PASSWORD": "x"}
        )
        assert config.handle == "host.bsky.social"
        assert config.service_url == "https://bsky.social"
        assert config.jetstream_url.startswith("wss://")
        assert config.search_via_pds

    def test_handle_may_come_from_the_environment(self) -> None:
        config = BlueskyConfig.from_settings(
            {"search_url": "https://search.example", "langs": ["cy"]},
            {"HANDLE": "host.test", "APP_PASSWORD": "x"},
        )
        assert config.handle == "host.test"
        assert config.langs == ("cy",)
        assert not config.search_via_pds

    def test_all_problems_are_listed(self) -> None:
        with pytest.raises(ConfigError) as caught:
            BlueskyConfig.from_settings(
                {
                    "source": "carrier-pigeon",
                    "service_url": "bsky.social",
                    "jetstream_url": "https://jetstream.example",
                    "reconnect_max_seconds": -1,
                    "colour": "blue",
                },
                {},
            )
        problems = caught.value.problems
        assert len(problems) == 7
        joined = " ".join(problems)
        for needle in (
            "handle",
            "MHCHAT_BLUESKY_APP_PASSWORD",
            "carrier-pigeon",
            "service_url",
            "jetstream_url",
            "reconnect_max_seconds",
            "colour",
        ):
            assert needle in joined
