"""The action ledger (outbox): decided actions are written here before anything is sent.

A row's ``key`` is the action's deterministic idempotency key and is UNIQUE, so deciding the
same thing twice (after a restart, a redelivered event, a second process) records it once.
Every state change is appended to ``action_transitions`` for the audit trail.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from mhchat.actions import Action, Purpose
from mhchat.codec import action_from_json, action_target, action_to_json
from mhchat.store.db import Tx


class Mode(StrEnum):
    AUTO = "auto"
    APPROVE_FIRST = "approve_first"
    DRY_RUN = "dry_run"


class State(StrEnum):
    PENDING = "pending"
    AWAITING_APPROVAL = "awaiting_approval"
    SENDING = "sending"
    SENT = "sent"
    SKIPPED = "skipped"
    FAILED = "failed"
    UNKNOWN = "unknown"
    EXPIRED = "expired"
    DRY_RUN = "dry_run"
    DROPPED = "dropped"


FINAL_STATES = frozenset(
    {State.SENT, State.SKIPPED, State.FAILED, State.EXPIRED, State.DRY_RUN, State.DROPPED}
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Decision:
    """An action the service decided on, and why (shown to the facilitator)."""

    action: Action
    reason: str
    mode: Mode | None = None
    """Overrides the purpose's configured mode (e.g. signposting is always approve-first)."""
    not_before: datetime | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class LedgerRow:
    id: int
    chat_id: str
    key: str
    action: Action
    state: State
    mode: Mode
    reason: str
    attempts: int
    remote_id: str | None
    detail: str | None
    created_at: datetime
    updated_at: datetime


_SELECT = (
    "SELECT id, chat_id, key, payload, state, mode, reason, attempts, remote_id, detail,"
    " created_at, updated_at FROM actions"
)


def row_to_ledger(row: tuple[object, ...]) -> LedgerRow:
    return LedgerRow(
        id=int(str(row[0])),
        chat_id=str(row[1]),
        key=str(row[2]),
        action=action_from_json(str(row[3])),
        state=State(str(row[4])),
        mode=Mode(str(row[5])),
        reason=str(row[6]),
        attempts=int(str(row[7])),
        remote_id=None if row[8] is None else str(row[8]),
        detail=None if row[9] is None else str(row[9]),
        created_at=datetime.fromisoformat(str(row[10])),
        updated_at=datetime.fromisoformat(str(row[11])),
    )


def _initial_state(mode: Mode) -> State:
    if mode is Mode.APPROVE_FIRST:
        return State.AWAITING_APPROVAL
    if mode is Mode.DRY_RUN:
        return State.DRY_RUN
    return State.PENDING


_INSERT_ACTION = (
    "INSERT INTO actions (chat_id, key, platform, kind, purpose, payload, state, mode,"
    " reason, target_id, not_after, not_before, created_at, updated_at)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (chat_id, key) DO NOTHING"
)
_INSERT_CREATED = (
    "INSERT INTO action_transitions (action_id, from_state, to_state, at, detail)"
    " VALUES (?, NULL, ?, ?, ?)"
)
_CHUNK = 500


def _action_row(
    chat_id: str, decision: Decision, state: State, mode: Mode, stamp: str
) -> tuple[object, ...]:
    action = decision.action
    return (
        chat_id,
        action.key,
        action.platform,
        action.kind.value,
        action.purpose.value,
        action_to_json(action),
        state.value,
        mode.value,
        decision.reason,
        action_target(action),
        action.not_after.isoformat() if action.not_after else None,
        decision.not_before.isoformat() if decision.not_before else None,
        stamp,
        stamp,
    )


async def record(
    tx: Tx,
    *,
    chat_id: str,
    decisions: Sequence[Decision],
    modes: dict[Purpose, Mode],
    now: datetime,
) -> list[str]:
    """Write decisions; return the keys that were new (existing keys are left untouched).

    A few decisions are written one by one (two statements each). A batch's decisions are
    written set-based: which keys exist, one ``executemany``, the new rows' ids, one
    ``executemany`` of transitions. With PostgreSQL each statement is a network round trip
    (and with SQLite it was a trip to a worker thread, before writes moved onto the loop):
    at 1,000 posts/s with two decisions a post the per-row path spent most of the decision
    latency waiting for those trips.
    """
    stamp = now.isoformat()
    chosen: dict[str, tuple[Decision, State, Mode]] = {}
    for decision in decisions:
        mode = decision.mode or modes.get(decision.action.purpose, Mode.AUTO)
        chosen.setdefault(decision.action.key, (decision, _initial_state(mode), mode))
    if len(chosen) <= 2:
        return await _record_each(tx, chat_id, list(chosen.values()), stamp)
    keys = list(chosen)
    existing: set[str] = set()
    for start in range(0, len(keys), _CHUNK):
        part = keys[start : start + _CHUNK]
        marks = ", ".join("?" for _ in part)
        rows = await tx.fetchall(
            f"SELECT key FROM actions WHERE chat_id = ? AND key IN ({marks})",  # noqa: S608
            (chat_id, *part),
        )
        existing.update(str(r[0]) for r in rows)
    fresh = [k for k in keys if k not in existing]
    if not fresh:
        return []
    await tx.executemany(_INSERT_ACTION, [_action_row(chat_id, *chosen[k], stamp) for k in fresh])
    ids: dict[str, int] = {}
    for start in range(0, len(fresh), _CHUNK):
        part = fresh[start : start + _CHUNK]
        marks = ", ".join("?" for _ in part)
        rows = await tx.fetchall(
            f"SELECT key, id FROM actions WHERE chat_id = ? AND key IN ({marks})",  # noqa: S608
            (chat_id, *part),
        )
        ids.update((str(r[0]), int(r[1])) for r in rows)
    await tx.executemany(
        _INSERT_CREATED,
        [(ids[k], chosen[k][1].value, stamp, chosen[k][0].reason) for k in fresh if k in ids],
    )
    return [k for k in fresh if k in ids]


async def _record_each(
    tx: Tx, chat_id: str, decisions: Sequence[tuple[Decision, State, Mode]], stamp: str
) -> list[str]:
    new: list[str] = []
    for decision, state, mode in decisions:
        row = await tx.fetchone(
            _INSERT_ACTION + " RETURNING id", _action_row(chat_id, decision, state, mode, stamp)
        )
        if row is None:
            continue
        await tx.execute(_INSERT_CREATED, (row[0], state.value, stamp, decision.reason))
        new.append(decision.action.key)
    return new


async def transition(
    tx: Tx,
    action_id: int,
    *,
    to: State,
    now: datetime,
    detail: str | None = None,
    remote_id: str | None = None,
    expect: Sequence[State] | None = None,
    count_attempt: bool = False,
) -> bool:
    """Move one action to ``to``; with ``expect``, only from one of those states.

    Returns whether the row moved (false when another actor got there first).
    """
    row = await tx.fetchone("SELECT state FROM actions WHERE id = ?", (action_id,))
    if row is None:
        return False
    current = State(str(row[0]))
    if expect is not None and current not in expect:
        return False
    await tx.execute(
        "UPDATE actions SET state = ?, updated_at = ?, detail = COALESCE(?, detail),"
        " remote_id = COALESCE(?, remote_id), attempts = attempts + ? WHERE id = ?",
        (to.value, now.isoformat(), detail, remote_id, 1 if count_attempt else 0, action_id),
    )
    await tx.execute(
        "INSERT INTO action_transitions (action_id, from_state, to_state, at, detail)"
        " VALUES (?, ?, ?, ?, ?)",
        (action_id, current.value, to.value, now.isoformat(), detail),
    )
    return True


_PRIORITY = (
    " ORDER BY CASE purpose"
    " WHEN 'question' THEN 0 WHEN 'intro' THEN 0 WHEN 'reminder' THEN 0"
    " WHEN 'signposting' THEN 1 WHEN 'welcome' THEN 2 WHEN 'undo_repost' THEN 2"
    " ELSE 3 END, id"
)


async def next_pending(
    tx: Tx, platform: str, *, now: datetime, chat_id: str | None = None
) -> LedgerRow | None:
    """The next pending action for a platform whose not-before time has come.

    Time-bound posts of the chat itself (questions, intro, reminder) go before anything else,
    then replies to people, then reposts, each oldest first: a backlog of reposts must never
    hold a question until it goes stale. With ``chat_id``, only that chat's: each chat posts
    from its own accounts.
    """
    where = " WHERE platform = ? AND state = ? AND (not_before IS NULL OR not_before <= ?)"
    params: tuple[object, ...] = (platform, State.PENDING.value, now.isoformat())
    if chat_id is not None:
        where += " AND chat_id = ?"
        params = (*params, chat_id)
    row = await tx.fetchone(_SELECT + where + _PRIORITY + " LIMIT 1", params)
    return row_to_ledger(row) if row else None


async def by_state(
    tx: Tx, chat_id: str, states: Sequence[State], limit: int = 200
) -> list[LedgerRow]:
    marks = ", ".join("?" for _ in states)
    rows = await tx.fetchall(
        _SELECT + f" WHERE chat_id = ? AND state IN ({marks}) ORDER BY id DESC LIMIT ?",
        (chat_id, *[s.value for s in states], limit),
    )
    return [row_to_ledger(r) for r in rows]


async def get(tx: Tx, action_id: int) -> LedgerRow | None:
    row = await tx.fetchone(_SELECT + " WHERE id = ?", (action_id,))
    return row_to_ledger(row) if row else None


async def sent_for_target(tx: Tx, chat_id: str, platform: str, target_id: str) -> list[LedgerRow]:
    """Actions we took about one post (to undo our repost when its author deletes it)."""
    rows = await tx.fetchall(
        _SELECT + " WHERE chat_id = ? AND platform = ? AND target_id = ?",
        (chat_id, platform, target_id),
    )
    return [row_to_ledger(r) for r in rows]
