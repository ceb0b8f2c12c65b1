"""Bluesky adapter for mhchat (AT Protocol, through the ``atproto`` SDK).

Entry point ``bluesky``: ``create(ctx)`` reads ``[adapters.bluesky]`` settings and the
``MHCHAT_BLUESKY_*`` secrets (``HANDLE``, ``APP_PASSWORD``) and returns the adapter.
"""

from __future__ import annotations

from mhchat.adapters import AdapterContext

from .adapter import BlueskyAdapter
from .config import BlueskyConfig

__all__ = ["BlueskyAdapter", "BlueskyConfig", "create"]


def create(ctx: AdapterContext) -> BlueskyAdapter:
    """Build the adapter; raises ``ConfigError`` listing every problem with the settings."""
    return BlueskyAdapter(ctx, BlueskyConfig.from_settings(ctx.settings, ctx.secrets))
