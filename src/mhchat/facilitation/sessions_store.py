"""Session rows: one per chat date, written when the session is first seen."""

from __future__ import annotations

from datetime import datetime

from mhchat.facilitation.schedule import Session
from mhchat.store.db import Tx


async def ensure_session(
    tx: Tx, chat_id: str, session: Session, *, zone: str, now: datetime, topic: str = ""
) -> None:
    await tx.execute(
        "INSERT INTO chat_sessions (chat_id, session_id, starts_at, ends_at, closes_at, zone,"
        " topic,"
        " created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (chat_id, session_id) DO NOTHING",
        (
            chat_id,
            session.session_id,
            session.starts_at.isoformat(),
            session.ends_at.isoformat(),
            session.closes_at.isoformat(),
            zone,
            topic,
            now.isoformat(),
        ),
    )
