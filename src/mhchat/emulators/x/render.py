"""Rendering for X API v2 answers: field selection, expansions and the data/includes envelope."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from mhchat.emulators.x.model import _HEADERS, Tweet, XUser, _dumps, _iso
from mhchat.emulators.x.tweets import XTweets


class XRender(XTweets):
    """Posts and users as JSON, with the fields and expansions a request asked for."""

    def _render(self, tweet: Tweet, fields: set[str]) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": tweet.id,
            "text": tweet.text,
            "edit_history_tweet_ids": list(tweet.edit_history),
        }
        values: dict[str, Any] = {
            "author_id": tweet.author_id,
            "conversation_id": tweet.conversation_id,
            "created_at": _iso(tweet.created_at),
            "lang": tweet.lang,
            "reply_settings": "everyone",
            "possibly_sensitive": False,
        }
        for key, value in values.items():
            if key in fields:
                out[key] = value
        if "in_reply_to_user_id" in fields and tweet.in_reply_to_user_id:
            out["in_reply_to_user_id"] = tweet.in_reply_to_user_id
        if "referenced_tweets" in fields and tweet.refs:
            out["referenced_tweets"] = [{"type": k, "id": rid} for k, rid in tweet.refs]
        if "entities" in fields and tweet.entities:
            out["entities"] = tweet.entities
        if "note_tweet" in fields and tweet.note:
            out["note_tweet"] = tweet.note
        return out

    def _render_user(self, user: XUser, fields: set[str]) -> dict[str, Any]:
        out: dict[str, Any] = {"id": user.id, "name": user.name, "username": user.username}
        if "protected" in fields:
            out["protected"] = user.protected
        if "created_at" in fields:
            out["created_at"] = _iso(user.created_at)
        return out

    def _expand(
        self, tweets: list[Tweet], expansions: set[str]
    ) -> tuple[dict[str, XUser], dict[str, Tweet]]:
        """The users and referenced posts the requested ``expansions`` pull into includes."""
        users: dict[str, XUser] = {}
        included: dict[str, Tweet] = {}
        for tweet in tweets:
            if "author_id" in expansions:
                users[tweet.author_id] = self.users[tweet.author_id]
            if "in_reply_to_user_id" in expansions and tweet.in_reply_to_user_id:
                users[tweet.in_reply_to_user_id] = self.users[tweet.in_reply_to_user_id]
            if "entities.mentions.username" in expansions:
                for m in tweet.entities.get("mentions", []):
                    if "id" in m and m["id"] in self.users:
                        users[m["id"]] = self.users[m["id"]]
            if "referenced_tweets.id" in expansions:
                for _, rid in tweet.refs:
                    ref = self.tweets.get(rid)
                    if ref is not None and not ref.deleted:
                        included[rid] = ref
                        if "referenced_tweets.id.author_id" in expansions:
                            users[ref.author_id] = self.users[ref.author_id]
        return users, included

    def _envelope(
        self,
        tweets: list[Tweet],
        fields: set[str],
        expansions: set[str],
        user_fields: set[str] | None = None,
        *,
        single: bool = False,
    ) -> dict[str, Any]:
        user_fields = user_fields or {"username", "name"}
        users, included = self._expand(tweets, expansions)
        data = [self._render(t, fields) for t in tweets]
        out: dict[str, Any] = {"data": data[0] if single else data}
        includes: dict[str, Any] = {}
        if users:
            includes["users"] = [self._render_user(u, user_fields) for u in users.values()]
        if included:
            includes["tweets"] = [self._render(t, fields) for t in included.values()]
        if includes:
            out["includes"] = includes
        return out

    def _json(self, request: web.Request, body: dict[str, Any], status: int = 200) -> web.Response:
        headers = dict(request.get(_HEADERS, {}))
        return web.json_response(body, status=status, headers=headers, dumps=_dumps)

    @staticmethod
    def _fields(request: web.Request, name: str) -> set[str]:
        return {f for f in request.query.get(name, "").split(",") if f}
