"""X API v2 payloads -> domain events.

One response (a search page, a stream line, a lookup) has ``data`` (one post or a list) and
``includes`` (``users``, ``tweets``) joined by id. Rules:

- the author comes from ``includes.users`` by ``author_id``;
- ``referenced_tweets``: ``replied_to`` is the reply parent, ``quoted`` the quoted post, and a
  ``retweeted`` post becomes ``RepostSeen`` rather than a post;
- ``conversation_id`` is the thread root (X sets it to the post's own id for a root post);
- ``note_tweet.text`` (posts longer than 280) replaces the truncated ``text``;
- an edited post (``edit_history_tweet_ids`` longer than one) becomes ``PostEdited`` keyed by the
  original id, with the newest version's id as ``version`` (replies must target that id).
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from mhchat.clock import plausible_post_time
from mhchat.events import (
    Author,
    Event,
    PlatformName,
    Post,
    PostEdited,
    PostReceived,
    PostRef,
    RemoteId,
    RepostSeen,
)

TWEET_FIELDS = (
    "author_id,conversation_id,created_at,in_reply_to_user_id,referenced_tweets,entities,"
    "lang,edit_history_tweet_ids,note_tweet,reply_settings,possibly_sensitive"
)
EXPANSIONS = (
    "author_id,referenced_tweets.id,referenced_tweets.id.author_id,in_reply_to_user_id,"
    "entities.mentions.username"
)
USER_FIELDS = "username,name,protected"

# X's snowflake ids carry their creation time: milliseconds since this epoch, shifted by 22.
TWEPOCH_MS = 1288834974657


def snowflake_time(tweet_id: str) -> datetime | None:
    try:
        ms = (int(tweet_id) >> 22) + TWEPOCH_MS
        found = datetime.fromtimestamp(ms / 1000, UTC)
    except (ValueError, OverflowError, OSError):
        return None
    return found if plausible_post_time(found) else None


def rewind_id(tweet_id: str, seconds: float) -> str:
    """The smallest snowflake id minted ``seconds`` before ``tweet_id`` (for since_id)."""
    try:
        ms = (int(tweet_id) >> 22) - int(seconds * 1000)
    except ValueError:
        return tweet_id
    return str(max(0, ms) << 22)


def newer_id(a: str | None, b: str | None) -> str | None:
    """The larger of two ids, compared as numbers (ids are not fixed-width strings)."""
    if a is None:
        return b
    if b is None:
        return a
    try:
        return a if int(a) >= int(b) else b
    except ValueError:
        return max(a, b)


def parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        parsed = parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    except (ValueError, OverflowError):
        return None
    return parsed if plausible_post_time(parsed) else None


@dataclass(frozen=True, slots=True, kw_only=True)
class HostIdentity:
    user_id: str | None
    username: str | None

    def is_host(self, user_id: Any) -> bool:
        return self.user_id is not None and str(user_id) == self.user_id

    def is_host_name(self, username: Any) -> bool:
        return (
            self.username is not None
            and isinstance(username, str)
            and username.lower() == self.username.lower()
        )


@dataclass(frozen=True, slots=True)
class Parsed:
    events: list[Event]
    post_ids: list[str]
    """Every post id the response carried (billed reads), including includes.tweets."""
    user_ids: list[str]
    skipped: int
    """Objects that could not be understood (missing id or time)."""


def _as_list(value: Any) -> list[dict[str, Any]]:
    if isinstance(value, dict):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, dict)]
    return []


def _refs(tweet: Mapping[str, Any]) -> dict[str, str]:
    found: dict[str, str] = {}
    for ref in _as_list(tweet.get("referenced_tweets")):
        kind, rid = ref.get("type"), ref.get("id")
        if isinstance(kind, str) and rid is not None:
            found.setdefault(kind, str(rid))
    return found


def _entities(tweet: Mapping[str, Any]) -> Mapping[str, Any]:
    note = tweet.get("note_tweet")
    if isinstance(note, dict) and isinstance(note.get("entities"), dict):
        return note["entities"]  # type: ignore[no-any-return]
    entities = tweet.get("entities")
    return entities if isinstance(entities, dict) else {}


def _history(tweet: Mapping[str, Any]) -> list[str]:
    ids = tweet.get("edit_history_tweet_ids")
    return [str(i) for i in ids] if isinstance(ids, list) else []


def _text(tweet: Mapping[str, Any]) -> str:
    note = tweet.get("note_tweet")
    if isinstance(note, dict) and isinstance(note.get("text"), str):
        text = str(note["text"])
    else:
        given = tweet.get("text")
        text = given if isinstance(given, str) else ""
    # X escapes &, < and > in post text.
    return html.unescape(text)


class Normaliser:
    """Turns X responses into events for one platform name and host identity."""

    def __init__(self, platform: PlatformName, host: HostIdentity) -> None:
        self.platform = platform
        self.host = host

    def parse(self, payload: Mapping[str, Any]) -> Parsed:
        includes = payload.get("includes") if isinstance(payload.get("includes"), dict) else {}
        assert isinstance(includes, dict)
        users = {str(u.get("id")): u for u in _as_list(includes.get("users"))}
        included = {str(t.get("id")): t for t in _as_list(includes.get("tweets"))}
        events: list[Event] = []
        skipped = 0
        post_ids: list[str] = []
        for tweet in _as_list(payload.get("data")):
            event = self.tweet_event(tweet, users, included)
            if event is None:
                skipped += 1
            else:
                events.append(event)
            if tweet.get("id") is not None:
                post_ids.append(str(tweet["id"]))
        post_ids.extend(included)
        return Parsed(events, post_ids, list(users), skipped)

    def author(self, user_id: str, users: Mapping[str, Mapping[str, Any]]) -> Author:
        user = users.get(user_id, {})
        handle = user.get("username")
        return Author(
            platform=self.platform,
            author_id=user_id,
            handle=str(handle) if handle else user_id,
            display_name=str(user["name"]) if user.get("name") else None,
        )

    def tweet_event(
        self,
        tweet: Mapping[str, Any],
        users: Mapping[str, Mapping[str, Any]],
        included: Mapping[str, Mapping[str, Any]],
    ) -> Event | None:
        tid = tweet.get("id")
        if tid is None:
            return None
        tweet_id = str(tid)
        created = parse_time(tweet.get("created_at")) or snowflake_time(tweet_id)
        if created is None:
            return None
        given = tweet.get("author_id")
        # Not the text "None" for a null: an unknown author is an empty id, as when absent.
        usable = isinstance(given, str | int) and not isinstance(given, bool)
        author_id = str(given) if usable else ""
        author = self.author(author_id, users)
        refs = _refs(tweet)
        if "retweeted" in refs:
            return RepostSeen(
                platform=self.platform,
                remote_id=RemoteId(tweet_id),
                author=author,
                subject=PostRef(remote_id=RemoteId(refs["retweeted"])),
                created_at=created,
            )
        post = self.post(
            tweet=tweet,
            tweet_id=tweet_id,
            author=author,
            created=created,
            refs=refs,
            users=users,
            included=included,
        )
        history = _history(tweet)
        if len(history) > 1 and history[0] != tweet_id:
            return PostEdited(post=post, edited_at=created)
        return PostReceived(post=post)

    def post(
        self,
        *,
        tweet: Mapping[str, Any],
        tweet_id: str,
        author: Author,
        created: datetime,
        refs: Mapping[str, str],
        users: Mapping[str, Mapping[str, Any]],
        included: Mapping[str, Mapping[str, Any]],
    ) -> Post:
        entities = _entities(tweet)
        hashtags = tuple(
            str(h["tag"]).lower() for h in _as_list(entities.get("hashtags")) if h.get("tag")
        )
        mention_objs = _as_list(entities.get("mentions"))
        mentions = tuple(str(m["username"]) for m in mention_objs if m.get("username"))
        links = tuple(
            str(u.get("expanded_url") or u.get("url"))
            for u in _as_list(entities.get("urls"))
            if (u.get("expanded_url") or u.get("url")) and not u.get("media_key")
        )
        parent = refs.get("replied_to")
        quoted = refs.get("quoted")
        conversation = tweet.get("conversation_id")
        root = str(conversation) if conversation is not None else parent
        history = _history(tweet)
        original = history[0] if len(history) > 1 else tweet_id
        mentions_host = any(
            self.host.is_host_name(m.get("username")) or self.host.is_host(m.get("id"))
            for m in mention_objs
        )
        if quoted is not None:
            quoted_tweet = included.get(quoted, {})
            mentions_host = mentions_host or self.host.is_host(quoted_tweet.get("author_id"))
        lang = tweet.get("lang")
        return Post(
            platform=self.platform,
            remote_id=RemoteId(original),
            author=author,
            text=_text(tweet),
            created_at=created,
            version=tweet_id if original != tweet_id else None,
            reply_parent=PostRef(remote_id=RemoteId(parent)) if parent else None,
            reply_root=PostRef(remote_id=RemoteId(root)) if parent and root else None,
            quoted=PostRef(remote_id=RemoteId(quoted)) if quoted else None,
            hashtags=hashtags,
            mentions=mentions,
            links=links,
            language=str(lang) if isinstance(lang, str) and lang not in {"und", "qst"} else None,
            url=f"https://x.com/{author.handle}/status/{tweet_id}",
            is_own=self.host.is_host(author.author_id) if author.author_id else False,
            mentions_host=mentions_host,
            raw=orjson.dumps(tweet).decode(),
        )


def tweet_ids(events: Iterable[Event]) -> list[str]:
    """Remote ids of the posts (not reposts) among ``events``, newest version first."""
    found: list[str] = []
    for event in events:
        if isinstance(event, PostReceived | PostEdited):
            found.append(event.post.version or event.post.remote_id)
    return found
