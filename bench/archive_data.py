"""A years-long archive, written fast: sessions, posts, participants, decisions and flags.

Rows go straight into a migrated SQLite file with ``executemany`` (the ingest path would take
hours for a million posts, and what is measured here is reading). The shape follows what the
service writes: weekly sessions with six questions, posts grouped by question and thread with
a triage verdict and a note, first posts of participants, reposts and welcomes with their
ledger actions and transitions, safety flags (expired but the latest session's), deletions.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

from mhchat.store.chats import ensure_chat
from mhchat.store.db import SqliteDatabase
from mhchat.store.migrate import migrate

LATEST_SESSION = datetime(2026, 11, 25, 20, 0, tzinfo=UTC)
"""The newest session is the bench's live one; older ones go back a week each."""
PLATFORMS = ("x", "bluesky", "facebook")


def session_start(k: int, sessions: int) -> datetime:
    return LATEST_SESSION - timedelta(weeks=sessions - 1 - k)


def session_id(k: int, sessions: int) -> str:
    return session_start(k, sessions).date().isoformat()


async def prepare(path: Path) -> None:
    """The schema, as the service's own migrations make it, and the chat."""
    db = await SqliteDatabase.open(path)
    try:
        await migrate(db)
        await ensure_chat(db, "default", "MHChat", datetime(2010, 1, 1, tzinfo=UTC))
    finally:
        await db.close()


def build_archive(path: Path, *, sessions: int, posts_per_session: int) -> str:
    """Write the archive; returns the id of the latest session (the one a live view shows).

    The file must already hold the migrated schema and the chat (``prepare``)."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=OFF")
    authors = max(50, sessions * 40)
    for k in range(sessions):
        conn.execute("BEGIN")
        _session(conn, k, sessions, posts_per_session, authors)
        conn.execute("COMMIT")
    conn.execute("ANALYZE")
    conn.close()
    return session_id(sessions - 1, sessions)


def _posts(k: int, sessions: int, n: int, authors: int) -> Iterator[tuple[object, ...]]:
    sid = session_id(k, sessions)
    start = session_start(k, sessions)
    for i in range(n):
        platform = PLATFORMS[i % 3]
        remote = f"{k}-{i}"
        author = f"a{(k * 37 + i * 7) % authors}"
        at = (start + timedelta(seconds=3600 * i / n)).isoformat()
        q = i * 6 // n + 1
        root = f"{k}-{i - i % 5}"
        verdict = "crisis" if i % 997 == 0 else "ok"
        yield (
            "default", platform, remote, None, author, f"{author}.handle", None,
            f"A{q} an answer in session {k}, number {i}, with some words to make it real #MHChat",
            at, at, f"{k}-{i - 1}" if i % 5 else None, None, root, None, None,
            "mhchat", "", "", "en", f"https://example.invalid/{remote}", 0, 0, 0, None,
            root, q, q, sid, verdict, "reposted: fair reposts" if i % 13 == 0 else None,
        )  # fmt: skip


def _session(conn: sqlite3.Connection, k: int, sessions: int, n: int, authors: int) -> None:
    sid = session_id(k, sessions)
    start = session_start(k, sessions)
    latest = k == sessions - 1
    end = start + timedelta(hours=1)
    conn.execute(
        "INSERT INTO chat_sessions (chat_id, session_id, starts_at, ends_at, closes_at, zone,"
        " topic, created_at) VALUES ('default', ?, ?, ?, ?, 'Europe/London', ?, ?)",
        (sid, start.isoformat(), end.isoformat(), (end + timedelta(hours=3)).isoformat(),
         f"Topic {k}", start.isoformat()),
    )  # fmt: skip
    conn.executemany(
        "INSERT INTO session_questions VALUES ('default', ?, ?, ?, ?)",
        [(sid, q, f"Q{q} question {q} of session {k}", start.isoformat()) for q in range(1, 7)],
    )
    conn.executemany(
        "INSERT INTO posts (chat_id, platform, remote_id, version, author_id, author_handle,"
        " author_name, text, created_at, received_at, parent_id, parent_version, root_id,"
        " root_version, quoted_id, hashtags, mentions, links, language, url, is_own,"
        " mentions_host, is_bot, raw, thread_root, question_tag, question_n, session_id, triage,"
        " note) VALUES (" + ", ".join("?" * 30) + ")",
        _posts(k, sessions, n, authors),
    )
    # First-ever posts of new participants, one tenth of a session's authors.
    stamp = start.isoformat()
    conn.executemany(
        "INSERT INTO participants (chat_id, platform, author_id, handle, first_seen_at,"
        " first_post_id) VALUES ('default', ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        [
            (PLATFORMS[i % 3], f"a{(k * 37 + i * 7) % authors}", "h", stamp, f"{k}-{i}")
            for i in range(0, n, 10)
        ],
    )
    acted = list(range(0, n, 13))
    conn.executemany(
        "INSERT INTO session_reposts VALUES ('default', ?, ?, ?, ?, 1, ?)",
        [(sid, PLATFORMS[i % 3], f"a{i}", f"{k}-{i}", stamp) for i in acted],
    )
    conn.executemany(
        "INSERT INTO welcomes VALUES ('default', ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        [(PLATFORMS[i % 3], f"a{(k * 37 + i * 7) % authors}", sid, f"{k}-{i}", stamp)
         for i in range(0, n, 10)],
    )  # fmt: skip
    first_action = conn.execute("SELECT coalesce(max(id), 0) FROM actions").fetchone()[0] + 1
    actions = []
    for i in acted:
        platform = PLATFORMS[i % 3]
        payload = orjson.dumps(
            {"kind": "repost", "key": f"repost:{platform}:{k}-{i}", "platform": platform,
             "purpose": "repost", "target": {"remote_id": f"{k}-{i}", "version": None},
             "not_after": None}
        ).decode()  # fmt: skip
        state = "awaiting_approval" if latest and i % 91 == 0 else "sent"
        actions.append(
            ("default", f"repost:{platform}:{k}-{i}", platform, "repost", "repost", payload,
             state, "auto", "fair reposts: first repost this session", f"{k}-{i}",
             None, None, stamp, stamp)
        )  # fmt: skip
    conn.executemany(
        "INSERT INTO actions (chat_id, key, platform, kind, purpose, payload, state, mode,"
        " reason, target_id, not_after, not_before, created_at, updated_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        actions,
    )
    conn.executemany(
        "INSERT INTO action_transitions (action_id, from_state, to_state, at, detail)"
        " VALUES (?, ?, ?, ?, ?)",
        [(first_action + j, s, t, stamp, None) for j in range(len(actions))
         for s, t in ((None, "pending"), ("pending", "sending"), ("sending", "sent"))],
    )  # fmt: skip
    expires = (end + timedelta(days=30)).isoformat()
    conn.executemany(
        "INSERT INTO safety_flags (chat_id, platform, remote_id, session_id, category, reason,"
        " score, created_at, expires_at, state) VALUES ('default', ?, ?, ?, 'crisis',"
        " 'possible crisis language', 1.0, ?, ?, ?)",
        [(PLATFORMS[i % 3], f"{k}-{i}", sid, stamp, expires, "open" if latest else "handled")
         for i in range(0, n, 997)],
    )  # fmt: skip
    # About one post in two hundred is deleted later: a tombstone, and the row is gone.
    dead = [(PLATFORMS[i % 3], f"{k}-{i}") for i in range(3, n, 199)]
    conn.executemany(
        "INSERT INTO tombstones (chat_id, platform, remote_id, deleted_at)"
        " VALUES ('default', ?, ?, ?)",
        [(p, r, stamp) for p, r in dead],
    )
    conn.executemany(
        "DELETE FROM posts WHERE chat_id = 'default' AND platform = ? AND remote_id = ?", dead
    )
