"""The TOML writer round-trips what mhchat writes: values, tables, arrays of tables."""

from __future__ import annotations

import tomllib

from mhchat.tomlwrite import to_toml


class TestTomlWriter:
    def test_round_trip(self) -> None:
        doc = {
            "chat": {"id": "default", "hashtag": "MHChat"},
            "web": {"port": 8080, "ratio": 0.5, "on": True},
            "reposts": {"budget": {"x": 20, "bluesky": 100}},
            "safety": {"regions": ["uk", "us"], "note": 'say "hi" \\ bye'},
            "chats": [{"id": "a", "schedule": {"zone": "UTC"}}, {"id": "b"}],
        }
        assert tomllib.loads(to_toml(doc)) == doc
