"""Recent search: paging with since_id and next_token, and the polling loop that uses it.

X's polling recipe (https://docs.x.com/x-api/posts/search/integrate/paginate): ask with
``since_id`` = newest id stored; while ``meta.next_token`` is present keep paging with the same
``since_id``; the next ``since_id`` is the *first* page's ``meta.newest_id``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from mhchat.events import Event
from mhchat_x.auth import Credential
from mhchat_x.client import XClient
from mhchat_x.cost import CostMeter
from mhchat_x.mapping import EXPANSIONS, TWEET_FIELDS, USER_FIELDS, Normaliser, newer_id
from mhchat_x.status import HealthBoard


class CostCapped(Exception):
    """The day's cost cap forbids further reads."""


@dataclass(frozen=True, slots=True)
class Page:
    events: list[Event]
    newest_id: str | None
    last: bool


def search_query(hashtag: str, host: str | None, include_own: bool) -> str:
    # Retweets have not been returned by keyword search since May 2026; the operator is kept so
    # older deployments behave the same.
    query = f"#{hashtag} -is:retweet"
    if host and not include_own:
        query += f" -from:{host}"
    return query


class Searcher:
    def __init__(
        self,
        *,
        client: XClient,
        cred: Credential,
        normaliser: Normaliser,
        cost: CostMeter,
        board: HealthBoard,
        max_results: int,
    ) -> None:
        self.client = client
        self.cred = cred
        self.normaliser = normaliser
        self.cost = cost
        self.board = board
        self.max_results = max_results

    async def pages(
        self, query: str, *, since_id: str | None = None, start_time: datetime | None = None
    ) -> AsyncIterator[Page]:
        """Every page newer than ``since_id`` (or ``start_time``), newest first.

        ``newest_id`` is set on the last page only: the cursor to save once all are stored.
        """
        params: dict[str, str] = {
            "query": query,
            "max_results": str(self.max_results),
            "tweet.fields": TWEET_FIELDS,
            "expansions": EXPANSIONS,
            "user.fields": USER_FIELDS,
        }
        if since_id is not None:
            params["since_id"] = since_id
        elif start_time is not None:
            params["start_time"] = start_time.strftime("%Y-%m-%dT%H:%M:%SZ")
        newest: str | None = None
        first = True
        while True:
            now = self.client.clock.now()
            if self.cost.refuse(now) is not None:
                raise CostCapped
            body: dict[str, Any] = await self.client.request(
                "GET", "/2/tweets/search/recent", endpoint="search", cred=self.cred, params=params
            )
            self.board.bump("search_requests")
            meta = body.get("meta") if isinstance(body.get("meta"), dict) else {}
            assert isinstance(meta, dict)
            if first:
                newest = str(meta["newest_id"]) if meta.get("newest_id") else None
                first = False
            parsed = self.normaliser.parse(body)
            self.board.bump("malformed_posts", parsed.skipped)
            self.cost.charge_reads(now, parsed.post_ids, parsed.user_ids)
            token = meta.get("next_token")
            last = not token
            yield Page(parsed.events, newest if last else None, last)
            if last:
                return
            params["next_token"] = str(token)

    async def collect(
        self, query: str, *, since_id: str | None = None, start_time: datetime | None = None
    ) -> tuple[list[Event], str | None]:
        """All pages at once (small gaps, tests)."""
        events: list[Event] = []
        newest: str | None = None
        async for page in self.pages(query, since_id=since_id, start_time=start_time):
            events.extend(page.events)
            newest = newer_id(newest, page.newest_id)
        return events, newest
