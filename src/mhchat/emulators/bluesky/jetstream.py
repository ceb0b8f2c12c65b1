"""Jetstream: every commit appended to an in-memory log, replayed from a ``time_us`` cursor
and pushed live to websocket subscribers, filtered by collection and DID."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from aiohttp import WSMsgType, web

from mhchat.emulators.bluesky.model import _LogEntry
from mhchat.emulators.bluesky.state import BlueskyState


class BlueskyJetstream(BlueskyState):
    """The commit log and its websocket subscribers."""

    @property
    def jetstream_url(self) -> str:
        return self.base_url.replace("http://", "ws://", 1) + "/subscribe"

    @property
    def stream_position(self) -> int:
        """``time_us`` of the newest event on the Jetstream log (0 when empty)."""
        return self._log[-1].time_us if self._log else 0

    def inject_frame(self, frame: str | bytes) -> None:
        """Push a raw frame (malformed, say) to every live Jetstream subscriber."""
        text = frame.decode("utf-8", "replace") if isinstance(frame, bytes) else frame
        for queue in self._subscribers:
            queue.put_nowait(text)

    def drop_streams(self) -> None:
        """Close every Jetstream connection, as a server restart would."""
        self._close_streams()

    def _append(
        self, did: str, collection: str | None, event: dict[str, Any], time_us: int
    ) -> None:
        entry = _LogEntry(time_us, did, collection, orjson.dumps(event).decode())
        self._log.append(entry)
        for queue in self._subscribers:
            queue.put_nowait(entry)

    def _close_streams(self) -> None:
        for queue in self._subscribers:
            queue.put_nowait(None)

    @staticmethod
    def _wanted(entry: _LogEntry, collections: list[str], dids: list[str]) -> bool:
        if dids and entry.did not in dids:
            return False
        if entry.collection is None or not collections:
            return True
        return any(
            entry.collection == c or (c.endswith(".*") and entry.collection.startswith(c[:-1]))
            for c in collections
        )

    async def _subscribe(self, request: web.Request) -> web.StreamResponse:
        collections = request.query.getall("wantedCollections", [])
        dids = request.query.getall("wantedDids", [])
        cursor = int(request.query.get("cursor", "0") or 0)
        ws = web.WebSocketResponse(heartbeat=None)
        await ws.prepare(request)
        queue: asyncio.Queue[_LogEntry | str | None] = asyncio.Queue()
        self._subscribers.add(queue)
        try:
            last = 0
            if cursor:
                for entry in list(self._log):
                    if entry.time_us >= cursor and self._wanted(entry, collections, dids):
                        await ws.send_str(entry.frame)
                        last = entry.time_us
            reader = asyncio.ensure_future(ws.receive())
            while not ws.closed:
                getter = asyncio.ensure_future(queue.get())
                done, _ = await asyncio.wait({getter, reader}, return_when=asyncio.FIRST_COMPLETED)
                if reader in done:
                    getter.cancel()
                    msg = reader.result()
                    if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.ERROR):
                        break
                    reader = asyncio.ensure_future(ws.receive())
                    continue
                item = getter.result()
                if item is None:
                    break
                if isinstance(item, str):
                    await ws.send_str(item)  # an injected raw frame
                elif item.time_us > last and self._wanted(item, collections, dids):
                    await ws.send_str(item.frame)
                    last = item.time_us
            reader.cancel()
        except ConnectionResetError:
            pass
        finally:
            self._subscribers.discard(queue)
            await ws.close()
        return ws
