"""What one stored batch's facilitation decisions are made from."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from mhchat.events import Post
from mhchat.facilitation.schedule import Session
from mhchat.facilitation.threads import Link, PostKey
from mhchat.facilitation.triage.classifier import TriageResult
from mhchat.store.posts import StoredBatch

Author = tuple[str, str]
"""(platform, author id)."""


@dataclass(slots=True)
class Status:
    opted_out: bool = False
    blocked: bool = False
    first_seen_at: datetime | None = None


@dataclass(slots=True, kw_only=True)
class BatchView:
    """What one batch's decisions are made from."""

    batch: StoredBatch
    verdicts: dict[PostKey, TriageResult]
    sessions: dict[PostKey, Session | None]
    grouped: dict[PostKey, Link]
    status: dict[Author, Status]
    forget: set[Author]
    requests: set[PostKey]
    """Posts that asked the host for something: never amplified."""
    first_posts: dict[Author, Post]
    """Each person's first post ever, when it is in this batch."""
    newcomers: dict[Author, Post]
    """People not welcomed yet and first seen within the last week: the post to welcome."""
    notes: dict[PostKey, str]


def key_of(post: Post) -> PostKey:
    return (post.platform, post.remote_id)
