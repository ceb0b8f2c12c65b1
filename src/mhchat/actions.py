"""Outbound actions (imperative) and their results.

Every action carries a deterministic idempotency ``key``; the ledger refuses a second action with
the same key, which is how "never post twice" survives restarts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from mhchat.events import PlatformName, PostRef


class ActionKind(StrEnum):
    PUBLISH = "publish"
    REPLY = "reply"
    REPOST = "repost"
    UNREPOST = "unrepost"


class Purpose(StrEnum):
    """Why the service wants this action; budgets and modes are set per purpose."""

    QUESTION = "question"
    REMINDER = "reminder"
    INTRO = "intro"
    WELCOME = "welcome"
    SIGNPOSTING = "signposting"
    REPOST = "repost"
    UNDO_REPOST = "undo_repost"


@dataclass(frozen=True, slots=True, kw_only=True)
class Publish:
    key: str
    platform: PlatformName
    purpose: Purpose
    text: str
    not_after: datetime | None = None
    kind: ActionKind = ActionKind.PUBLISH


@dataclass(frozen=True, slots=True, kw_only=True)
class Reply:
    key: str
    platform: PlatformName
    purpose: Purpose
    text: str
    parent: PostRef
    root: PostRef
    parent_author_id: str | None = None
    parent_mentions_host: bool = False
    """Whether the post replied to @mentioned or quoted the host (X's reply rule)."""
    not_after: datetime | None = None
    kind: ActionKind = ActionKind.REPLY


@dataclass(frozen=True, slots=True, kw_only=True)
class Repost:
    key: str
    platform: PlatformName
    purpose: Purpose
    target: PostRef
    not_after: datetime | None = None
    kind: ActionKind = ActionKind.REPOST


@dataclass(frozen=True, slots=True, kw_only=True)
class Unrepost:
    key: str
    platform: PlatformName
    purpose: Purpose
    target: PostRef
    repost_id: str | None = None
    """Our repost's own id where the platform has one (a Bluesky repost record URI)."""
    not_after: datetime | None = None
    kind: ActionKind = ActionKind.UNREPOST


Action = Publish | Reply | Repost | Unrepost


@dataclass(frozen=True, slots=True, kw_only=True)
class Sent:
    remote_id: str
    """The id of what we created (post id, repost record); empty when the platform has none."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Skipped:
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Failed:
    error: str
    retryable: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Unknown:
    detail: str


ActionResult = Sent | Skipped | Failed | Unknown
