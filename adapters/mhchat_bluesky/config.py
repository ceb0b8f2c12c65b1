"""Settings of the Bluesky adapter, read from its TOML table and its environment secrets."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mhchat.errors import ConfigError

SOURCES = ("jetstream", "firehose", "search")


@dataclass(frozen=True, slots=True, kw_only=True)
class BlueskyConfig:
    """Everything the adapter can be told. Defaults suit the public network."""

    handle: str
    app_password: str
    service_url: str = "https://bsky.social"
    """The PDS (or entryway) the account logs in to; XRPC calls go to ``<url>/xrpc``."""
    source: str = "jetstream"
    """Live source: ``jetstream``, ``firehose`` (com.atproto.sync.subscribeRepos) or ``search``."""
    jetstream_url: str = "wss://jetstream2.us-east.bsky.network/subscribe"
    firehose_url: str = "wss://bsky.network/xrpc"
    """Base of the firehose websocket, without the method name."""
    search_url: str | None = None
    """Where ``app.bsky.feed.searchPosts`` is called; default: through the PDS, authenticated."""
    cursor_overlap_seconds: float = 5.0
    checkpoint_interval_seconds: float = 30.0
    reconnect_initial_seconds: float = 1.0
    reconnect_max_seconds: float = 60.0
    idle_timeout_seconds: float = 90.0
    request_timeout_seconds: float = 15.0
    max_replay_seconds: float = 24 * 3600.0
    """An older saved cursor is not replayed; search catches up instead."""
    fallback_after_seconds: float = 60.0
    """Poll searchPosts while the live source has been down this long."""
    search_poll_seconds: float = 30.0
    search_max_pages: int = 20
    batch_linger_seconds: float = 0.05
    profile_timeout_seconds: float = 3.0
    langs: tuple[str, ...] = ("en",)
    label_automated: bool = True
    points_per_hour: int = 5000
    points_per_day: int = 35000
    points_reserve: int = 50
    """Points kept back so the adapter refuses before the PDS answers 429."""

    @property
    def search_via_pds(self) -> bool:
        return self.search_url is None or self.search_url.rstrip("/") == self.service_url.rstrip(
            "/"
        )

    @classmethod
    def from_settings(
        cls, settings: Mapping[str, Any], secrets: Mapping[str, str]
    ) -> BlueskyConfig:
        """Build and check the config; raise ``ConfigError`` listing every problem found."""
        problems: list[str] = []
        handle = str(settings.get("handle") or secrets.get("HANDLE") or "").lstrip("@")
        password = secrets.get("APP_PASSWORD") or ""
        if not handle:
            problems.append(
                "Set handle in [adapters.bluesky] (or MHCHAT_BLUESKY_HANDLE) to the host account."
            )
        if not password:
            problems.append(
                "Set MHCHAT_BLUESKY_APP_PASSWORD to an app password of the host account "
                "(Settings > Privacy and security > App passwords)."
            )
        values: dict[str, Any] = {}
        for name in cls.__dataclass_fields__:
            if name in ("handle", "app_password") or name not in settings:
                continue
            values[name] = settings[name]
        if "langs" in values:
            values["langs"] = tuple(str(x) for x in values["langs"])
        problems += _check_values(values)
        unknown = set(settings) - set(cls.__dataclass_fields__) - {"enabled"}
        if unknown:
            problems.append(
                f"Unknown settings in [adapters.bluesky]: {', '.join(sorted(unknown))}."
            )
        if problems:
            raise ConfigError(problems)
        return cls(handle=handle, app_password=password, **values)


def _check_values(values: Mapping[str, Any]) -> list[str]:
    problems: list[str] = []
    source = values.get("source", "jetstream")
    if source not in SOURCES:
        problems.append(
            f"[adapters.bluesky] source must be one of {', '.join(SOURCES)}, not {source!r}."
        )
    for name, value in values.items():
        if name.endswith("_seconds") and (
            not isinstance(value, int | float) or isinstance(value, bool) or value < 0
        ):
            problems.append(f"[adapters.bluesky] {name} must be a number of seconds, 0 or more.")
    for name in ("service_url", "search_url"):
        url = values.get(name)
        if url is not None and not str(url).startswith(("http://", "https://")):
            problems.append(f"[adapters.bluesky] {name} must start with http:// or https://.")
    for name in ("jetstream_url", "firehose_url"):
        url = values.get(name)
        if url is not None and not str(url).startswith(("ws://", "wss://")):
            problems.append(f"[adapters.bluesky] {name} must start with ws:// or wss://.")
    return problems
