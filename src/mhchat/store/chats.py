"""The chats table: every chat-scoped row refers to one."""

from __future__ import annotations

from datetime import datetime

from mhchat.store.db import Database


async def ensure_chat(db: Database, chat_id: str, hashtag: str, now: datetime) -> None:
    async with db.write() as tx:
        await tx.execute(
            "INSERT INTO chats (chat_id, hashtag, created_at) VALUES (?, ?, ?)"
            " ON CONFLICT (chat_id) DO NOTHING",
            (chat_id, hashtag, now.isoformat()),
        )
