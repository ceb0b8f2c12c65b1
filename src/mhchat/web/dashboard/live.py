"""The live feed: stored posts pushed to every open dashboard with server-sent events.

The ingest worker calls :meth:`LiveHub.observe` after each commit; it only notes which posts
changed, so ingest never waits on a browser. A pump task reads those posts back (with the
thread, question and decisions the facilitation step added) and fans them out through one
bounded queue per client: a client that falls behind is disconnected (its page reconnects and
reloads the feed) rather than growing memory. Every tick it also checks whether the panels a
facilitator acts on (safety queue, approvals, switches, adapter health) changed, and says so.
Post text is never logged.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

import orjson
import structlog
from aiohttp import web

from mhchat.runtime import Runtime
from mhchat.store.db import Database
from mhchat.store.posts import StoredBatch
from mhchat.web.dashboard import queries

log = structlog.get_logger("mhchat.dashboard.live")

Message = tuple[str, str]
"""(event name, JSON data)."""


@dataclass(eq=False, slots=True)
class Client:
    queue: asyncio.Queue[Message | None]
    dropped: bool = False

    def close(self) -> None:
        while not self.queue.empty():
            self.queue.get_nowait()
        self.queue.put_nowait(None)


@dataclass(slots=True)
class LiveHub:
    runtime: Runtime
    queue_size: int = 1000
    tick_seconds: float = 1.0
    keepalive_seconds: float = 15.0
    clients: set[Client] = field(default_factory=set)
    _pending: dict[tuple[str, str], None] = field(default_factory=dict)
    _deleted: list[dict[str, str]] = field(default_factory=list)
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    _last_panels: str = ""
    _since: int = 0
    """The newest ledger change already pushed (a post's decisions are re-sent on change)."""
    dropped_clients: int = 0

    # -- ingest side ------------------------------------------------------------------------

    def observe(self, batch: StoredBatch) -> None:
        """Observer for the ingest worker: cheap, never blocks."""
        if not self.clients:
            return
        for post in [*batch.new_posts, *batch.edited_posts]:
            self._pending[(post.platform, post.remote_id)] = None
        self._deleted.extend(
            {"platform": d.platform, "remote_id": d.remote_id} for d in batch.deleted
        )
        self._wake.set()

    # -- fan-out ----------------------------------------------------------------------------

    def broadcast(self, event: str, data: object) -> None:
        message = (event, orjson.dumps(data).decode())
        for client in list(self.clients):
            try:
                client.queue.put_nowait(message)
            except asyncio.QueueFull:
                client.dropped = True
                self.dropped_clients += 1
                self.clients.discard(client)
                client.close()
                log.warning("live_client_too_slow", queue_size=self.queue_size)

    async def pump(self, runtime: Runtime) -> None:
        """Background duty: turn noted changes into events."""
        db = runtime.require_db()
        chat_id = runtime.settings.chat.chat_id
        self._since = await _newest_transition(db)
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.tick_seconds):
                    await self._wake.wait()
            self._wake.clear()
            if not self.clients:
                self._pending.clear()
                self._deleted.clear()
                self._since = await _newest_transition(db)
                continue
            keys, self._pending = list(self._pending), {}
            deleted, self._deleted = self._deleted, []
            try:
                async with db.read() as tx:
                    touched, self._since = await queries.touched_since(tx, chat_id, self._since)
                    keys = list(dict.fromkeys([*keys, *touched]))
                    posts = await queries.posts_by_keys(tx, chat_id, keys) if keys else []
                    texts = await queries.question_texts(
                        tx, chat_id, [p["session"] for p in posts if p["session"]]
                    )
                    panels = await queries.fingerprint(tx, chat_id)
            except Exception as exc:  # noqa: BLE001 - the feed must outlive a failed read
                # No traceback: its locals could hold post text.
                log.error("live_read_failed", error_type=type(exc).__name__)
                continue
            for post in posts:
                post["question_text"] = texts.get(f"{post['session']}/{post['question']}")
                self.broadcast("post", post)
            for gone in deleted:
                self.broadcast("deleted", gone)
            panels += orjson.dumps(queries.health(runtime)).decode()
            if panels != self._last_panels:
                self._last_panels = panels
                self.broadcast("panels", {})
            if posts or deleted:
                log.debug(
                    "live_pushed",
                    posts=len(posts),
                    deleted=len(deleted),
                    clients=len(self.clients),
                )

    # -- the stream -------------------------------------------------------------------------

    async def stream(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-store",
                "X-Accel-Buffering": "no",
            }
        )
        await response.prepare(request)
        client = Client(asyncio.Queue(self.queue_size))
        self.clients.add(client)
        try:
            await response.write(b"retry: 2000\nevent: hello\ndata: {}\n\n")
            while True:
                try:
                    async with asyncio.timeout(self.keepalive_seconds):
                        message = await client.queue.get()
                except TimeoutError:
                    await response.write(b": keep-alive\n\n")
                    continue
                if message is None:
                    break
                event, data = message
                await response.write(f"event: {event}\ndata: {data}\n\n".encode())
        except ConnectionResetError:
            pass
        finally:
            self.clients.discard(client)
        return response

    def close_all(self) -> None:
        for client in list(self.clients):
            client.close()
        self.clients.clear()


async def _newest_transition(db: Database) -> int:
    async with db.read() as tx:
        return await queries.newest_transition(tx)
