"""Bluesky records -> mhchat events. Pure functions, no I/O.

Input is a ``Commit`` (one repo operation, as Jetstream or the firehose carries it) or a PostView
(searchPosts). A post keeps its at:// URI as remote id and its CID as version, so that a reply or
repost can later build the strong ref (uri + cid) Bluesky requires.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
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
    PostDeleted,
    PostEdited,
    PostReceived,
    PostRef,
    RemoteId,
    RepostSeen,
)

POST = "app.bsky.feed.post"
REPOST = "app.bsky.feed.repost"
_TAG = "app.bsky.richtext.facet#tag"
_MENTION = "app.bsky.richtext.facet#mention"
_LINK = "app.bsky.richtext.facet#link"
_EMBED_RECORD = "app.bsky.embed.record"
_EMBED_WITH_MEDIA = "app.bsky.embed.recordWithMedia"
# An inline hashtag as the Bluesky app detects it: after start or whitespace, up to whitespace.
_INLINE_TAG = re.compile(r"(?:^|\s)[#＃]([^\s#＃]+)")  # noqa: RUF001 - the full-width sign counts
_TRAILING = re.compile(r"[\.,;:!\?\)\]\}'\"…]+$")


class MalformedRecord(ValueError):
    """A record that does not have the shape its collection requires."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Commit:
    """One repo operation from a live source."""

    did: str
    collection: str
    rkey: str
    operation: str
    record: Mapping[str, Any] | None
    cid: str | None
    cursor: str
    time: datetime

    @property
    def uri(self) -> str:
        return f"at://{self.did}/{self.collection}/{self.rkey}"


@dataclass(frozen=True, slots=True)
class Profile:
    handle: str
    display_name: str | None = None
    is_bot: bool = False
    checked: bool = True
    """False for the stand-in used when the appview could not be asked: ``is_bot`` unknown."""


def web_url(did: str, rkey: str) -> str:
    return f"https://bsky.app/profile/{did}/post/{rkey}"


def split_uri(uri: str) -> tuple[str, str, str]:
    """``at://did/collection/rkey`` -> (did, collection, rkey); MalformedRecord if not."""
    parts = uri.removeprefix("at://").split("/") if uri.startswith("at://") else []
    if len(parts) != 3 or not all(parts):
        raise MalformedRecord(f"not a record URI: {uri!r}")
    return parts[0], parts[1], parts[2]


def parse_time(value: Any, fallback: datetime) -> datetime:
    """A record's ``createdAt`` as aware UTC (naive is read as UTC), or ``fallback`` (when the
    network or we saw the record) for garbage or a year no post can have: ``createdAt`` is
    whatever the author's client wrote."""
    if not isinstance(value, str):
        return fallback
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        parsed = parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        return fallback
    return parsed if plausible_post_time(parsed) else fallback


def _strong_ref(value: Any) -> PostRef | None:
    if not isinstance(value, Mapping) or not isinstance(value.get("uri"), str):
        return None
    cid = value.get("cid")
    return PostRef(remote_id=RemoteId(value["uri"]), version=cid if isinstance(cid, str) else None)


def quoted_ref(record: Mapping[str, Any]) -> PostRef | None:
    embed = record.get("embed")
    if not isinstance(embed, Mapping):
        return None
    if embed.get("$type") == _EMBED_RECORD:
        ref = _strong_ref(embed.get("record"))
    elif embed.get("$type") == _EMBED_WITH_MEDIA:
        inner = embed.get("record")
        ref = _strong_ref(inner.get("record")) if isinstance(inner, Mapping) else None
    else:
        return None
    # Only quotes of posts: a record embed may also point at a list or a feed generator.
    if ref is not None and f"/{POST}/" not in ref.remote_id:
        return None
    return ref


def _unique(items: Sequence[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


def facet_features(record: Mapping[str, Any]) -> tuple[list[str], list[str], list[str]]:
    """(tags, mention dids, links) from the record's rich-text facets."""
    tags: list[str] = []
    mentions: list[str] = []
    links: list[str] = []
    facets = record.get("facets")
    for facet in facets if isinstance(facets, list) else []:
        features = facet.get("features") if isinstance(facet, Mapping) else None
        for feature in features if isinstance(features, list) else []:
            if not isinstance(feature, Mapping):
                continue
            kind = feature.get("$type")
            if kind == _TAG and isinstance(feature.get("tag"), str):
                tags.append(feature["tag"])
            elif kind == _MENTION and isinstance(feature.get("did"), str):
                mentions.append(feature["did"])
            elif kind == _LINK and isinstance(feature.get("uri"), str):
                links.append(feature["uri"])
    return tags, mentions, links


def hashtags(record: Mapping[str, Any]) -> tuple[str, ...]:
    """Lower-cased tags from facets, the record's ``tags`` field and the text itself."""
    tags, _, _ = facet_features(record)
    extra = record.get("tags")
    if isinstance(extra, list):
        tags += [t for t in extra if isinstance(t, str)]
    text = record.get("text")
    if isinstance(text, str):
        tags += [_TRAILING.sub("", m) for m in _INLINE_TAG.findall(text)]
    return _unique([t.lstrip("#＃").lower() for t in tags if t.lstrip("#＃")])  # noqa: RUF001


def is_relevant(record: Mapping[str, Any], did: str, tag: str, host_did: str | None) -> bool:
    """Whether a post belongs to the chat: the tag, or it involves the host account."""
    if tag.lower() in hashtags(record):
        return True
    if host_did is None:
        return False
    if did == host_did:
        return True
    prefix = f"at://{host_did}/"
    reply = record.get("reply")
    if isinstance(reply, Mapping):
        for part in ("root", "parent"):
            ref = _strong_ref(reply.get(part))
            if ref is not None and ref.remote_id.startswith(prefix):
                return True
    quoted = quoted_ref(record)
    if quoted is not None and quoted.remote_id.startswith(prefix):
        return True
    return host_did in facet_features(record)[1]


def post_from_record(
    *,
    platform: PlatformName,
    uri: str,
    cid: str | None,
    record: Mapping[str, Any],
    profile: Profile,
    host_did: str | None,
    fallback_time: datetime,
    raw: str | None = None,
) -> Post:
    """Normalise an ``app.bsky.feed.post`` record."""
    did, _, rkey = split_uri(uri)
    text = record.get("text")
    if not isinstance(text, str):
        raise MalformedRecord("post record without text")
    reply = record.get("reply")
    parent = root = None
    if isinstance(reply, Mapping):
        parent, root = _strong_ref(reply.get("parent")), _strong_ref(reply.get("root"))
        if parent is None or root is None:
            raise MalformedRecord("reply without root and parent strong refs")
    _, mentions, links = facet_features(record)
    quoted = quoted_ref(record)
    langs = record.get("langs")
    language = (
        langs[0] if isinstance(langs, list) and langs and isinstance(langs[0], str) else None
    )
    host_prefix = f"at://{host_did}/" if host_did else None
    return Post(
        platform=platform,
        remote_id=RemoteId(uri),
        author=Author(
            platform=platform,
            author_id=did,
            handle=profile.handle,
            display_name=profile.display_name,
        ),
        text=text,
        created_at=parse_time(record.get("createdAt"), fallback_time),
        version=cid,
        reply_parent=parent,
        reply_root=root,
        quoted=quoted,
        hashtags=hashtags(record),
        mentions=_unique(mentions),
        links=_unique(links),
        language=language,
        url=web_url(did, rkey),
        is_own=host_did is not None and did == host_did,
        mentions_host=host_did is not None
        and (
            host_did in mentions
            or (
                quoted is not None
                and host_prefix is not None
                and quoted.remote_id.startswith(host_prefix)
            )
        ),
        is_bot=profile.is_bot,
        author_checked=profile.checked,
        raw=raw,
    )


def events_from_commit(
    commit: Commit,
    *,
    platform: PlatformName,
    profile: Profile,
    host_did: str | None,
) -> list[Event]:
    """The events one relevant commit stands for (raises MalformedRecord on bad shapes)."""
    if commit.collection == POST and commit.operation == "delete":
        return [
            PostDeleted(
                platform=platform,
                remote_id=RemoteId(commit.uri),
                deleted_at=commit.time,
                author_id=commit.did,
            )
        ]
    if commit.record is None:
        raise MalformedRecord(f"{commit.operation} without a record")
    raw = orjson.dumps(
        {
            "did": commit.did,
            "collection": commit.collection,
            "rkey": commit.rkey,
            "operation": commit.operation,
            "cid": commit.cid,
            "record": commit.record,
        }
    ).decode()
    if commit.collection == POST:
        post = post_from_record(
            platform=platform,
            uri=commit.uri,
            cid=commit.cid,
            record=commit.record,
            profile=profile,
            host_did=host_did,
            fallback_time=commit.time,
            raw=raw,
        )
        if commit.operation == "update":
            return [PostEdited(post=post, edited_at=commit.time)]
        return [PostReceived(post=post)]
    if commit.collection == REPOST and commit.operation == "create":
        subject = _strong_ref(commit.record.get("subject"))
        if subject is None:
            raise MalformedRecord("repost without a subject")
        return [
            RepostSeen(
                platform=platform,
                remote_id=RemoteId(commit.uri),
                author=Author(
                    platform=platform,
                    author_id=commit.did,
                    handle=profile.handle,
                    display_name=profile.display_name,
                ),
                subject=subject,
                created_at=parse_time(commit.record.get("createdAt"), commit.time),
            )
        ]
    return []


def profile_from_view(view: Mapping[str, Any]) -> Profile:
    """A profile from an actor view (getProfiles, a PostView's author)."""
    did = view.get("did")
    labels = view.get("labels") or []
    is_bot = any(
        isinstance(label, Mapping)
        and label.get("val") == "bot"
        and label.get("src") == did
        and not label.get("neg")
        for label in labels
    )
    handle = view.get("handle")
    name = view.get("displayName") or view.get("display_name")
    return Profile(
        handle=str(handle) if handle and handle != "handle.invalid" else str(did),
        display_name=str(name) if name else None,
        is_bot=is_bot,
    )
