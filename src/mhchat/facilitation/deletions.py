"""Deletions honoured: undo our repost of a deleted post, drop what was still waiting, and
"forget me": remove a person's posts, participation, flags and tallies.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from mhchat.actions import ActionKind, Purpose, Repost, Unrepost
from mhchat.events import PlatformName, PostRef, RemoteId
from mhchat.ledger import Decision, State, sent_for_target, transition
from mhchat.store.db import Tx

WAITING = (State.PENDING, State.AWAITING_APPROVAL)
MAYBE_DONE = (State.SENT, State.SENDING, State.UNKNOWN)


async def undo_actions_about(
    tx: Tx, *, chat_id: str, platform: str, remote_id: str, why: str, now: datetime
) -> list[Decision]:
    """Drop waiting actions about a post and decide an Unrepost where we may have reposted it."""
    decisions: list[Decision] = []
    for row in await sent_for_target(tx, chat_id, platform, remote_id):
        action = row.action
        if action.kind is ActionKind.UNREPOST:
            continue
        if row.state in WAITING:
            await transition(tx, row.id, to=State.DROPPED, now=now, detail=why, expect=WAITING)
        elif action.kind is ActionKind.REPOST and row.state in MAYBE_DONE:
            decisions.append(
                Decision(
                    action=Unrepost(
                        key=f"unrepost:{platform}:{remote_id}",
                        platform=PlatformName(platform),
                        purpose=Purpose.UNDO_REPOST,
                        target=PostRef(
                            remote_id=RemoteId(remote_id),
                            version=action.target.version if isinstance(action, Repost) else None,
                        ),
                        repost_id=row.remote_id,
                    ),
                    reason=f"{why}: undo our repost",
                )
            )
    return decisions


async def honour_deletions(
    tx: Tx, *, chat_id: str, deleted: Sequence[tuple[str, str]], now: datetime
) -> list[Decision]:
    """The platform says these posts were deleted (the store already removed them)."""
    decisions: list[Decision] = []
    for platform, remote_id in deleted:
        decisions.extend(
            await undo_actions_about(
                tx,
                chat_id=chat_id,
                platform=platform,
                remote_id=remote_id,
                why=f"the author deleted the post on {platform}",
                now=now,
            )
        )
    if deleted:
        await tx.executemany(
            "DELETE FROM safety_flags WHERE chat_id = ? AND platform = ? AND remote_id = ?",
            [(chat_id, p, r) for p, r in deleted],
        )
    return decisions


async def forget_person(
    tx: Tx, *, chat_id: str, platform: str, author_id: str, now: datetime
) -> list[Decision]:
    """Remove a person's data: posts (tombstoned so redelivery cannot bring them back),
    flags on those posts, tallies, welcome record and participant row; undo our reposts."""
    rows = await tx.fetchall(
        "SELECT remote_id FROM posts WHERE chat_id = ? AND platform = ? AND author_id = ?",
        (chat_id, platform, author_id),
    )
    ids = [str(r[0]) for r in rows]
    decisions: list[Decision] = []
    for remote_id in ids:
        decisions.extend(
            await undo_actions_about(
                tx,
                chat_id=chat_id,
                platform=platform,
                remote_id=remote_id,
                why="the author asked us to forget them",
                now=now,
            )
        )
    stamp = now.isoformat()
    await tx.executemany(
        "INSERT INTO tombstones (chat_id, platform, remote_id, deleted_at) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (chat_id, platform, remote_id) DO NOTHING",
        [(chat_id, platform, r, stamp) for r in ids],
    )
    await tx.executemany(
        "DELETE FROM safety_flags WHERE chat_id = ? AND platform = ? AND remote_id = ?",
        [(chat_id, platform, r) for r in ids],
    )
    params = (chat_id, platform, author_id)
    for table in ("posts", "session_reposts", "welcomes", "participants"):
        await tx.execute(
            f"DELETE FROM {table} WHERE chat_id = ? AND platform = ? AND author_id = ?",  # noqa: S608 - placeholders only
            params,
        )
    return decisions
