"""Posts as X builds them: snowflake ids, t.co links and entities, note tweets, retweets,
and the subset of X's query language that search and stream rules use."""

from __future__ import annotations

import re
import secrets
from typing import Any

from twitter_text import extract_urls_with_indices, parse_tweet

from mhchat.emulators.x.model import HASHTAG, MENTION, Tweet, XApiError
from mhchat.emulators.x.state import XState


class XTweets(XState):
    """Making posts and matching them against queries."""

    def _entities(self, text: str) -> tuple[str, dict[str, Any]]:
        """Wrap links in t.co and list hashtags, mentions and urls with code-point indices."""
        expanded: dict[str, str] = {}
        out = text
        for found in reversed(extract_urls_with_indices(text)):
            start, end = found["indices"]
            short = "https://t.co/" + secrets.token_urlsafe(8)[:10]
            expanded[short] = found["url"]
            out = out[:start] + short + out[end:]
        entities: dict[str, Any] = {}
        tags = [
            {"start": m.start(), "end": m.end(), "tag": m.group(1)} for m in HASHTAG.finditer(out)
        ]
        if tags:
            entities["hashtags"] = tags
        mentions = []
        for m in MENTION.finditer(out):
            item: dict[str, Any] = {"start": m.start(), "end": m.end(), "username": m.group(1)}
            known = next(
                (u for u in self.users.values() if u.username.lower() == m.group(1).lower()), None
            )
            if known is not None:
                item["id"] = known.id
            mentions.append(item)
        if mentions:
            entities["mentions"] = mentions
        urls = []
        for short, long in expanded.items():
            start = out.index(short)
            display = re.sub(r"^https?://", "", long)
            urls.append(
                {
                    "start": start,
                    "end": start + len(short),
                    "url": short,
                    "expanded_url": long,
                    "display_url": display[:24] + ("…" if len(display) > 24 else ""),
                }
            )
        if urls:
            entities["urls"] = sorted(urls, key=lambda u: u["start"])
        return out, entities

    def _make_tweet(
        self,
        author_id: str,
        text: str,
        *,
        reply_to: str | None = None,
        quote: str | None = None,
        history: list[str] | None = None,
    ) -> Tweet:
        tid = self._new_id()
        wrapped, entities = self._entities(text)
        note = None
        if parse_tweet(text).weightedLength > 280:
            note = {"text": wrapped, "entities": entities}
            wrapped = wrapped[:270].rstrip() + "…"
            _, entities = self._entities(wrapped)
        refs: list[tuple[str, str]] = []
        conversation = tid
        in_reply_to_user = None
        if reply_to is not None:
            parent = self.tweets[reply_to]
            refs.append(("replied_to", reply_to))
            conversation = parent.conversation_id
            in_reply_to_user = parent.author_id
        if quote is not None:
            refs.append(("quoted", quote))
        tweet = Tweet(
            id=tid,
            author_id=author_id,
            text=wrapped,
            created_at=self.clock.now(),
            conversation_id=conversation,
            refs=refs,
            in_reply_to_user_id=in_reply_to_user,
            entities=entities,
            note=note,
            edit_history=[*(history or []), tid],
        )
        self.tweets[tid] = tweet
        return tweet

    def _make_retweet(self, user_id: str, source: Tweet) -> Tweet:
        author = self.users[source.author_id].username
        text = f"RT @{author}: {source.note['text'] if source.note else source.text}"
        tid = self._new_id()
        _, entities = self._entities(text)
        tweet = Tweet(
            id=tid,
            author_id=user_id,
            text=text if len(text) <= 140 else text[:139] + "…",
            created_at=self.clock.now(),
            conversation_id=tid,
            refs=[("retweeted", source.id)],
            entities=entities,
            edit_history=[tid],
        )
        self.tweets[tid] = tweet
        return tweet

    def _matches(self, query: str, tweet: Tweet) -> bool:
        author = self.users[tweet.author_id]
        tags = {h["tag"].lower() for h in tweet.entities.get("hashtags", [])}
        if tweet.note:
            tags |= {h["tag"].lower() for h in tweet.note["entities"].get("hashtags", [])}
        mentions = {m["username"].lower() for m in tweet.entities.get("mentions", [])}
        text = (tweet.note["text"] if tweet.note else tweet.text).lower()
        for token in query.split():
            negate = token.startswith("-")
            term = token[1:] if negate else token
            low = term.lower()
            if low.startswith("#"):
                hit = low[1:] in tags
            elif low.startswith("@"):
                hit = low[1:] in mentions
            elif low.startswith("from:"):
                who = low[5:]
                hit = who in (author.id, author.username.lower())
            elif low in ("is:retweet", "is:reply", "is:quote"):
                kind = {"is:retweet": "retweeted", "is:reply": "replied_to"}.get(low, "quoted")
                hit = tweet.ref(kind) is not None
            else:
                hit = low in text
            if hit == negate:
                return False
        return True

    def _check_query(self, query: str) -> None:
        if not query or len(query) > 512:
            raise XApiError(
                400,
                "Invalid Request",
                "One or more parameters to your request was invalid.",
                "invalid-request",
            )
        for token in query.split():
            term = token.lstrip("-")
            if term.upper() == "OR" or "(" in term or ")" in term:
                raise XApiError(
                    400,
                    "Invalid Request",
                    f"Unsupported operator in query: {term}",
                    "invalid-request",
                )

    def _plain(self, tweet: Tweet) -> str:
        text = tweet.note["text"] if tweet.note else tweet.text
        entities = tweet.note["entities"] if tweet.note else tweet.entities
        for url in entities.get("urls", []):
            text = text.replace(url["url"], url["expanded_url"])
        return text

    def _summoned(self, parent: Tweet, user_id: str) -> bool:
        """Did the parent's author @mention the replier or quote one of their posts?"""
        if parent.author_id == user_id:
            return True
        me = self.users[user_id].username.lower()
        entities = parent.note["entities"] if parent.note else parent.entities
        if any(m["username"].lower() == me for m in entities.get("mentions", [])):
            return True
        quoted = parent.ref("quoted")
        return (
            quoted is not None
            and quoted in self.tweets
            and self.tweets[quoted].author_id == user_id
        )
