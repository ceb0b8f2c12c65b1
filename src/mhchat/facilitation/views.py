"""Read models for the dashboard and transcripts: sessions, grouped posts, safety queue, figures.

Only reads; every function takes an open transaction (``db.read()``) and returns frozen rows.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from mhchat.store.db import Tx


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionRow:
    session_id: str
    starts_at: datetime
    ends_at: datetime
    topic: str
    posts: int


@dataclass(frozen=True, slots=True, kw_only=True)
class PostView:
    platform: str
    remote_id: str
    author_id: str
    author_handle: str
    text: str
    created_at: datetime
    url: str | None
    thread_root: str | None
    question_n: int | None
    is_own: bool
    triage: str | None
    note: str | None
    first_timer: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class Thread:
    platform: str
    root: str
    posts: tuple[PostView, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class QuestionGroup:
    n: int | None
    """None groups the posts that answer no question."""
    text: str | None
    threads: tuple[Thread, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class FlagView:
    id: int
    platform: str
    remote_id: str
    session_id: str | None
    category: str
    reason: str
    state: str
    created_at: datetime
    expires_at: datetime
    text: str | None
    url: str | None
    author_handle: str | None
    signpost_key: str | None
    signpost_state: str | None
    signpost_text: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionFigures:
    session_id: str
    participants: int
    posts_by_platform: dict[str, int]
    threads: int
    first_timers: int
    welcomes: int
    reposts: int
    flags: dict[str, int]
    deletions_honoured: int
    per_minute: dict[str, dict[str, int]] = field(default_factory=dict)
    """platform -> "YYYY-MM-DDTHH:MM" (UTC minute) -> posts."""


def _dt(value: object) -> datetime:
    return datetime.fromisoformat(str(value))


async def sessions(tx: Tx, chat_id: str, limit: int = 100) -> list[SessionRow]:
    rows = await tx.fetchall(
        "SELECT s.session_id, s.starts_at, s.ends_at, s.topic,"
        " (SELECT COUNT(*) FROM posts p"
        " WHERE p.chat_id = s.chat_id AND p.session_id = s.session_id)"
        " FROM chat_sessions s WHERE s.chat_id = ? ORDER BY s.starts_at DESC LIMIT ?",
        (chat_id, limit),
    )
    return [
        SessionRow(
            session_id=str(r[0]),
            starts_at=_dt(r[1]),
            ends_at=_dt(r[2]),
            topic=str(r[3]),
            posts=int(r[4]),
        )
        for r in rows
    ]


_POST_SELECT = (
    "SELECT p.platform, p.remote_id, p.author_id, p.author_handle, p.text, p.created_at, p.url,"
    " p.thread_root, p.question_n, p.is_own, p.triage, p.note, pa.first_post_id"
    " FROM posts p LEFT JOIN participants pa ON pa.chat_id = p.chat_id"
    " AND pa.platform = p.platform AND pa.author_id = p.author_id"
)


def _post(r: tuple[object, ...]) -> PostView:
    return PostView(
        platform=str(r[0]),
        remote_id=str(r[1]),
        author_id=str(r[2]),
        author_handle=str(r[3]),
        text=str(r[4]),
        created_at=_dt(r[5]),
        url=None if r[6] is None else str(r[6]),
        thread_root=None if r[7] is None else str(r[7]),
        question_n=None if r[8] is None else int(str(r[8])),
        is_own=bool(r[9]),
        triage=None if r[10] is None else str(r[10]),
        note=None if r[11] is None else str(r[11]),
        first_timer=r[12] is not None and str(r[12]) == str(r[1]),
    )


async def session_posts(tx: Tx, chat_id: str, session_id: str) -> list[PostView]:
    rows = await tx.fetchall(
        _POST_SELECT + " WHERE p.chat_id = ? AND p.session_id = ? ORDER BY p.created_at, p.id",
        (chat_id, session_id),
    )
    return [_post(r) for r in rows]


async def grouped(tx: Tx, chat_id: str, session_id: str) -> list[QuestionGroup]:
    """The session's posts by question (1..n, then the rest), each as reply-tree threads."""
    posts = await session_posts(tx, chat_id, session_id)
    texts = {
        int(r[0]): str(r[1])
        for r in await tx.fetchall(
            "SELECT n, text FROM session_questions WHERE chat_id = ? AND session_id = ?",
            (chat_id, session_id),
        )
    }
    by_question: dict[int | None, dict[tuple[str, str], list[PostView]]] = defaultdict(
        lambda: defaultdict(list)
    )
    for post in posts:
        by_question[post.question_n][(post.platform, post.thread_root or post.remote_id)].append(
            post
        )
    groups: list[QuestionGroup] = []
    for n in sorted(by_question, key=lambda q: (q is None, q or 0)):
        threads = tuple(
            Thread(platform=platform, root=root, posts=tuple(items))
            for (platform, root), items in sorted(
                by_question[n].items(), key=lambda kv: kv[1][0].created_at
            )
        )
        groups.append(
            QuestionGroup(n=n, text=texts.get(n) if n is not None else None, threads=threads)
        )
    return groups


async def safety_queue(
    tx: Tx, chat_id: str, now: datetime, *, include_handled: bool = False
) -> list[FlagView]:
    """Flags a person should look at, crisis first, newest first within a category."""
    state_cond = "" if include_handled else " AND f.state = 'open'"
    rows = await tx.fetchall(
        "SELECT f.id, f.platform, f.remote_id, f.session_id, f.category, f.reason, f.state,"  # noqa: S608 - placeholders only
        " f.created_at, f.expires_at, p.text, p.url, p.author_handle, f.signpost_key,"
        " a.state, a.payload"
        " FROM safety_flags f"
        " LEFT JOIN posts p ON p.chat_id = f.chat_id AND p.platform = f.platform"
        " AND p.remote_id = f.remote_id"
        " LEFT JOIN actions a ON a.chat_id = f.chat_id AND a.key = f.signpost_key"
        f" WHERE f.chat_id = ? AND f.expires_at > ?{state_cond}"
        " ORDER BY CASE f.category WHEN 'crisis' THEN 0 WHEN 'abuse' THEN 1 ELSE 2 END,"
        " f.created_at DESC",
        (chat_id, now.isoformat()),
    )
    import orjson  # noqa: PLC0415 - imported on first use

    result = []
    for r in rows:
        signpost_text = None
        if r[14] is not None:
            signpost_text = str(orjson.loads(str(r[14])).get("text"))
        result.append(
            FlagView(
                id=int(r[0]),
                platform=str(r[1]),
                remote_id=str(r[2]),
                session_id=None if r[3] is None else str(r[3]),
                category=str(r[4]),
                reason=str(r[5]),
                state=str(r[6]),
                created_at=_dt(r[7]),
                expires_at=_dt(r[8]),
                text=None if r[9] is None else str(r[9]),
                url=None if r[10] is None else str(r[10]),
                author_handle=None if r[11] is None else str(r[11]),
                signpost_key=None if r[12] is None else str(r[12]),
                signpost_state=None if r[13] is None else str(r[13]),
                signpost_text=signpost_text,
            )
        )
    return result


async def set_flag_state(tx: Tx, chat_id: str, flag_id: int, state: str, now: datetime) -> bool:
    """Mark a flag handled or dismissed (the dashboard's buttons)."""
    if state not in {"open", "handled", "dismissed"}:
        raise ValueError(f"unknown flag state {state!r}")
    changed = await tx.execute(
        "UPDATE safety_flags SET state = ?, handled_at = ? WHERE chat_id = ? AND id = ?",
        (state, now.isoformat(), chat_id, flag_id),
    )
    return changed > 0


async def figures(tx: Tx, chat_id: str, session_id: str) -> SessionFigures:
    async def one(sql: str, params: tuple[object, ...]) -> int:
        row = await tx.fetchone(sql, params)
        return int(row[0]) if row and row[0] is not None else 0

    p = (chat_id, session_id)
    by_platform = {
        str(r[0]): int(r[1])
        for r in await tx.fetchall(
            "SELECT platform, COUNT(*) FROM posts"
            " WHERE chat_id = ? AND session_id = ? AND is_own = 0"
            " GROUP BY platform",
            p,
        )
    }
    flags = {
        str(r[0]): int(r[1])
        for r in await tx.fetchall(
            "SELECT category, COUNT(*) FROM safety_flags WHERE chat_id = ? AND session_id = ?"
            " GROUP BY category",
            p,
        )
    }
    per_minute: dict[str, dict[str, int]] = defaultdict(dict)
    for r in await tx.fetchall(
        "SELECT platform, substr(created_at, 1, 16), COUNT(*) FROM posts WHERE chat_id = ? AND"
        " session_id = ?"
        " AND is_own = 0 GROUP BY platform, substr(created_at, 1, 16)",
        p,
    ):
        per_minute[str(r[0])][str(r[1])] = int(r[2])
    session = await tx.fetchone(
        "SELECT starts_at, closes_at FROM chat_sessions WHERE chat_id = ? AND session_id = ?", p
    )
    deletions = 0
    if session is not None:
        deletions = await one(
            "SELECT COUNT(*) FROM tombstones"
            " WHERE chat_id = ? AND deleted_at >= ? AND deleted_at < ?",
            (chat_id, str(session[0]), str(session[1])),
        )
    return SessionFigures(
        session_id=session_id,
        participants=await one(
            "SELECT COUNT(*) FROM (SELECT DISTINCT platform, author_id FROM posts"
            " WHERE chat_id = ? AND session_id = ? AND is_own = 0) AS people",
            p,
        ),
        posts_by_platform=by_platform,
        threads=await one(
            "SELECT COUNT(*) FROM (SELECT DISTINCT platform, thread_root FROM posts"
            " WHERE chat_id = ? AND session_id = ?) AS threads",
            p,
        ),
        first_timers=await one(
            "SELECT COUNT(*) FROM posts p JOIN participants pa ON pa.chat_id = p.chat_id AND"
            " pa.platform = p.platform AND pa.author_id = p.author_id"
            " AND pa.first_post_id = p.remote_id"
            " WHERE p.chat_id = ? AND p.session_id = ?",
            p,
        ),
        welcomes=await one(
            "SELECT COUNT(*) FROM welcomes WHERE chat_id = ? AND session_id = ?", p
        ),
        reposts=await one(
            "SELECT COUNT(*) FROM session_reposts WHERE chat_id = ? AND session_id = ?", p
        ),
        flags=flags,
        deletions_honoured=deletions,
        per_minute=dict(per_minute),
    )
