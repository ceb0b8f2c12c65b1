"""From parsed commits to stored events: batching, handle lookup, dedupe and cursor checkpoints.

The live source puts items on a bounded queue (back-pressure reaches the websocket). One task
drains it in small batches: it looks up the authors' handles for the whole batch at once, maps
the commits to events and publishes them with the cursor of the last item, so a cursor is only
saved together with the events it covers. An item may carry only a cursor: that is how the
position advances while nothing in the stream concerns the chat.
"""

from __future__ import annotations

import asyncio
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import orjson
import structlog

from mhchat.adapters import Checkpoint, EventSink, KeyValueState
from mhchat.events import Event, PlatformName, Post, PostReceived

from .mapping import Commit, MalformedRecord, events_from_commit
from .profiles import ProfileCache

AUTHORS_KEY = "authors"
_MAX_AUTHORS = 20000
_MAX_BATCH = 200
_RECENT = 4096


@dataclass(frozen=True, slots=True)
class Item:
    """A commit from the stream, a post from search, or just a cursor to save."""

    commit: Commit | None = None
    post: Post | None = None
    cursor: str | None = None


class Intake:
    """The single publisher of an adapter's events."""

    def __init__(
        self,
        *,
        platform: PlatformName,
        sink: EventSink,
        state: KeyValueState,
        profiles: ProfileCache,
        host_did: Callable[[], str | None],
        counters: Counter[str],
        log: structlog.typing.FilteringBoundLogger,
        linger: float,
    ) -> None:
        self._platform = platform
        self._sink = sink
        self._state = state
        self._profiles = profiles
        self._host_did = host_did
        self._counters = counters
        self._log = log
        self._linger = linger
        self.queue: asyncio.Queue[Item] = asyncio.Queue(maxsize=2000)
        self.cursor_key = "jetstream_cursor"
        self.authors: set[str] = set()
        self._authors_dirty = False
        self._recent: OrderedDict[tuple[str, str], None] = OrderedDict()

    async def load(self) -> None:
        raw = await self._state.get(AUTHORS_KEY)
        if raw:
            try:
                self.authors = set(orjson.loads(raw))
            except orjson.JSONDecodeError:
                self.authors = set()

    def note_author(self, did: str) -> None:
        """Remember a chat participant, whose post deletions must be passed on."""
        if did not in self.authors:
            self.authors.add(did)
            self._authors_dirty = True

    async def put(self, item: Item) -> None:
        await self.queue.put(item)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self.queue.get()]
            deadline = loop.time() + self._linger
            while len(batch) < _MAX_BATCH:
                try:
                    batch.append(self.queue.get_nowait())
                    continue
                except asyncio.QueueEmpty:
                    pass
                left = deadline - loop.time()
                if left <= 0:
                    break
                try:
                    async with asyncio.timeout(left):
                        batch.append(await self.queue.get())
                except TimeoutError:
                    break
            try:
                await self._flush(batch)
            except Exception as exc:  # noqa: BLE001 - one bad batch must not stop intake
                # Its cursor was not saved, so a restart replays it.
                self._counters["intake_errors"] += 1
                self._log.error("bluesky.intake_failed", error=type(exc).__name__)
            finally:
                for _ in batch:
                    self.queue.task_done()

    async def drain(self, seconds: float) -> None:
        """Wait (bounded) until what is queued has been published."""
        try:
            async with asyncio.timeout(seconds):
                await self.queue.join()
        except TimeoutError:
            self._log.warning("bluesky.drain_timeout", left=self.queue.qsize())

    def _remember(self, keys: list[tuple[str, str]]) -> None:
        for key in keys:
            self._recent[key] = None
        while len(self._recent) > _RECENT:
            self._recent.popitem(last=False)

    @staticmethod
    def _key(item: Item) -> tuple[str, str] | None:
        """Identity of what an item reports: a post version (from the stream or search alike)
        or a deletion. The same key twice is a reconnect's overlap or search re-finding it."""
        if item.post is not None:
            return item.post.remote_id, item.post.version or ""
        commit = item.commit
        if commit is None:
            return None
        return commit.uri, (commit.cid or "") if commit.operation != "delete" else "delete"

    async def _flush(self, batch: list[Item]) -> None:
        commits = [i.commit for i in batch if i.commit is not None]
        await self._profiles.resolve(c.did for c in commits if c.operation != "delete")
        host = self._host_did()
        events: list[Event] = []
        keys: list[tuple[str, str]] = []
        for item in batch:
            key = self._key(item)
            if key is None or key in self._recent or key in keys:
                continue
            keys.append(key)
            if item.post is not None:
                events.append(PostReceived(post=item.post))
                continue
            assert item.commit is not None
            try:
                events += events_from_commit(
                    item.commit,
                    platform=self._platform,
                    profile=self._profiles.get(item.commit.did),
                    host_did=host,
                )
            except MalformedRecord:
                self._counters["malformed_frames"] += 1
        cursor = next((i.cursor for i in reversed(batch) if i.cursor is not None), None)
        checkpoint = Checkpoint(key=self.cursor_key, value=cursor) if cursor else None
        if events or checkpoint:
            await self._sink.publish(events, checkpoint=checkpoint)
        # Only what was handed over counts as published: a failed batch may come again.
        self._remember(keys)
        self._counters["events_published"] += len(events)
        await self._remember_authors(events)

    async def _remember_authors(self, events: list[Event]) -> None:
        for event in events:
            if isinstance(event, PostReceived):
                self.note_author(event.post.author.author_id)
        if self._authors_dirty:
            if len(self.authors) > _MAX_AUTHORS:
                self.authors = set(list(self.authors)[-_MAX_AUTHORS:])
            await self._state.set(AUTHORS_KEY, orjson.dumps(sorted(self.authors)).decode())
            self._authors_dirty = False
