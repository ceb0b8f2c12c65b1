"""First-timer welcomes: one reply with the Be Kind reminder, at most once ever per identity."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from mhchat.actions import Purpose, Reply
from mhchat.events import Post
from mhchat.facilitation.batch_view import Author, BatchView, key_of
from mhchat.facilitation.formatting import fit
from mhchat.facilitation.schedule import Session
from mhchat.facilitation.settings import FacilitationSettings
from mhchat.facilitation.templates import Templates
from mhchat.facilitation.triage.classifier import Verdict
from mhchat.ledger import Decision
from mhchat.store.db import Tx

# Platforms whose rules let an app reply only to posts that @mention or quote it (X since
# February 2026); the adapter enforces the rule, this only explains the decision to the host.
REPLY_NEEDS_MENTION = frozenset({"x"})


async def decide_welcomes(
    tx: Tx, view: BatchView, *, settings: FacilitationSettings, templates: Templates
) -> list[Decision]:
    """One welcome per newcomer, on a post that is fine, once ever, within the budget."""
    batch, first_posts = view.batch, view.newcomers
    if not settings.welcomes.enabled or not first_posts:
        return []
    decisions: list[Decision] = []
    used: dict[tuple[str, str], int] = {}
    hashtag = settings.hashtag
    eligible: list[tuple[Post, Session]] = []
    for author, post in sorted(first_posts.items(), key=lambda item: item[1].created_at):
        key = key_of(post)
        session = view.sessions[key]
        st = view.status[author]
        if (
            session is None
            or author in view.forget
            or st.blocked
            or post.is_bot
            or view.verdicts[key].verdict is not Verdict.OK
        ):
            continue
        eligible.append((post, session))
    # One query for who was welcomed before and one executemany below, instead of an
    # INSERT per first-timer: each statement is a round trip to the database thread.
    welcomed = await _welcomed(tx, batch.chat_id, [p for p, _ in eligible])
    rows: list[tuple[object, ...]] = []
    for post, session in eligible:
        if (post.platform, post.author.author_id) in welcomed:
            continue
        slot = (session.session_id, post.platform)
        if slot not in used:
            row = await tx.fetchone(
                "SELECT welcomes FROM session_tallies WHERE chat_id = ? AND session_id = ?"
                " AND platform = ?",
                (batch.chat_id, *slot),
            )
            used[slot] = int(row[0]) if row else 0
        budget = settings.welcomes.budget.for_platform(post.platform)
        if used[slot] >= budget:
            continue
        rows.append(
            (
                batch.chat_id,
                post.platform,
                post.author.author_id,
                session.session_id,
                post.remote_id,
                batch.now.isoformat(),
            )
        )
        used[slot] += 1
        reason = (
            f"first post from this {post.platform} account in #{hashtag}: one welcome with the"
            f" Be Kind reminder ({used[slot]} of {budget} welcomes on {post.platform}"
            " this session)"
        )
        if not post.mentions_host and post.platform in REPLY_NEEDS_MENTION:
            reason += (
                f"; the post does not mention the host, and {post.platform} lets an app reply"
                " only when it does, so the platform will skip this reply"
            )
        decisions.append(
            Decision(
                action=Reply(
                    key=f"welcome:{post.platform}:{post.author.author_id}:{session.session_id}",
                    platform=post.platform,
                    purpose=Purpose.WELCOME,
                    text=fit(
                        templates.render_welcome(handle=post.author.handle, hashtag=hashtag),
                        hashtag,
                        post.platform,
                    ),
                    parent=post.ref,
                    root=post.reply_root or post.ref,
                    parent_author_id=post.author.author_id,
                    parent_mentions_host=post.mentions_host,
                    not_after=session.closes_at,
                ),
                reason=reason,
            )
        )
    if rows:
        await tx.executemany(
            "INSERT INTO welcomes (chat_id, platform, author_id, session_id, remote_id,"
            " decided_at) VALUES (?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (chat_id, platform, author_id) DO NOTHING",
            rows,
        )
    return decisions


async def _welcomed(tx: Tx, chat_id: str, posts: Sequence[Post]) -> set[Author]:
    """Which of these posts' authors were welcomed before (a welcome is once, ever)."""
    by_platform: dict[str, list[str]] = defaultdict(list)
    for post in posts:
        by_platform[post.platform].append(post.author.author_id)
    found: set[Author] = set()
    for platform, authors in by_platform.items():
        for start in range(0, len(authors), 500):
            part = authors[start : start + 500]
            marks = ", ".join("?" for _ in part)
            rows = await tx.fetchall(
                "SELECT platform, author_id FROM welcomes WHERE chat_id = ? AND platform = ?"  # noqa: S608 - placeholders only
                f" AND author_id IN ({marks})",
                [chat_id, platform, *part],
            )
            found.update((str(r[0]), str(r[1])) for r in rows)
    return found
