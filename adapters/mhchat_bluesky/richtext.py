"""Post text for Bluesky: the length rules and rich-text facets.

Facet offsets are UTF-8 byte offsets, not character offsets: "💙" is one character but four
bytes, so every offset after it moves. Detection of links, #tags and @mentions is the SDK's port
of the Bluesky app's own detector; mentions are resolved to DIDs (unknown handles are left as
plain text, as the app does).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import grapheme
from atproto_client import models  # type: ignore[import-untyped]
from atproto_client.utils import facet_detection  # type: ignore[import-untyped]

from mhchat.errors import PermanentFailure

MAX_GRAPHEMES = 300
MAX_BYTES = 3000


def check_length(text: str) -> None:
    """Refuse, before sending, a text the PDS would refuse."""
    count = grapheme.length(text)
    if count > MAX_GRAPHEMES:
        raise PermanentFailure(
            f"The post is {count} graphemes long; Bluesky allows at most {MAX_GRAPHEMES}. "
            "Shorten it by at least "
            f"{count - MAX_GRAPHEMES}."
        )
    size = len(text.encode("utf-8"))
    if size > MAX_BYTES:
        raise PermanentFailure(
            f"The post is {size} bytes long in UTF-8; Bluesky allows at most {MAX_BYTES}."
        )
    if not text.strip():
        raise PermanentFailure("The post is empty.")


async def build_facets(text: str, resolve: Callable[[str], Awaitable[str | None]]) -> list[Any]:
    """Facets for links, tags and mentions, sorted by position, as SDK models."""
    facets: list[Any] = list(facet_detection.detect_facets(text))
    for mention in facet_detection.detect_mentions(text):
        did = await resolve(mention.handle.lower())
        if did is None:
            continue
        facets.append(
            models.AppBskyRichtextFacet.Main(
                features=[models.AppBskyRichtextFacet.Mention(did=did)],
                index=models.AppBskyRichtextFacet.ByteSlice(
                    byte_start=mention.byte_start, byte_end=mention.byte_end
                ),
            )
        )
    return sorted(facets, key=lambda facet: int(facet.index.byte_start))
