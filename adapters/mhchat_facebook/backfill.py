"""Catch-up by polling the page feed: what webhooks missed (a lapsed subscription, downtime).

Facebook has no hashtag search; the chat lives in the page's posts and their comments, so the
poller walks ``/{page-id}/feed`` newest first with the comments of each post, keeps what was
created since the given time, and leaves deduplication to the store.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from mhchat.events import Event, PlatformName, PostReceived
from mhchat_facebook.graph import GraphClient, object_path
from mhchat_facebook.mapping import Parsed, graph_node_post, parse_time

COMMENT_FIELDS = "id,message,created_time,from{id,name},parent{id},permalink_url"
FEED_FIELDS = (
    "id,message,created_time,updated_time,from{id,name},permalink_url,is_published,"
    f"comments.filter(stream).limit(100){{{COMMENT_FIELDS}}}"
)
MAX_FEED_PAGES = 20
MAX_COMMENT_PAGES = 50
_SECRET_PARAMS = frozenset({"access_token", "appsecret_proof"})


def next_params(paging: object) -> dict[str, str] | None:
    """Query parameters of ``paging.next`` without the token Graph puts into such URLs."""
    if not isinstance(paging, dict) or not isinstance(paging.get("next"), str):
        return None
    query = urlsplit(paging["next"]).query
    return {k: v for k, v in parse_qsl(query, keep_blank_values=True) if k not in _SECRET_PARAMS}


def _after_cursor(paging: object) -> str | None:
    if not isinstance(paging, dict) or "next" not in paging:
        return None
    cursors = paging.get("cursors")
    after = cursors.get("after") if isinstance(cursors, dict) else None
    return after if isinstance(after, str) and after else None


def _nodes(body: dict[str, Any]) -> list[dict[str, Any]]:
    data = body.get("data")
    return [n for n in data if isinstance(n, dict)] if isinstance(data, list) else []


class FeedPoller:
    def __init__(
        self,
        *,
        graph: GraphClient,
        platform: PlatformName,
        page_id: str,
        post_lookback: timedelta,
    ) -> None:
        self._graph = graph
        self._platform = platform
        self._page_id = page_id
        self._lookback = post_lookback

    async def collect(self, since: datetime, parsed: Parsed) -> list[Event]:
        """Posts and comments created at or after ``since`` (comments on posts up to
        ``post_lookback`` older than that), as ``PostReceived`` events."""
        events: list[Event] = []
        floor = since - self._lookback
        params: dict[str, str] | None = {"fields": FEED_FIELDS, "limit": "25"}
        pages = 0
        while params is not None and pages < MAX_FEED_PAGES:
            pages += 1
            body = await self._graph.get(object_path(self._page_id, "feed"), params)
            reached_floor = False
            for node in _nodes(body):
                created = parse_time(node.get("created_time"))
                if created is not None and created < floor:
                    reached_floor = True
                    continue
                await self._take_post(node, since, events, parsed)
            params = None if reached_floor else next_params(body.get("paging"))
        return events

    async def _take_post(
        self, node: dict[str, Any], since: datetime, events: list[Event], parsed: Parsed
    ) -> None:
        post = graph_node_post(
            node, platform=self._platform, page_id=self._page_id, post_id=None, parsed=parsed
        )
        if post is None:
            return
        if post.created_at >= since:
            events.append(PostReceived(post=post))
        comments = node.get("comments")
        block: dict[str, Any] = comments if isinstance(comments, dict) else {}
        pages = 0
        while True:
            for comment in _nodes(block):
                reply = graph_node_post(
                    comment,
                    platform=self._platform,
                    page_id=self._page_id,
                    post_id=post.remote_id,
                    parsed=parsed,
                )
                if reply is not None and reply.created_at >= since:
                    events.append(PostReceived(post=reply))
            after = _after_cursor(block.get("paging"))
            pages += 1
            if after is None or pages >= MAX_COMMENT_PAGES:
                return
            block = await self._graph.get(
                object_path(post.remote_id, "comments"),
                {"filter": "stream", "limit": "100", "fields": COMMENT_FIELDS, "after": after},
            )
