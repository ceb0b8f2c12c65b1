"""Where parsed events leave the adapter, and the since_id cursor that travels with them.

The cursor is the newest post id stored. It is saved only in the same sink call as the events
it covers. While a search backfill is filling a gap, stream events go out without the cursor
(their ids are newer than the gap); the backfill's last page then carries the highest id of both,
so a crash mid-backfill never skips the gap. A backfill that fails leaves the gap open: the
cursor stays where it was until a later backfill covers the gap.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime

from mhchat.adapters import Checkpoint, EventSink
from mhchat.events import Event, PostDeleted, PostEdited, PostReceived, RepostSeen
from mhchat_x.mapping import newer_id
from mhchat_x.status import HealthBoard

CURSOR_KEY = "since_id"
JOURNAL_KEY = "recent_ids_new"
"""Ids added to the deletion watch list since it was last saved whole."""


def parse_watch(text: str | None) -> dict[str, tuple[str, datetime]]:
    """A saved watch list (``{lookup id: [remote id, seen]}``); nothing if unreadable."""
    try:
        data = json.loads(text or "{}")
        return {str(k): (str(r), datetime.fromisoformat(s)) for k, (r, s) in data.items()}
    except (ValueError, TypeError, AttributeError):
        return {}


_DELIVERED_MAX = 100_000
"""Enough for any gap fill's overlap; the oldest ids are forgotten first."""


class Intake:
    def __init__(self, sink: EventSink, board: HealthBoard, since_id: str | None) -> None:
        self.sink = sink
        self.board = board
        self.since_id = since_id
        self._holds = 0
        self._gap_open = False
        self._pending: str | None = None
        self.recent: dict[str, tuple[str, datetime]] = {}
        """Ids to look up for deletion: lookup id -> (stored remote id, when seen)."""
        self.journal: dict[str, tuple[str, datetime]] = {}
        """The part of ``recent`` not yet saved whole (see ``_publish``)."""
        self._reposts: set[str] = set()
        self._delivered: dict[str, None] = {}
        """Ids this process has published: the only ones a gap fill may drop as duplicates.

        Kept apart from ``recent`` on purpose: the watch list is loaded from state at start and
        is saved ahead of the posts it covers, so an id in it may belong to a post that never
        reached the store (a kill between the two saves); the store dedupes the rest.
        """

    def _count(self, events: Sequence[Event], now: datetime) -> None:
        for event in events:
            if isinstance(event, PostReceived | PostEdited):
                post = event.post
                self.recent[post.version or post.remote_id] = (post.remote_id, now)
                self._delivered[post.version or post.remote_id] = None
                if len(self._delivered) > _DELIVERED_MAX:
                    del self._delivered[next(iter(self._delivered))]
                self.board.bump("posts_edited" if isinstance(event, PostEdited) else "posts")
            elif isinstance(event, RepostSeen):
                self.board.bump("reposts_seen")
            elif isinstance(event, PostDeleted):
                self.board.bump("deletions")

    def hold(self) -> None:
        """A backfill starts: stream events stop moving the cursor until it ends."""
        self._holds += 1

    async def release(self, newest: str | None, events: Sequence[Event], now: datetime) -> None:
        """A backfill ends (successfully): publish its last page with the combined cursor."""
        self._holds = max(0, self._holds - 1)
        self._gap_open = False
        newest = newer_id(newest, self._pending)
        if self._holds == 0:
            self._pending = None
        await self._publish(events, newest, now)

    def abandon(self) -> None:
        """A backfill failed: keep the cursor where it was, so the next one covers the gap."""
        self._holds = max(0, self._holds - 1)
        self._gap_open = True

    @property
    def gap_open(self) -> bool:
        return self._gap_open

    async def emit(self, events: Sequence[Event], newest: str | None, now: datetime) -> None:
        """Stream or poll events; the cursor moves with them unless a backfill holds it."""
        if self._holds or self._gap_open:
            self._pending = newer_id(self._pending, newest)
            await self._publish(events, None, now)
        else:
            await self._publish(events, newest, now)

    async def emit_uncursored(self, events: Sequence[Event], now: datetime) -> None:
        await self._publish(events, None, now)

    def _fresh(self, events: Sequence[Event]) -> list[Event]:
        """Drop what this process already delivered (a gap fill overlaps the stream)."""
        fresh: list[Event] = []
        for event in events:
            if isinstance(event, PostReceived | PostEdited):
                key = event.post.version or event.post.remote_id
                if key in self._delivered:
                    self.board.bump("duplicates_dropped")
                    continue
            elif isinstance(event, RepostSeen):
                if event.remote_id in self._reposts:
                    self.board.bump("duplicates_dropped")
                    continue
                self._reposts.add(event.remote_id)
            fresh.append(event)
        return fresh

    async def _publish(self, events: Sequence[Event], newest: str | None, now: datetime) -> None:
        events = self._fresh(events)
        checkpoint = None
        advanced = newer_id(self.since_id, newest)
        if newest is not None and advanced != self.since_id:
            checkpoint = Checkpoint(key=CURSOR_KEY, value=str(advanced))
        if not events and checkpoint is None:
            return
        added = {
            e.post.version or e.post.remote_id: (e.post.remote_id, now)
            for e in events
            if isinstance(e, PostReceived | PostEdited)
        }
        if added:
            # The watch list goes ahead of the posts it covers: once a post is stored, so is
            # its id for the deletion look-ups, even if the process is killed right after.
            self.journal.update(added)
            body = {k: [r, seen.isoformat()] for k, (r, seen) in self.journal.items()}
            await self.sink.publish(
                [], checkpoint=Checkpoint(key=JOURNAL_KEY, value=json.dumps(body))
            )
        await self.sink.publish(list(events), checkpoint=checkpoint)
        if checkpoint is not None:
            self.since_id = advanced
        self._count(events, now)
