"""The X (Twitter) adapter for mhchat, over X API v2.

Entry point ``x`` -> ``create``. Ingest by filtered stream or recent search, posts, replies,
reposts and their undo, deletion compliance, rate budgets and pay-per-use cost estimates.
"""

from __future__ import annotations

from mhchat.adapters import AdapterContext
from mhchat_x.adapter import XAdapter


def create(ctx: AdapterContext) -> XAdapter:
    """Build the adapter; raises ``ConfigError`` for settings a host must fix."""
    return XAdapter(ctx)


__all__ = ["XAdapter", "create"]
