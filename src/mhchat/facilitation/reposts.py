"""Fair reposts: as many as each platform's budget allows, everyone once before anyone twice.

Two rounds per session and platform:

1. As posts arrive (pre-chat, live and after-hours), each participant's first eligible post
   is reposted while the budget lasts; answers to questions and first-ever posts go before
   other posts when a batch competes for the last places.
2. When the live hour is over, what is left of the budget goes to further posts, level by
   level: everyone's second before anyone's third, answers first.

A participant who has been reposted once this session is not reposted again in round 1, so
nobody gets a second repost before every participant seen during the live hour has had one.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

Author = tuple[str, str]
"""(platform, author id)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Candidate:
    platform: str
    remote_id: str
    version: str | None
    author: Author
    created_at: datetime
    is_answer: bool
    is_first_post: bool
    session_id: str

    @property
    def key(self) -> str:
        return f"repost:{self.platform}:{self.remote_id}"


def _priority(c: Candidate) -> tuple[bool, bool, datetime, str]:
    return (not c.is_answer, not c.is_first_post, c.created_at, c.remote_id)


def first_round(
    candidates: Iterable[Candidate], counts: Mapping[Author, int], remaining: int
) -> list[Candidate]:
    """At most one post per participant not yet reposted this session, best first."""
    if remaining <= 0:
        return []
    best: dict[Author, Candidate] = {}
    for c in candidates:
        if counts.get(c.author, 0) > 0:
            continue
        current = best.get(c.author)
        if current is None or _priority(c) < _priority(current):
            best[c.author] = c
    return sorted(best.values(), key=_priority)[:remaining]


def fill_round(
    candidates: Iterable[Candidate], counts: Mapping[Author, int], remaining: int
) -> list[Candidate]:
    """Spend ``remaining`` on further posts, level by level (n-th before anyone's n+1-th)."""
    if remaining <= 0:
        return []
    per_author: dict[Author, list[Candidate]] = defaultdict(list)
    for c in candidates:
        per_author[c.author].append(c)
    ranked: list[tuple[int, tuple[bool, bool, datetime, str], Candidate]] = []
    for author, posts in per_author.items():
        for index, c in enumerate(sorted(posts, key=_priority)):
            ranked.append((counts.get(author, 0) + index, _priority(c), c))
    ranked.sort(key=lambda item: (item[0], item[1]))
    return [c for _, _, c in ranked[:remaining]]


def reason_for(c: Candidate, round_no: int, used: int, budget: int) -> str:
    what = (
        "an answer to a question"
        if c.is_answer
        else ("their first post ever" if c.is_first_post else "a post")
    )
    if round_no == 1:
        return (
            f"fair reposts: first repost this session for this participant ({what});"
            f" {used + 1} of {budget} reposts on {c.platform} this session"
        )
    return (
        f"fair reposts after the live hour: everyone had one before anyone a second ({what});"
        f" {used + 1} of {budget} reposts on {c.platform} this session"
    )


def tally(rows: Sequence[tuple[object, ...]]) -> dict[Author, int]:
    """Counts per author from ``(platform, author_id, count)`` rows."""
    return {(str(r[0]), str(r[1])): int(str(r[2])) for r in rows}
