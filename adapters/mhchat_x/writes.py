"""Posts, replies, reposts and their undo; and checking whether an unanswered write landed.

- Text is measured the way X measures it (``twitter_text``: URLs count 23, CJK and emoji 2);
  over 280 is a ``PermanentFailure`` before any call.
- Self-serve tiers may reply only to a post that @mentioned or quoted the host (X, Feb 2026);
  otherwise the reply is ``Skipped`` with that reason and X is not called.
- X's shared budget of about 300 posts plus reposts per 3 hours is counted locally.
- ``check_outcome`` reads the host's own timeline (``GET /2/users/:id/tweets``, billed as owned
  reads): a post with the same text (and parent), or a repost of the target.
"""

from __future__ import annotations

import html
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import structlog
from twitter_text import extract_urls, parse_tweet

from mhchat.actions import Action, Publish, Reply, Repost, Sent, Skipped, Unrepost
from mhchat.clock import Clock
from mhchat.errors import (
    OutcomeUnknown,
    PermanentFailure,
    RateLimited,
    Unsupported,
)
from mhchat_x.auth import Credential
from mhchat_x.client import XClient
from mhchat_x.config import XSettings
from mhchat_x.cost import Charge, CostMeter
from mhchat_x.ratelimit import WriteWindow
from mhchat_x.status import HealthBoard

MAX_WEIGHT = 280
REPLY_RULE_REASON = (
    "X lets self-serve apps reply only to posts that @mention or quote the host account "
    "(rule of 23 Feb 2026); this post did not, so no reply was sent"
)


def weighted_length(text: str) -> int:
    return int(parse_tweet(text).weightedLength)


def check_text(text: str) -> None:
    if not text.strip():
        raise PermanentFailure("an X post cannot be empty")
    weight = weighted_length(text)
    if weight > MAX_WEIGHT:
        raise PermanentFailure(
            f"the text is {weight} characters as X counts them (links count 23, emoji and "
            f"CJK count 2); X allows {MAX_WEIGHT}"
        )


def target_id(ref_id: str, version: str | None) -> str:
    # An edited post is stored under its original id; X acts on the newest version's id.
    return version or ref_id


def _expand(tweet: dict[str, Any]) -> str:
    """A timeline post's text with t.co links replaced by what we sent, for comparison."""
    text = str(tweet.get("text", ""))
    entities = tweet.get("entities") if isinstance(tweet.get("entities"), dict) else {}
    assert isinstance(entities, dict)
    for url in entities.get("urls") or []:
        if isinstance(url, dict) and url.get("url") and url.get("expanded_url"):
            text = text.replace(str(url["url"]), str(url["expanded_url"]))
    return html.unescape(text).strip()


class Writer:
    def __init__(
        self,
        *,
        client: XClient,
        cred: Credential | None,
        settings: XSettings,
        clock: Clock,
        cost: CostMeter,
        window: WriteWindow,
        board: HealthBoard,
        log: structlog.typing.FilteringBoundLogger,
        host_id: Callable[[], Awaitable[str]],
        persist: Callable[[], Awaitable[None]],
    ) -> None:
        self.client = client
        self.cred = cred
        self.s = settings
        self.clock = clock
        self.cost = cost
        self.window = window
        self.board = board
        self.log = log
        self.host_id = host_id
        self.persist = persist

    def _user(self) -> Credential:
        if self.cred is None:
            raise Unsupported("the X adapter is read-only: no user credentials are configured")
        return self.cred

    def _gate(self, charge: Charge, *, counts_in_window: bool) -> Skipped | None:
        now = self.clock.now()
        capped = self.cost.refuse(now, charge)
        if capped is not None:
            self.board.bump("skipped_cost_cap")
            return Skipped(reason=capped.sentence())
        if counts_in_window:
            blocked = self.window.blocked_until(now)
            if blocked is not None:
                raise RateLimited(
                    f"the host account used its {self.window.limit} posts and reposts "
                    "for these 3 hours",
                    retry_at=blocked,
                )
        return None

    async def _write(
        self,
        method: str,
        path: str,
        endpoint: str,
        body: dict[str, Any] | None,
        charge: Charge,
        *,
        counts_in_window: bool,
    ) -> dict[str, Any]:
        cred = self._user()
        try:
            result = await self.client.request(
                method, path, endpoint=endpoint, cred=cred, body=body, write=True
            )
        except OutcomeUnknown:
            # It may have landed: count it against the budgets as if it had.
            self._account(charge, counts_in_window)
            await self.persist()
            raise
        self._account(charge, counts_in_window)
        self.board.bump("writes")
        await self.persist()
        return result

    def _account(self, charge: Charge, counts_in_window: bool) -> None:
        now = self.clock.now()
        self.cost.charge(now, charge)
        if counts_in_window:
            self.window.record(now)

    async def perform(self, action: Action) -> Sent | Skipped:
        self._user()
        if isinstance(action, Publish):
            return await self._publish(action.text, None, has_summons=False)
        if isinstance(action, Reply):
            return await self._reply(action)
        if isinstance(action, Repost):
            return await self._repost(action)
        if isinstance(action, Unrepost):
            return await self._unrepost(action)
        raise Unsupported(f"the X adapter cannot perform {type(action).__name__}")

    async def _reply(self, action: Reply) -> Sent | Skipped:
        if self.s.rules.reply_needs_summons and not action.parent_mentions_host:
            self.board.bump("skipped_reply_rule")
            return Skipped(reason=REPLY_RULE_REASON)
        parent = target_id(action.parent.remote_id, action.parent.version)
        return await self._publish(action.text, parent, has_summons=action.parent_mentions_host)

    async def _repost(self, action: Repost) -> Sent | Skipped:
        skipped = self._gate(Charge.INTERACTION_CREATE, counts_in_window=True)
        if skipped:
            return skipped
        me = await self.host_id()
        tweet = target_id(action.target.remote_id, action.target.version)
        result = await self._write(
            "POST",
            f"/2/users/{me}/retweets",
            "retweet",
            {"tweet_id": tweet},
            Charge.INTERACTION_CREATE,
            counts_in_window=True,
        )
        data = result.get("data") if isinstance(result.get("data"), dict) else {}
        assert isinstance(data, dict)
        if data.get("retweeted") is not True:
            raise PermanentFailure("X did not confirm the repost")
        # X's 2026 answer names the repost ("rest_id"); the 2022 one did not.
        return Sent(remote_id=str(data.get("rest_id") or ""))

    async def _unrepost(self, action: Unrepost) -> Sent | Skipped:
        skipped = self._gate(Charge.INTERACTION_DELETE, counts_in_window=False)
        if skipped:
            return skipped
        me = await self.host_id()
        tweet = target_id(action.target.remote_id, action.target.version)
        await self._write(
            "DELETE",
            f"/2/users/{me}/retweets/{tweet}",
            "unretweet",
            None,
            Charge.INTERACTION_DELETE,
            counts_in_window=False,
        )
        return Sent(remote_id="")

    async def _publish(
        self, text: str, parent: str | None, *, has_summons: bool
    ) -> Sent | Skipped:
        check_text(text)
        if extract_urls(text):
            charge = Charge.POST_CREATE_URL
        elif parent is not None and has_summons:
            charge = Charge.POST_CREATE_SUMMONED
        else:
            charge = Charge.POST_CREATE
        skipped = self._gate(charge, counts_in_window=True)
        if skipped:
            return skipped
        body: dict[str, Any] = {"text": text}
        if parent is not None:
            body["reply"] = {"in_reply_to_tweet_id": parent}
        result = await self._write(
            "POST", "/2/tweets", "create_tweet", body, charge, counts_in_window=True
        )
        data = result.get("data") if isinstance(result.get("data"), dict) else {}
        assert isinstance(data, dict)
        if not data.get("id"):
            raise OutcomeUnknown("X accepted the post but sent no id")
        return Sent(remote_id=str(data["id"]))

    async def check_outcome(self, action: Action) -> Sent | None:
        """Whether ``action`` is visible on the host's timeline; None when it is not."""
        cred = self._user()
        me = await self.host_id()
        now = self.clock.now()
        params = {
            "max_results": "100",
            "tweet.fields": "created_at,referenced_tweets,entities",
            "start_time": (now - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        body = await self.client.request(
            "GET", f"/2/users/{me}/tweets", endpoint="user_tweets", cred=cred, params=params
        )
        tweets = [t for t in body.get("data") or [] if isinstance(t, dict)]
        self.cost.charge(now, Charge.OWNED_READ, len(tweets))

        def refs(tweet: dict[str, Any]) -> dict[str, str]:
            return {
                str(r.get("type")): str(r.get("id"))
                for r in tweet.get("referenced_tweets") or []
                if isinstance(r, dict)
            }

        if isinstance(action, Publish | Reply):
            wanted = action.text.strip()
            parent = (
                target_id(action.parent.remote_id, action.parent.version)
                if isinstance(action, Reply)
                else None
            )
            for tweet in tweets:
                if _expand(tweet) != wanted:
                    continue
                if parent is not None and refs(tweet).get("replied_to") != parent:
                    continue
                if parent is None and "replied_to" in refs(tweet):
                    continue
                return Sent(remote_id=str(tweet.get("id")))
            return None
        tweet_id = target_id(action.target.remote_id, action.target.version)
        found = next((t for t in tweets if refs(t).get("retweeted") == tweet_id), None)
        if isinstance(action, Repost):
            return Sent(remote_id=str(found.get("id"))) if found else None
        return None if found else Sent(remote_id="")
