"""The SQL ``LinkStore``: thread roots and question numbers kept as columns of ``posts``.

Keeping them on the post row means a platform deletion (which deletes the row) removes the
post from its thread and question at once.
"""

from __future__ import annotations

from collections import defaultdict

from mhchat.facilitation.threads import Link, PostKey
from mhchat.store.db import Row, Tx, fetch_by_pairs

CHUNK = 300
_COLUMNS = (
    "platform, remote_id, parent_id, root_id, quoted_id, thread_root, question_tag, question_n"
)


def _link(row: Row) -> Link:
    platform = str(row[0])

    def key(value: object) -> PostKey | None:
        return None if value is None else (platform, str(value))

    return Link(
        key=(platform, str(row[1])),
        parent=key(row[2]),
        given_root=key(row[3]),
        quoted=key(row[4]),
        root=key(row[5]),
        tag=None if row[6] is None else int(row[6]),
        question=None if row[7] is None else int(row[7]),
    )


class SqlLinks:
    """Links as columns of ``posts``.

    ``held`` names posts whose links ``put`` leaves unwritten: the handler writes those rows
    once, with their session and triage, because a second UPDATE of a row just inserted cost
    as much again as the first (the row and two of its indexes rewritten twice).
    """

    def __init__(self, tx: Tx, chat_id: str, *, held: frozenset[PostKey] = frozenset()) -> None:
        self.tx = tx
        self.chat_id = chat_id
        self.held = held

    async def get(self, keys: set[PostKey]) -> dict[PostKey, Link]:
        rows = await fetch_by_pairs(
            self.tx,
            f"SELECT {_COLUMNS} FROM posts WHERE chat_id = ? AND platform = ?"  # noqa: S608 - constants
            " AND remote_id IN",
            self.chat_id,
            sorted(keys),
            chunk=CHUNK,
        )
        return {link.key: link for link in map(_link, rows)}

    async def dependents(self, keys: set[PostKey]) -> list[Link]:
        by_platform: dict[str, list[str]] = defaultdict(list)
        for platform, remote_id in keys:
            by_platform[platform].append(remote_id)
        found: list[Link] = []
        for platform, ids in by_platform.items():
            for start in range(0, len(ids), CHUNK):
                part = ids[start : start + CHUNK]
                marks = ", ".join("?" for _ in part)
                # One indexed search per column: an OR of the three IN lists made SQLite scan
                # every post of the platform in the chat (linear in the archive).
                sql = " UNION ".join(
                    f"SELECT {_COLUMNS} FROM posts WHERE chat_id = ? AND platform = ?"  # noqa: S608 - placeholders only
                    f" AND {column} IN ({marks})"
                    for column in ("parent_id", "quoted_id", "thread_root")
                )
                params = [self.chat_id, platform, *part]
                rows = await self.tx.fetchall(sql, params * 3)
                found.extend(_link(r) for r in rows)
        return found

    async def put(self, links: list[Link]) -> None:
        if self.held:
            links = [link for link in links if link.key not in self.held]
        if not links:
            return
        await self.tx.executemany(
            "UPDATE posts SET thread_root = ?, question_tag = ?, question_n = ?"
            " WHERE chat_id = ? AND platform = ? AND remote_id = ?",
            [
                (
                    link.root[1] if link.root else None,
                    link.tag,
                    link.question,
                    self.chat_id,
                    link.key[0],
                    link.key[1],
                )
                for link in links
            ],
        )
