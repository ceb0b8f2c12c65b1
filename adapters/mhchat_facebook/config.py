"""Settings of the Facebook page adapter, read from its TOML table and its secrets."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mhchat.errors import ConfigError

DEFAULT_GRAPH_VERSION = "v26.0"
DEFAULT_GRAPH_URL = "https://graph.facebook.com"
OLDEST_SERVED_MAJOR = 21
"""v21.0 is served until January 2027; every older version has expired."""
_VERSION = re.compile(r"^v\d{1,3}\.\d{1,2}$")
_PAGE_ID = re.compile(r"^\d{1,32}$")


@dataclass(frozen=True, slots=True, kw_only=True)
class FacebookConfig:
    """Everything the adapter needs. Secrets are kept out of ``repr``."""

    page_id: str
    app_secret: str = field(repr=False)
    verify_token: str = field(repr=False)
    page_access_token: str = field(repr=False)
    graph_version: str = DEFAULT_GRAPH_VERSION
    graph_url: str = DEFAULT_GRAPH_URL
    appsecret_proof: bool = True
    """Send ``appsecret_proof`` with Graph calls (Meta can require it for the app)."""
    request_timeout: float = 10.0
    connect_timeout: float = 5.0
    max_body_bytes: int = 1024 * 1024
    ack_timeout: float = 2.0
    """How long a webhook waits for its events to be stored before answering 503."""
    quiet_seconds: float = 300.0
    """Webhooks silent this long while the chat is live: poll the page feed instead."""
    live_window_seconds: float = 7200.0
    """The chat counts as live this long after the last activity (webhook or our own post)."""
    backfill_check_seconds: float = 30.0
    max_catch_up_seconds: float = 6 * 3600.0
    """Longest gap filled from the feed after a restart."""
    post_lookback_seconds: float = 24 * 3600.0
    """How far back to look for posts whose comments may have been missed."""
    public_url: str = ""
    """Public origin of this service, for the data-deletion status URL (else from the request)."""


def _number(settings: Mapping[str, Any], key: str, default: float, problems: list[str]) -> float:
    value = settings.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        problems.append(f"facebook.{key} must be a positive number of seconds, not {value!r}.")
        return default
    return float(value)


KNOWN_SETTINGS = frozenset(
    {
        "page_id",
        "graph_version",
        "graph_url",
        "appsecret_proof",
        "request_timeout",
        "connect_timeout",
        "max_body_bytes",
        "ack_timeout",
        "quiet_seconds",
        "live_window_seconds",
        "backfill_check_seconds",
        "max_catch_up_seconds",
        "post_lookback_seconds",
        "public_url",
    }
)


def load_config(settings: Mapping[str, Any], secrets: Mapping[str, str]) -> FacebookConfig:
    """Build the config, or raise ``ConfigError`` listing every problem at once."""
    problems: list[str] = [
        f"facebook.{key} is not a setting of the Facebook adapter (a typo?)."
        for key in sorted(set(settings) - KNOWN_SETTINGS)
    ]
    page_id = str(settings.get("page_id", "")).strip()
    if not _PAGE_ID.match(page_id):
        problems.append("facebook.page_id must be the numeric id of the Facebook page.")
    version = str(settings.get("graph_version", DEFAULT_GRAPH_VERSION)).strip()
    if not version.startswith("v"):
        version = "v" + version
    if not _VERSION.match(version):
        problems.append(f"facebook.graph_version must look like v26.0, not {version!r}.")
    elif int(version[1:].split(".")[0]) < OLDEST_SERVED_MAJOR:
        problems.append(
            f"facebook.graph_version {version} has expired: Meta would silently answer with the "
            f"oldest version it still serves. Pin v{OLDEST_SERVED_MAJOR}.0 or newer."
        )
    graph_url = str(settings.get("graph_url", DEFAULT_GRAPH_URL)).rstrip("/")
    if not graph_url.startswith(("https://", "http://127.0.0.1", "http://localhost")):
        problems.append("facebook.graph_url must be an https URL (or a local emulator).")
    names = {
        "APP_SECRET": "MHCHAT_FACEBOOK_APP_SECRET (the app secret that signs webhooks)",
        "VERIFY_TOKEN": "MHCHAT_FACEBOOK_VERIFY_TOKEN (the webhook verify token)",
        "PAGE_ACCESS_TOKEN": "MHCHAT_FACEBOOK_PAGE_ACCESS_TOKEN (a Page access token)",
    }
    for key, what in names.items():
        if not secrets.get(key):
            problems.append(f"The environment variable {what} is not set.")
    max_body = settings.get("max_body_bytes", 1024 * 1024)
    if isinstance(max_body, bool) or not isinstance(max_body, int) or max_body < 1024:
        problems.append("facebook.max_body_bytes must be a whole number of at least 1024.")
        max_body = 1024 * 1024
    proof = settings.get("appsecret_proof", True)
    if not isinstance(proof, bool):
        problems.append("facebook.appsecret_proof must be true or false.")
        proof = True
    public_url = str(settings.get("public_url", "")).rstrip("/")
    if public_url and not public_url.startswith(("https://", "http://")):
        problems.append("facebook.public_url must start with https://.")
    numbers = {
        key: _number(settings, key, default, problems)
        for key, default in (
            ("request_timeout", 10.0),
            ("connect_timeout", 5.0),
            ("ack_timeout", 2.0),
            ("quiet_seconds", 300.0),
            ("live_window_seconds", 7200.0),
            ("backfill_check_seconds", 30.0),
            ("max_catch_up_seconds", 6 * 3600.0),
            ("post_lookback_seconds", 24 * 3600.0),
        )
    }
    if problems:
        raise ConfigError(problems)
    return FacebookConfig(
        page_id=page_id,
        app_secret=secrets["APP_SECRET"],
        verify_token=secrets["VERIFY_TOKEN"],
        page_access_token=secrets["PAGE_ACCESS_TOKEN"],
        graph_version=version,
        graph_url=graph_url,
        appsecret_proof=proof,
        max_body_bytes=max_body,
        public_url=public_url,
        **numbers,
    )
