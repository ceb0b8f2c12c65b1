"""What the dashboard reads: the live feed's posts with the decisions about them, the ledger
lists a facilitator acts on, adapter health, and a session's activity over time."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from mhchat import ledger
from mhchat.actions import Publish, Reply
from mhchat.ledger import LedgerRow, State
from mhchat.runtime import Runtime
from mhchat.store.db import Tx

FEED_LIMIT = 300
_CHUNK = 200

_POSTS = (
    "SELECT p.platform, p.remote_id, p.author_handle, p.text, p.created_at, p.url, p.thread_root,"
    " p.question_n, p.is_own, p.triage, p.note, p.session_id, pa.first_post_id, p.id"
    " FROM posts p LEFT JOIN participants pa ON pa.chat_id = p.chat_id"
    " AND pa.platform = p.platform AND pa.author_id = p.author_id"
)


def _post(row: Sequence[object]) -> dict[str, Any]:
    remote_id = str(row[1])
    root = None if row[6] is None else str(row[6])
    return {
        "id": int(str(row[13])),
        "platform": str(row[0]),
        "remote_id": remote_id,
        "author": str(row[2]),
        "text": str(row[3]),
        "created_at": str(row[4]),
        "url": None if row[5] is None else str(row[5]),
        "thread": f"{row[0]}:{root or remote_id}",
        "is_reply": root is not None and root != remote_id,
        "question": None if row[7] is None else int(str(row[7])),
        "own": bool(row[8]),
        "triage": None if row[9] is None else str(row[9]),
        "note": None if row[10] is None else str(row[10]),
        "session": None if row[11] is None else str(row[11]),
        "first_timer": row[12] is not None and str(row[12]) == remote_id,
        "decisions": [],
    }


async def _attach_decisions(tx: Tx, chat_id: str, posts: list[dict[str, Any]]) -> None:
    by_key = {(p["platform"], p["remote_id"]): p for p in posts}
    keys = sorted(by_key)
    for start in range(0, len(keys), _CHUNK):
        part = keys[start : start + _CHUNK]
        cond = " OR ".join("(platform = ? AND target_id = ?)" for _ in part)
        params: list[object] = [chat_id]
        for pair in part:
            params.extend(pair)
        rows = await tx.fetchall(
            "SELECT platform, target_id, purpose, state, reason, detail FROM actions"  # noqa: S608
            f" WHERE chat_id = ? AND ({cond}) ORDER BY id",
            params,
        )
        for r in rows:
            post = by_key.get((str(r[0]), str(r[1])))
            if post is not None:
                post["decisions"].append(
                    {
                        "purpose": str(r[2]),
                        "state": str(r[3]),
                        "reason": str(r[4]),
                        "detail": None if r[5] is None else str(r[5]),
                    }
                )


async def question_texts(tx: Tx, chat_id: str, sessions: Iterable[str]) -> dict[str, str]:
    """ "session/n" -> question text, for the feed's group headings."""
    found: dict[str, str] = {}
    for session_id in sorted(set(sessions)):
        for r in await tx.fetchall(
            "SELECT n, text FROM session_questions WHERE chat_id = ? AND session_id = ?",
            (chat_id, session_id),
        ):
            found[f"{session_id}/{r[0]}"] = str(r[1])
    return found


async def recent_posts(tx: Tx, chat_id: str, limit: int = FEED_LIMIT) -> list[dict[str, Any]]:
    rows = await tx.fetchall(
        _POSTS + " WHERE p.chat_id = ? ORDER BY p.id DESC LIMIT ?", (chat_id, limit)
    )
    posts = [_post(r) for r in reversed(rows)]
    await _attach_decisions(tx, chat_id, posts)
    return posts


async def posts_by_keys(
    tx: Tx, chat_id: str, keys: Sequence[tuple[str, str]]
) -> list[dict[str, Any]]:
    posts: list[dict[str, Any]] = []
    for start in range(0, len(keys), _CHUNK):
        part = keys[start : start + _CHUNK]
        cond = " OR ".join("(p.platform = ? AND p.remote_id = ?)" for _ in part)
        params: list[object] = [chat_id]
        for pair in part:
            params.extend(pair)
        rows = await tx.fetchall(
            _POSTS + f" WHERE p.chat_id = ? AND ({cond}) ORDER BY p.id",
            params,
        )
        posts.extend(_post(r) for r in rows)
    await _attach_decisions(tx, chat_id, posts)
    return posts


async def posts_about(
    tx: Tx, chat_id: str, rows: Sequence[LedgerRow]
) -> dict[tuple[str, str], dict[str, Any]]:
    """The stored posts these actions reply to or repost, by (platform, remote id)."""
    keys = sorted(
        {
            (row.action.platform, str(target))
            for row in rows
            if (target := action_summary(row)["about"]) is not None
        }
    )
    if not keys:
        return {}
    found = await posts_by_keys(tx, chat_id, keys)
    return {(p["platform"], p["remote_id"]): p for p in found}


def action_text(row: LedgerRow) -> str:
    action = row.action
    if isinstance(action, Publish | Reply):
        return action.text
    return ""


def action_summary(row: LedgerRow) -> dict[str, Any]:
    action = row.action
    about = None
    if isinstance(action, Reply):
        about = action.parent.remote_id
    elif hasattr(action, "target"):
        about = action.target.remote_id
    return {
        "id": row.id,
        "key": row.key,
        "platform": action.platform,
        "kind": action.kind.value,
        "purpose": action.purpose.value,
        "state": row.state.value,
        "reason": row.reason,
        "detail": row.detail,
        "text": action_text(row),
        "about": about,
        "updated_at": row.updated_at.isoformat(),
    }


async def ledger_lists(tx: Tx, chat_id: str) -> dict[str, list[LedgerRow]]:
    return {
        "approvals": await ledger.by_state(tx, chat_id, [State.AWAITING_APPROVAL]),
        "unknown": await ledger.by_state(tx, chat_id, [State.UNKNOWN]),
    }


async def recent_decisions(tx: Tx, chat_id: str, limit: int = 40) -> list[LedgerRow]:
    rows = await tx.fetchall(
        "SELECT id, chat_id, key, payload, state, mode, reason, attempts, remote_id, detail,"
        " created_at, updated_at FROM actions WHERE chat_id = ? ORDER BY updated_at DESC, id DESC"
        " LIMIT ?",
        (chat_id, limit),
    )
    return [ledger.row_to_ledger(r) for r in rows]


async def newest_transition(tx: Tx) -> int:
    row = await tx.fetchone("SELECT COALESCE(MAX(id), 0) FROM action_transitions")
    return int(row[0]) if row else 0


async def touched_since(tx: Tx, chat_id: str, since: int) -> tuple[list[tuple[str, str]], int]:
    """Posts whose actions changed state after transition ``since``, and the newest seen.

    Transition ids only grow, unlike timestamps: two changes in the same clock tick (or under
    a clock that stands still) are never mistaken for one already pushed.
    """
    rows = await tx.fetchall(
        "SELECT a.platform, a.target_id, MAX(t.id) FROM action_transitions t"
        " JOIN actions a ON a.id = t.action_id"
        " WHERE a.chat_id = ? AND t.id > ? AND a.target_id IS NOT NULL"
        " GROUP BY a.platform, a.target_id",
        (chat_id, since),
    )
    newest = max([since, *(int(r[2]) for r in rows)])
    return [(str(r[0]), str(r[1])) for r in rows], newest


async def fingerprint(tx: Tx, chat_id: str) -> str:
    """Changes whenever a panel a facilitator acts on would change."""
    a = await tx.fetchone(
        "SELECT COUNT(*), MAX(updated_at) FROM actions WHERE chat_id = ?", (chat_id,)
    )
    f = await tx.fetchone(
        "SELECT COUNT(*), MAX(id), MAX(handled_at) FROM safety_flags WHERE chat_id = ?", (chat_id,)
    )
    s = await tx.fetchone("SELECT MAX(updated_at) FROM switches WHERE chat_id = ?", (chat_id,))
    return repr((a, f, s))


def health(runtime: Runtime) -> list[dict[str, Any]]:
    """Each adapter's status, live rate budgets, counters and its sender's figures."""
    found: list[dict[str, Any]] = []
    for name, slot in sorted(runtime.slots.items()):
        h = slot.health()
        sender = slot.sender
        stats = None
        if sender is not None:
            st = sender.stats
            stats = {
                "sent": st.sent,
                "skipped": st.skipped,
                "failed": st.failed,
                "unknown": st.unknown,
                "retried": st.retried,
                "paused_until": st.paused_until.isoformat() if st.paused_until else None,
            }
        found.append(
            {
                "platform": name,
                "status": h.status.value,
                "detail": h.detail,
                "budgets": [
                    {
                        "name": budget_name,
                        "limit": b.limit,
                        "remaining": b.remaining,
                        "resets_at": b.resets_at.isoformat() if b.resets_at else None,
                    }
                    for budget_name, b in h.budgets
                ],
                "counters": [{"name": n, "value": v} for n, v in h.counters],
                "sender": stats,
            }
        )
    return found


def _minute(value: object) -> str:
    return str(value)[:16]


async def activity(tx: Tx, chat_id: str, session_id: str) -> dict[str, Any]:
    """Per-minute series for a session's charts (UTC minutes, "YYYY-MM-DDTHH:MM")."""
    posts = await tx.fetchall(
        "SELECT p.platform, p.created_at, p.author_id, pa.first_post_id, p.remote_id"
        " FROM posts p LEFT JOIN participants pa ON pa.chat_id = p.chat_id"
        " AND pa.platform = p.platform AND pa.author_id = p.author_id"
        " WHERE p.chat_id = ? AND p.session_id = ? AND p.is_own = 0"
        " ORDER BY p.created_at",
        (chat_id, session_id),
    )
    per_platform: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    new_people: dict[str, int] = defaultdict(int)
    first_timers: dict[str, int] = defaultdict(int)
    seen: set[tuple[str, str]] = set()
    for platform, created, author, first_post, remote in posts:
        minute = _minute(created)
        per_platform[str(platform)][minute] += 1
        who = (str(platform), str(author))
        if who not in seen:
            seen.add(who)
            new_people[minute] += 1
        if first_post is not None and str(first_post) == str(remote):
            first_timers[minute] += 1
    reposts: dict[str, int] = defaultdict(int)
    for (decided,) in await tx.fetchall(
        "SELECT decided_at FROM session_reposts WHERE chat_id = ? AND session_id = ?",
        (chat_id, session_id),
    ):
        reposts[_minute(decided)] += 1
    minutes = _every_minute(
        sorted({m for series in per_platform.values() for m in series} | set(reposts))
    )
    return {
        "session": session_id,
        "minutes": minutes,
        "posts": {
            p: [series.get(m, 0) for m in minutes] for p, series in sorted(per_platform.items())
        },
        "participants": _cumulative([new_people.get(m, 0) for m in minutes]),
        "first_timers": _cumulative([first_timers.get(m, 0) for m in minutes]),
        "reposts": _cumulative([reposts.get(m, 0) for m in minutes]),
    }


MAX_MINUTES = 24 * 60


def _every_minute(seen: list[str]) -> list[str]:
    """Every minute from the first to the last with activity, so the time axis is even."""
    if not seen:
        return []
    try:
        first = datetime.fromisoformat(seen[0])
        last = datetime.fromisoformat(seen[-1])
    except ValueError:
        return seen
    count = int((last - first).total_seconds() // 60) + 1
    if count > MAX_MINUTES:
        return seen
    return [(first + timedelta(minutes=i)).strftime("%Y-%m-%dT%H:%M") for i in range(count)]


def _cumulative(values: list[int]) -> list[int]:
    total, out = 0, []
    for v in values:
        total += v
        out.append(total)
    return out


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value)
