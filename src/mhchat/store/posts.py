"""Writing inbound events: posts (deduplicated), edits, deletions, participants, cursors.

One call writes a whole batch in the caller's transaction, with set-based statements
(``executemany`` and ``IN`` lists), so the cost per event stays close to a raw insert.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from mhchat.adapters import Checkpoint
from mhchat.events import (
    AdapterHealthChanged,
    Event,
    PlatformName,
    Post,
    PostDeleted,
    PostEdited,
    PostReceived,
    RemoteId,
    RepostSeen,
)
from mhchat.store.db import Tx, fetch_by_pairs

_POST_COLUMNS = (
    "chat_id, platform, remote_id, version, author_id, author_handle, author_name, text,"
    " created_at, received_at, parent_id, parent_version, root_id, root_version, quoted_id,"
    " hashtags, mentions, links, language, url, is_own, mentions_host, is_bot,"
    " author_checked, raw"
)
_POST_MARKS = ", ".join("?" for _ in _POST_COLUMNS.split(","))
INSERT_POST = (
    f"INSERT INTO posts ({_POST_COLUMNS}) VALUES ({_POST_MARKS})"  # noqa: S608 - constants
    " ON CONFLICT (chat_id, platform, remote_id) DO NOTHING"
)


def storable(text: str) -> str:
    """``text`` with NUL characters as U+FFFD: PostgreSQL text cannot hold NUL (a platform's
    text can), and both backends must store the same post the same way."""
    return text.replace("\x00", "\ufffd") if "\x00" in text else text


def post_row(chat_id: str, post: Post, received_at: str, *, keep_raw: bool) -> tuple[object, ...]:
    parent, root = post.reply_parent, post.reply_root
    return (
        chat_id,
        post.platform,
        post.remote_id,
        post.version,
        post.author.author_id,
        storable(post.author.handle),
        None if post.author.display_name is None else storable(post.author.display_name),
        storable(post.text),
        post.created_at.isoformat(),
        received_at,
        parent.remote_id if parent else None,
        parent.version if parent else None,
        root.remote_id if root else None,
        root.version if root else None,
        post.quoted.remote_id if post.quoted else None,
        " ".join(post.hashtags),
        " ".join(post.mentions),
        " ".join(post.links),
        post.language,
        post.url,
        int(post.is_own),
        int(post.mentions_host),
        int(post.is_bot),
        int(post.author_checked),
        post.raw if keep_raw else None,
    )


@dataclass(slots=True)
class StoredBatch:
    """What one ingest transaction changed, for the handlers that decide actions."""

    chat_id: str
    now: datetime
    new_posts: list[Post] = field(default_factory=list)
    first_timers: set[tuple[str, str]] = field(default_factory=set)
    """(platform, author_id) whose first-ever post is in ``new_posts``."""
    edited_posts: list[Post] = field(default_factory=list)
    deleted: list[PostDeleted] = field(default_factory=list)
    reposts: list[RepostSeen] = field(default_factory=list)
    health: list[AdapterHealthChanged] = field(default_factory=list)
    other: list[Event] = field(default_factory=list)
    duplicates: int = 0

    def parts(self) -> list[StoredBatch]:
        """The same changes as one batch per post or event, in the order a handler takes them
        (deletions first); a person's first-ever post stays their first in its own part."""
        found: list[StoredBatch] = []

        def part(**changes: Any) -> StoredBatch:
            return StoredBatch(chat_id=self.chat_id, now=self.now, **changes)

        found += [part(deleted=[d]) for d in self.deleted]
        firsts = set(self.first_timers)
        for post in sorted(self.new_posts, key=lambda p: p.created_at):
            one = part(new_posts=[post])
            author = (post.platform, post.author.author_id)
            if author in firsts:
                firsts.discard(author)
                one.first_timers.add(author)
            found.append(one)
        found += [part(edited_posts=[p]) for p in self.edited_posts]
        found += [part(reposts=[r]) for r in self.reposts]
        found += [part(health=[h]) for h in self.health]
        found += [part(other=[e]) for e in self.other]
        return found

    @property
    def empty(self) -> bool:
        return not (
            self.new_posts
            or self.edited_posts
            or self.deleted
            or self.reposts
            or self.health
            or self.other
        )


async def _matching(
    tx: Tx, sql: str, chat_id: str, pairs: Sequence[tuple[str, str]]
) -> set[tuple[str, str]]:
    """Which (platform, value) pairs a table holds (``sql`` selects the two)."""
    return {(str(r[0]), str(r[1])) for r in await fetch_by_pairs(tx, sql, chat_id, pairs)}


async def _tombstoned(
    tx: Tx, chat_id: str, pairs: Sequence[tuple[str, str]]
) -> set[tuple[str, str]]:
    return await _matching(
        tx,
        "SELECT platform, remote_id FROM tombstones WHERE chat_id = ? AND platform = ?"
        " AND remote_id IN",
        chat_id,
        pairs,
    )


async def _known_authors(
    tx: Tx, chat_id: str, pairs: Sequence[tuple[str, str]]
) -> set[tuple[str, str]]:
    return await _matching(
        tx,
        "SELECT platform, author_id FROM participants WHERE chat_id = ? AND platform = ?"
        " AND author_id IN",
        chat_id,
        pairs,
    )


async def _kept_out(tx: Tx, batch: StoredBatch, posts: Sequence[Post]) -> set[tuple[str, str]]:
    """Posts a tombstone keeps out: their own (deleted before they arrived), or their parent's
    where the parent was deleted with its replies (a reply delivered after the deletion; it is
    tombstoned as the stored replies were). One lookup for both."""
    keys = {(p.platform, p.remote_id) for p in posts}
    parents = {(p.platform, p.reply_parent.remote_id) for p in posts if p.reply_parent}
    rows = await fetch_by_pairs(
        tx,
        "SELECT platform, remote_id, with_replies FROM tombstones WHERE chat_id = ?"
        " AND platform = ? AND remote_id IN",
        batch.chat_id,
        sorted(keys | parents),
    )
    dead = {(str(r[0]), str(r[1])) for r in rows} & keys
    gone = {(str(r[0]), str(r[1])) for r in rows if r[2]}
    found: set[tuple[str, str]] = set()
    # Replies to those replies, in the same batch, go too.
    while True:
        more = {
            (p.platform, p.remote_id)
            for p in posts
            if p.reply_parent
            and (p.platform, p.reply_parent.remote_id) in gone
            and (p.platform, p.remote_id) not in found | dead
        }
        if not more:
            break
        found |= more
        gone |= more
    if found:
        await tx.executemany(
            "INSERT INTO tombstones (chat_id, platform, remote_id, deleted_at, with_replies)"
            " VALUES (?, ?, ?, ?, 1) ON CONFLICT (chat_id, platform, remote_id) DO NOTHING",
            [(batch.chat_id, k[0], k[1], batch.now.isoformat()) for k in sorted(found)],
        )
    return dead | found


async def _any_tombstones(tx: Tx) -> bool:
    return await tx.fetchone("SELECT 1 FROM tombstones LIMIT 1") is not None


def _sort(batch: StoredBatch, events: Sequence[Event]) -> dict[tuple[str, str], Post]:
    """File each event under its kind; return received posts, deduplicated within the batch."""
    received: dict[tuple[str, str], Post] = {}
    for event in events:
        if isinstance(event, PostReceived):
            key = (event.post.platform, event.post.remote_id)
            if key in received:
                batch.duplicates += 1
            received.setdefault(key, event.post)
        elif isinstance(event, PostEdited):
            batch.edited_posts.append(event.post)
        elif isinstance(event, PostDeleted):
            batch.deleted.append(event)
        elif isinstance(event, RepostSeen):
            batch.reposts.append(event)
        elif isinstance(event, AdapterHealthChanged):
            batch.health.append(event)
        else:
            batch.other.append(event)
    return received


REPLY_DEPTH = 4
"""Levels of replies a cascading deletion follows (Facebook has two: comments, replies)."""


async def _add_replies(tx: Tx, batch: StoredBatch) -> None:
    """Add the stored replies of posts deleted ``with_replies`` as deletions of their own."""
    level = [d for d in batch.deleted if d.with_replies]
    seen: set[tuple[str, str]] = {(d.platform, d.remote_id) for d in batch.deleted}
    for _ in range(REPLY_DEPTH):
        if not level:
            return
        rows = await fetch_by_pairs(
            tx,
            "SELECT platform, remote_id FROM posts WHERE chat_id = ? AND platform = ?"
            " AND parent_id IN",
            batch.chat_id,
            sorted({(d.platform, d.remote_id) for d in level}),
        )
        found = [(str(r[0]), str(r[1])) for r in rows if (str(r[0]), str(r[1])) not in seen]
        seen.update(found)
        deleted_at: dict[str, datetime] = {d.platform: d.deleted_at for d in level}
        level = [
            PostDeleted(
                platform=PlatformName(platform),
                remote_id=RemoteId(remote_id),
                deleted_at=deleted_at[platform],
                with_replies=True,
            )
            for platform, remote_id in found
        ]
        batch.deleted.extend(level)


async def _apply_deletions(tx: Tx, batch: StoredBatch) -> None:
    # Deletions first: a post and its deletion in the same batch must end deleted.
    if not batch.deleted:
        return
    await _add_replies(tx, batch)
    await tx.executemany(
        "INSERT INTO tombstones (chat_id, platform, remote_id, deleted_at, with_replies)"
        " VALUES (?, ?, ?, ?, ?) ON CONFLICT (chat_id, platform, remote_id) DO NOTHING",
        [
            (batch.chat_id, d.platform, d.remote_id, d.deleted_at.isoformat(), int(d.with_replies))
            for d in batch.deleted
        ],
    )
    await tx.executemany(
        "DELETE FROM posts WHERE chat_id = ? AND platform = ? AND remote_id = ?",
        [(batch.chat_id, d.platform, d.remote_id) for d in batch.deleted],
    )


async def _store_received(
    tx: Tx, batch: StoredBatch, received: dict[tuple[str, str], Post], stamp: str, keep_raw: bool
) -> None:
    if not received:
        return
    keys = list(received)
    dead: set[tuple[str, str]] = set()
    if await _any_tombstones(tx):
        dead = await _kept_out(tx, batch, list(received.values()))
    candidates = [received[k] for k in keys if k not in dead]
    if not candidates:
        return
    rows = [post_row(batch.chat_id, p, stamp, keep_raw=keep_raw) for p in candidates]
    new_keys = await _insert_new(tx, rows)
    fresh = [p for p in candidates if (p.platform, p.remote_id) in new_keys]
    batch.duplicates += len(candidates) - len(fresh)
    batch.new_posts = fresh
    if fresh:
        await _note_participants(tx, batch.chat_id, fresh, stamp, batch)


async def _apply_edits(tx: Tx, batch: StoredBatch, stamp: str, keep_raw: bool) -> None:
    for post in batch.edited_posts:
        changed = await tx.execute(
            "UPDATE posts SET text = ?, version = ?, edited_at = ?, hashtags = ?, mentions = ?,"
            " links = ? WHERE chat_id = ? AND platform = ? AND remote_id = ?",
            (
                storable(post.text),
                post.version,
                stamp,
                " ".join(post.hashtags),
                " ".join(post.mentions),
                " ".join(post.links),
                batch.chat_id,
                post.platform,
                post.remote_id,
            ),
        )
        if changed:
            continue
        # An edit of a post we never saw: store it as new (unless it was deleted).
        if await _tombstoned(tx, batch.chat_id, [(post.platform, post.remote_id)]):
            continue
        row = post_row(batch.chat_id, post, stamp, keep_raw=keep_raw)
        if await tx.execute(INSERT_POST, row) == 0:
            continue  # another writer stored it first
        batch.new_posts.append(post)
        await _note_participants(tx, batch.chat_id, [post], stamp, batch)


async def save_events(
    tx: Tx,
    *,
    chat_id: str,
    events: Sequence[Event],
    checkpoints: Sequence[tuple[str, Checkpoint]],
    now: datetime,
    keep_raw: bool = False,
) -> StoredBatch:
    """Store a batch of events and cursors in the caller's transaction."""
    batch = StoredBatch(chat_id=chat_id, now=now)
    stamp = now.isoformat()
    received = _sort(batch, events)
    await _apply_deletions(tx, batch)
    await _store_received(tx, batch, received, stamp, keep_raw)
    await _apply_edits(tx, batch, stamp, keep_raw)
    if checkpoints:
        await tx.executemany(
            "INSERT INTO adapter_state (chat_id, platform, key, value, updated_at)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT (chat_id, platform, key)"
            " DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
            [(chat_id, platform, cp.key, cp.value, stamp) for platform, cp in checkpoints],
        )
    return batch


async def _insert_new(tx: Tx, rows: list[tuple[object, ...]]) -> set[tuple[str, str]]:
    """Insert post rows; return the (platform, remote_id) pairs that were not there before."""
    if getattr(tx, "dialect", "sqlite") == "postgresql":
        from mhchat.store.postgres import insert_posts_returning  # noqa: PLC0415 - optional

        return await insert_posts_returning(tx, _POST_COLUMNS, rows)  # type: ignore[arg-type]
    # SQLite: rows get increasing ids from the single writer, so the rows this INSERT added
    # are exactly those above the previous maximum: one range scan on the primary key
    # instead of a lookup per post to tell new posts from redelivered ones.
    top = await tx.fetchone("SELECT coalesce(max(id), 0) FROM posts")
    await tx.executemany(INSERT_POST, rows)
    added = await tx.fetchall(
        "SELECT platform, remote_id FROM posts WHERE id > ?", (top[0] if top else 0,)
    )
    return {(str(r[0]), str(r[1])) for r in added}


async def _note_participants(
    tx: Tx, chat_id: str, posts: Sequence[Post], stamp: str, batch: StoredBatch
) -> None:
    authors: dict[tuple[str, str], Post] = {}
    for post in sorted(posts, key=lambda p: p.created_at):
        if post.is_own:
            continue
        authors.setdefault((post.platform, post.author.author_id), post)
    if not authors:
        return
    known = await _known_authors(tx, chat_id, list(authors))
    new = [(k, p) for k, p in authors.items() if k not in known]
    if not new:
        return
    await tx.executemany(
        "INSERT INTO participants (chat_id, platform, author_id, handle, first_seen_at,"
        " first_post_id) VALUES (?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (chat_id, platform, author_id) DO NOTHING",
        [(chat_id, k[0], k[1], storable(p.author.handle), stamp, p.remote_id) for k, p in new],
    )
    batch.first_timers.update(k for k, _ in new)
