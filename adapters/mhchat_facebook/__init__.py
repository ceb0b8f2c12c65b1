"""Facebook page adapter for mhchat: page ``feed`` webhooks in, Graph API calls out.

Entry point ``facebook`` -> :func:`create`.
"""

from __future__ import annotations

from mhchat.adapters import AdapterContext
from mhchat_facebook.adapter import FacebookAdapter
from mhchat_facebook.config import FacebookConfig, load_config

__all__ = ["FacebookAdapter", "FacebookConfig", "create"]


def create(ctx: AdapterContext) -> FacebookAdapter:
    """Build the adapter from its settings and secrets; raises ``ConfigError`` when unusable."""
    return FacebookAdapter(ctx, load_config(ctx.settings, ctx.secrets))
