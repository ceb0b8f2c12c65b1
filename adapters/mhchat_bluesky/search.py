"""app.bsky.feed.searchPosts by tag: catch-up after downtime and fallback while the stream is down.

The search index can lag behind the network, so this is never the live source of choice; every
post it finds goes through the same intake as the stream (the store dedupes what both saw).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import datetime
from functools import partial

import orjson
from atproto_client import models  # type: ignore[import-untyped]

from mhchat.clock import Clock
from mhchat.events import PlatformName

from .client import BlueskyClient
from .config import BlueskyConfig
from .intake import Intake, Item
from .mapping import MalformedRecord, post_from_record, profile_from_view


def _iso(value: datetime) -> str:
    return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class SearchCatchup:
    def __init__(
        self,
        *,
        client: BlueskyClient,
        config: BlueskyConfig,
        intake: Intake,
        clock: Clock,
        platform: PlatformName,
        tag: str,
        host_did: Callable[[], str | None],
        counters: Counter[str],
    ) -> None:
        self._client = client
        self._config = config
        self._intake = intake
        self._clock = clock
        self._platform = platform
        self._tag = tag
        self._host_did = host_did
        self._counters = counters

    async def run_since(self, since: datetime) -> int:
        """Queue every tagged post created since ``since``; return how many were found."""
        found = 0
        cursor: str | None = None
        for _ in range(self._config.search_max_pages):
            params = models.AppBskyFeedSearchPosts.Params(
                q=f"#{self._tag}",
                tag=[self._tag],
                sort="latest",
                since=_iso(since),
                limit=100,
                cursor=cursor,
            )
            answer = await self._client.call(
                "searchPosts",
                partial(self._client.search.app.bsky.feed.search_posts, params),
                search=True,
            )
            for view in answer.posts:
                data = models.get_model_as_dict(view)
                try:
                    post = post_from_record(
                        platform=self._platform,
                        uri=str(data["uri"]),
                        cid=str(data["cid"]),
                        record=data["record"],
                        profile=profile_from_view(data["author"]),
                        host_did=self._host_did(),
                        fallback_time=self._clock.now(),
                        raw=orjson.dumps(data).decode(),
                    )
                except (MalformedRecord, KeyError):
                    self._counters["malformed_search_results"] += 1
                    continue
                await self._intake.put(Item(post=post))
                found += 1
            cursor = answer.cursor
            if not cursor or not answer.posts:
                break
        self._counters["search_posts"] += found
        return found
