"""The REST endpoints: recent search, tweet lookup and create, ``users/me``, a user's timeline,
retweet and undo."""

from __future__ import annotations

import base64
from datetime import datetime, timedelta
from typing import Any

from aiohttp import web
from twitter_text import parse_tweet

from mhchat.emulators.x.faults import XFaults
from mhchat.emulators.x.model import PROBLEMS, REPLY_RULE_DETAIL, Principal, XApiError


class XRoutes(XFaults):
    """Handlers for X's REST endpoints (the stream's are in :mod:`.stream`)."""

    async def _search(
        self, request: web.Request, who: Principal, body: dict[str, Any]
    ) -> web.StreamResponse:
        q = request.query
        query = q.get("query", "")
        self._check_query(query)
        max_results = int(q.get("max_results", "10"))
        if not 10 <= max_results <= 100:
            raise XApiError(
                400,
                "Invalid Request",
                "The `max_results` query parameter value is not between 10 and 100",
                "invalid-request",
            )
        if "since_id" in q and "start_time" in q:
            raise XApiError(
                400,
                "Invalid Request",
                "At most one of start_time, since_id may be provided.",
                "invalid-request",
            )
        since = int(q["since_id"]) if "since_id" in q else 0
        start = (
            datetime.fromisoformat(q["start_time"].replace("Z", "+00:00"))
            if "start_time" in q
            else None
        )
        until = self._decode_token(q["next_token"]) if "next_token" in q else None
        week_ago = self.clock.now() - timedelta(days=7)
        found = [
            t
            for t in self.tweets.values()
            if not t.deleted
            and not t.superseded
            and t.ref("retweeted") is None
            and int(t.id) > since
            and (until is None or int(t.id) < until)
            and t.created_at >= (start or week_ago)
            and self._matches(query, t)
        ]
        found.sort(key=lambda t: int(t.id), reverse=True)
        page = found[:max_results]
        if not page:
            return self._json(request, {"meta": {"result_count": 0}})
        out = self._envelope(
            page,
            self._fields(request, "tweet.fields"),
            self._fields(request, "expansions"),
            self._fields(request, "user.fields"),
        )
        meta: dict[str, Any] = {
            "newest_id": page[0].id,
            "oldest_id": page[-1].id,
            "result_count": len(page),
        }
        if len(found) > max_results:
            meta["next_token"] = (
                base64.urlsafe_b64encode(page[-1].id.encode()).decode().rstrip("=")
            )
        out["meta"] = meta
        return self._json(request, out)

    @staticmethod
    def _decode_token(token: str) -> int:
        try:
            return int(base64.urlsafe_b64decode(token + "==").decode())
        except ValueError as exc:
            raise XApiError(
                400,
                "Invalid Request",
                "The `next_token` query parameter value is invalid",
                "invalid-request",
            ) from exc

    async def _lookup(
        self, request: web.Request, who: Principal, body: dict[str, Any]
    ) -> web.StreamResponse:
        ids = [i for i in request.query.get("ids", "").split(",") if i]
        if not 1 <= len(ids) <= 100:
            raise XApiError(
                400,
                "Invalid Request",
                "The `ids` query parameter value must have between 1 and 100 items",
                "invalid-request",
            )
        present = [self.tweets[i] for i in ids if i in self.tweets and not self.tweets[i].deleted]
        out: dict[str, Any] = {}
        if present:
            out = self._envelope(
                present, self._fields(request, "tweet.fields"), self._fields(request, "expansions")
            )
        missing = [i for i in ids if i not in self.tweets or self.tweets[i].deleted]
        if missing:
            out["errors"] = [
                {
                    "value": i,
                    "detail": f"Could not find tweet with ids: [{i}].",
                    "title": "Not Found Error",
                    "resource_type": "tweet",
                    "parameter": "ids",
                    "resource_id": i,
                    "type": PROBLEMS + "resource-not-found",
                }
                for i in missing
            ]
        return self._json(request, out)

    async def _create(
        self, request: web.Request, who: Principal, body: dict[str, Any]
    ) -> web.StreamResponse:
        assert who.user_id is not None
        allowed = {
            "text",
            "reply",
            "quote_tweet_id",
            "reply_settings",
            "media",
            "poll",
            "nullcast",
            "made_with_ai",
        }
        if set(body) - allowed or not isinstance(body.get("text"), str):
            raise XApiError(
                400,
                "Invalid Request",
                "One or more parameters to your request was invalid.",
                "invalid-request",
            )
        text: str = body["text"]
        if parse_tweet(text).weightedLength > 280:
            raise XApiError(400, "Invalid Request", "Text is too long.", "invalid-request")
        reply_to = (body.get("reply") or {}).get("in_reply_to_tweet_id")
        quote = body.get("quote_tweet_id")
        if quote is not None and not self.enterprise:
            raise XApiError(403, "Forbidden", "Quote-posting requires an Enterprise plan.")
        if reply_to is not None:
            parent = self.tweets.get(str(reply_to))
            if parent is None or parent.deleted:
                raise XApiError(
                    403,
                    "Forbidden",
                    "You attempted to reply to a Tweet that is deleted or not visible to you.",
                )
            if not self.enterprise and not self._summoned(parent, who.user_id):
                raise XApiError(403, "Forbidden", REPLY_RULE_DETAIL)
        day_ago = self.clock.now() - timedelta(hours=24)
        for t in self.tweets.values():
            if (
                t.author_id == who.user_id
                and not t.deleted
                and t.created_at >= day_ago
                and self._plain(t) == text
            ):
                raise XApiError(
                    403,
                    "Forbidden",
                    "You are not allowed to create a Tweet with duplicate content.",
                )
        tweet = self._make_tweet(
            who.user_id, text, reply_to=str(reply_to) if reply_to else None, quote=quote
        )
        self.created_tweets.append({**body, "id": tweet.id})
        self._broadcast(tweet)
        response = self._json(
            request,
            {"data": {"id": tweet.id, "text": tweet.text, "edit_history_tweet_ids": [tweet.id]}},
            status=201,
        )
        response.headers["location"] = f"{self.base_url}/2/tweets/{tweet.id}"
        return response

    async def _me(
        self, request: web.Request, who: Principal, body: dict[str, Any]
    ) -> web.StreamResponse:
        assert who.user_id is not None
        return self._json(
            request,
            {
                "data": self._render_user(
                    self.users[who.user_id], self._fields(request, "user.fields")
                )
            },
        )

    async def _timeline(
        self, request: web.Request, who: Principal, body: dict[str, Any]
    ) -> web.StreamResponse:
        user_id = request.match_info["id"]
        if user_id not in self.users:
            raise XApiError(
                404,
                "Not Found Error",
                f"Could not find user with id: [{user_id}].",
                "resource-not-found",
            )
        max_results = int(request.query.get("max_results", "10"))
        start = request.query.get("start_time")
        since = datetime.fromisoformat(start.replace("Z", "+00:00")) if start else None
        own = [
            t
            for t in self.tweets.values()
            if t.author_id == user_id
            and not t.deleted
            and (since is None or t.created_at >= since)
        ]
        own.sort(key=lambda t: int(t.id), reverse=True)
        page = own[:max_results]
        if not page:
            return self._json(request, {"meta": {"result_count": 0}})
        out = self._envelope(
            page, self._fields(request, "tweet.fields"), self._fields(request, "expansions")
        )
        out["meta"] = {
            "newest_id": page[0].id,
            "oldest_id": page[-1].id,
            "result_count": len(page),
        }
        return self._json(request, out)

    def _check_self(self, request: web.Request, who: Principal) -> str:
        user_id = request.match_info["id"]
        if user_id != who.user_id:
            raise XApiError(
                403,
                "Forbidden",
                "You are not allowed to use this endpoint on behalf of another user.",
            )
        return user_id

    async def _retweet(
        self, request: web.Request, who: Principal, body: dict[str, Any]
    ) -> web.StreamResponse:
        user_id = self._check_self(request, who)
        tweet_id = str(body.get("tweet_id", ""))
        source = self.tweets.get(tweet_id)
        if source is None or source.deleted:
            raise XApiError(
                404,
                "Not Found Error",
                f"Could not find tweet with id: [{tweet_id}].",
                "resource-not-found",
            )
        existing = next(
            (
                t
                for t in self.tweets.values()
                if t.author_id == user_id and t.ref("retweeted") == tweet_id and not t.deleted
            ),
            None,
        )
        if existing is None:
            existing = self._make_retweet(user_id, source)
            self.retweets.append((user_id, tweet_id))
            self._broadcast(existing)
        return self._json(request, {"data": {"retweeted": True, "rest_id": existing.id}})

    async def _unretweet(
        self, request: web.Request, who: Principal, body: dict[str, Any]
    ) -> web.StreamResponse:
        user_id = self._check_self(request, who)
        tweet_id = request.match_info["tweet_id"]
        for t in self.tweets.values():
            if t.author_id == user_id and t.ref("retweeted") == tweet_id and not t.deleted:
                t.deleted = True
        if (user_id, tweet_id) in self.retweets:
            self.retweets.remove((user_id, tweet_id))
        return self._json(request, {"data": {"retweeted": False}})
