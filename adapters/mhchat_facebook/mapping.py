"""Facebook payloads -> domain events: page ``feed`` webhook changes and Graph feed nodes.

Every value is checked before use: a webhook body is untrusted input, and anything this module
does not understand is counted and skipped, never raised.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from mhchat.clock import plausible_post_time
from mhchat.events import (
    Author,
    Event,
    PlatformName,
    Post,
    PostDeleted,
    PostEdited,
    PostReceived,
    PostRef,
    RemoteId,
)

POST_ITEMS = frozenset({"status", "post", "photo", "share", "video"})
ADD_VERBS = frozenset({"add"})
EDIT_VERBS = frozenset({"edited", "edit"})
# "hide" is a moderator hiding a comment: honoured like a removal everywhere.
REMOVE_VERBS = frozenset({"remove", "delete", "hide"})

# What is counted by name when ignored (Meta's documented page webhook values); anything else
# is counted as "other": a counter's name must not come from a payload, where it could be
# anything, of any length and any number of names.
_COUNTED_ITEMS = frozenset(
    {
        "album", "address", "coupon", "event", "experience", "group", "group_message",
        "interest", "like", "link", "mention", "milestone", "note", "page", "picture",
        "platform-story", "photo-album", "profile", "question", "rating", "reaction",
        "relationship-status", "story", "tag", "timeline cover",
    }
)  # fmt: skip
_COUNTED_VERBS = frozenset({"block", "follow", "mute", "unblock", "unhide", "update"})
_COUNTED_FIELDS = frozenset(
    {
        "mention", "ratings", "messages", "messaging_postbacks", "message_deliveries",
        "message_reads", "message_echoes", "message_reactions", "leadgen", "live_videos",
        "videos", "conversations", "name", "picture", "category", "description", "email",
        "website", "phone", "location", "hours", "checkins", "feed",
    }
)  # fmt: skip


def _counted(value: str, known: frozenset[str]) -> str:
    return value if value in known else "other"


_HASHTAG = re.compile(r"(?<![\w&#])#(\w+)")
_MENTION = re.compile(r"(?<![\w@])@(\w[\w.]*\w|\w)")
_LINK = re.compile(r"https?://[^\s<>\"']+")


@dataclass(slots=True)
class Parsed:
    """Events from one payload, and what was skipped (reason -> count)."""

    events: list[Event] = field(default_factory=list)
    ignored: Counter[str] = field(default_factory=Counter)


def _text(value: object) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def _obj(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def parse_time(value: object) -> datetime | None:
    """Unix seconds (webhooks; milliseconds in some envelopes) or Graph's ``+0000`` strings."""
    try:
        if isinstance(value, int | float) and not isinstance(value, bool):
            seconds = float(value)
            if seconds > 1e11:
                seconds /= 1000.0
            parsed = datetime.fromtimestamp(seconds, UTC)
        elif isinstance(value, str):
            if value.isdigit():
                return parse_time(int(value))
            parsed = datetime.strptime(value, "%Y-%m-%dT%H:%M:%S%z").astimezone(UTC)
        else:
            return None
    except (ValueError, OverflowError, OSError):
        return None
    return parsed if plausible_post_time(parsed) else None


def raw_json(value: object) -> str:
    """The payload as JSON for the post's raw copy: orjson (a tenth of ``json.dumps``'s cost
    with sorted keys), or the standard encoder for what orjson refuses (integers beyond 64
    bits, which the body parser accepts)."""
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
    except TypeError:
        return json.dumps(value, ensure_ascii=False, sort_keys=True)


def extract_hashtags(text: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(tag.lower() for tag in _HASHTAG.findall(text)))


def extract_mentions(text: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(_MENTION.findall(text)))


def extract_links(text: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(link.rstrip(".,;:!?)") for link in _LINK.findall(text)))


def _author(platform: PlatformName, sender: dict[str, Any]) -> Author | None:
    author_id = _text(sender.get("id"))
    if not author_id:
        return None
    name = _text(sender.get("name"))
    return Author(
        platform=platform, author_id=author_id, handle=name or author_id, display_name=name
    )


def _permalink(remote_id: str, embedded: dict[str, Any], value: dict[str, Any]) -> str:
    link = _text(value.get("permalink_url")) or _text(embedded.get("permalink_url"))
    return (
        link if link and link.startswith("https://") else f"https://www.facebook.com/{remote_id}"
    )


def make_post(
    *,
    platform: PlatformName,
    page_id: str,
    remote_id: str,
    author: Author,
    text: str,
    created_at: datetime,
    parent: str | None,
    root: str | None,
    url: str,
    raw: str | None,
) -> Post:
    return Post(
        platform=platform,
        remote_id=RemoteId(remote_id),
        author=author,
        text=text,
        created_at=created_at,
        reply_parent=PostRef(remote_id=RemoteId(parent)) if parent else None,
        reply_root=PostRef(remote_id=RemoteId(root)) if root else None,
        hashtags=extract_hashtags(text),
        mentions=extract_mentions(text),
        links=extract_links(text),
        url=url,
        is_own=author.author_id == page_id,
        raw=raw,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class _Change:
    platform: PlatformName
    page_id: str
    sent_at: datetime
    value: dict[str, Any]


def _feed_change(change: _Change, parsed: Parsed) -> None:
    value = change.value
    item = _text(value.get("item")) or "?"
    verb = _text(value.get("verb")) or "?"
    if item != "comment" and item not in POST_ITEMS:
        parsed.ignored[f"item:{_counted(item, _COUNTED_ITEMS)}"] += 1
        return
    post_id = _text(value.get("post_id"))
    remote_id = _text(value.get("comment_id")) if item == "comment" else post_id
    if not remote_id or not post_id:
        parsed.ignored["missing_id"] += 1
        return
    sender = _obj(value.get("from"))
    if verb in REMOVE_VERBS:
        parsed.events.append(
            PostDeleted(
                platform=change.platform,
                remote_id=RemoteId(remote_id),
                deleted_at=change.sent_at,
                author_id=_text(sender.get("id")),
                with_replies=True,
            )
        )
        return
    if verb not in ADD_VERBS and verb not in EDIT_VERBS:
        parsed.ignored[f"verb:{_counted(verb, _COUNTED_VERBS)}"] += 1
        return
    if value.get("published") in (0, "0", False):
        parsed.ignored["unpublished"] += 1
        return
    author = _author(change.platform, sender)
    if author is None:
        parsed.ignored["no_author"] += 1
        return
    message = value.get("message", "")
    text = message if isinstance(message, str) else ""
    created_at = parse_time(value.get("created_time")) or change.sent_at
    parent: str | None = None
    root: str | None = None
    if item == "comment":
        parent = _text(value.get("parent_id")) or post_id
        root = post_id
    post = make_post(
        platform=change.platform,
        page_id=change.page_id,
        remote_id=remote_id,
        author=author,
        text=text,
        created_at=created_at,
        parent=parent,
        root=root,
        url=_permalink(remote_id, _obj(value.get("post")), value),
        raw=raw_json(value),
    )
    if verb in EDIT_VERBS:
        parsed.events.append(PostEdited(post=post, edited_at=change.sent_at))
    else:
        parsed.events.append(PostReceived(post=post))


def parse_delivery(
    data: object, *, platform: PlatformName, page_id: str, received_at: datetime
) -> Parsed:
    """Turn one webhook body (already JSON-decoded) into events for ``page_id``."""
    parsed = Parsed()
    body = _obj(data)
    if body.get("object") != "page":
        parsed.ignored["object"] += 1
        return parsed
    entries = body.get("entry")
    if not isinstance(entries, list):
        parsed.ignored["no_entry"] += 1
        return parsed
    for raw_entry in entries:
        entry = _obj(raw_entry)
        if _text(entry.get("id")) != page_id:
            parsed.ignored["other_page"] += 1
            continue
        changes = entry.get("changes")
        if not isinstance(changes, list):
            # "Include Values" off: only changed_fields arrive; backfill fetches the content.
            parsed.ignored["no_values"] += 1
            continue
        sent_at = parse_time(entry.get("time")) or received_at
        for raw_change in changes:
            change = _obj(raw_change)
            value = change.get("value")
            if change.get("field") != "feed" or not isinstance(value, dict):
                field = _text(change.get("field")) or ""
                parsed.ignored[f"field:{_counted(field, _COUNTED_FIELDS)}"] += 1
                continue
            _feed_change(
                _Change(platform=platform, page_id=page_id, sent_at=sent_at, value=value), parsed
            )
    return parsed


def graph_node_post(
    node: dict[str, Any],
    *,
    platform: PlatformName,
    page_id: str,
    post_id: str | None,
    parsed: Parsed,
) -> Post | None:
    """A Graph post node (``post_id`` None) or comment node on ``post_id`` -> Post."""
    remote_id = _text(node.get("id"))
    author = _author(platform, _obj(node.get("from")))
    created_at = parse_time(node.get("created_time"))
    if not remote_id or author is None or created_at is None:
        parsed.ignored["incomplete_node"] += 1
        return None
    if node.get("is_published") is False:
        parsed.ignored["unpublished"] += 1
        return None
    message = node.get("message", "")
    parent = _text(_obj(node.get("parent")).get("id")) or post_id
    return make_post(
        platform=platform,
        page_id=page_id,
        remote_id=remote_id,
        author=author,
        text=message if isinstance(message, str) else "",
        created_at=created_at,
        parent=parent if post_id else None,
        root=post_id,
        url=_permalink(remote_id, {}, node),
        raw=raw_json(node),
    )
