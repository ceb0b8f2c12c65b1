"""Inbound, platform-neutral domain events (past tense).

Adapters parse platform payloads into these at the edge; nothing past the adapter sees a
platform's JSON except as the opaque ``raw`` audit copy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import NewType

PlatformName = NewType("PlatformName", str)
"""The adapter's entry-point name (``x``, ``bluesky``, ``facebook``, ``fake``).

A string rather than a closed enum so that a third-party adapter package can add a platform
without editing the core.
"""

RemoteId = NewType("RemoteId", str)
"""A post's id on its platform (tweet id, at:// URI, Facebook object id)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Author:
    """A person's identity on one platform. Health information is never attached here."""

    platform: PlatformName
    author_id: str
    handle: str
    display_name: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class PostRef:
    """A reference to a post: its id plus the platform's content version where one exists.

    Bluesky needs both (a strong ref is uri + cid) to reply to or repost a post.
    """

    remote_id: RemoteId
    version: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Post:
    """One post, comment or reply, normalised."""

    platform: PlatformName
    remote_id: RemoteId
    author: Author
    text: str
    created_at: datetime
    version: str | None = None
    reply_parent: PostRef | None = None
    reply_root: PostRef | None = None
    quoted: PostRef | None = None
    hashtags: tuple[str, ...] = ()
    mentions: tuple[str, ...] = ()
    links: tuple[str, ...] = ()
    language: str | None = None
    url: str | None = None
    is_own: bool = False
    """True when the host account wrote it (our questions, replies and comments)."""
    mentions_host: bool = False
    """True when the author @mentioned or quoted the host (X allows replies only then)."""
    is_bot: bool = False
    """True when the platform labels the author as automated."""
    author_checked: bool = True
    """False when the adapter had to ask the platform whether the author is automated and got
    no answer (a failed profile lookup): ``is_bot`` is then only a guess, so the post is never
    amplified. True otherwise, also where the platform has no such label to look up."""
    raw: str | None = field(default=None, repr=False)
    """The platform payload as JSON text, kept for audit only."""

    @property
    def ref(self) -> PostRef:
        return PostRef(remote_id=self.remote_id, version=self.version)


@dataclass(frozen=True, slots=True, kw_only=True)
class PostReceived:
    post: Post

    @property
    def platform(self) -> PlatformName:
        return self.post.platform


@dataclass(frozen=True, slots=True, kw_only=True)
class PostEdited:
    post: Post
    edited_at: datetime

    @property
    def platform(self) -> PlatformName:
        return self.post.platform


@dataclass(frozen=True, slots=True, kw_only=True)
class PostDeleted:
    platform: PlatformName
    remote_id: RemoteId
    deleted_at: datetime
    author_id: str | None = None
    with_replies: bool = False
    """The platform deleted the replies with the post (a Facebook post takes its comments, and
    a comment its replies, with it); elsewhere replies outlive their parent."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RepostSeen:
    """Someone reposted a post (e.g. one of our questions)."""

    platform: PlatformName
    remote_id: RemoteId
    author: Author
    subject: PostRef
    created_at: datetime


class HealthStatus(StrEnum):
    OK = "ok"
    DEGRADED = "degraded"
    RATE_LIMITED = "rate_limited"
    AUTH_EXPIRED = "auth_expired"
    DOWN = "down"
    STOPPED = "stopped"


@dataclass(frozen=True, slots=True, kw_only=True)
class Budget:
    """What a platform still allows for one kind of call, from its live headers."""

    limit: int | None
    remaining: int | None
    resets_at: datetime | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Health:
    status: HealthStatus
    detail: str = ""
    budgets: tuple[tuple[str, Budget], ...] = ()
    counters: tuple[tuple[str, int], ...] = ()
    """Plain figures a facilitator may need (malformed frames skipped, reconnects, ...)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class AdapterHealthChanged:
    platform: PlatformName
    health: Health
    at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class PersonForgetRequested:
    """A person asked the platform to have their data deleted (Meta's data-deletion callback).

    The core forgets everything it holds for ``author_id`` on ``platform``. The
    ``confirmation_code`` is what the platform gave the person to follow up their request.
    """

    platform: PlatformName
    author_id: str
    requested_at: datetime
    confirmation_code: str


Event = (
    PostReceived
    | PostEdited
    | PostDeleted
    | RepostSeen
    | AdapterHealthChanged
    | PersonForgetRequested
)
