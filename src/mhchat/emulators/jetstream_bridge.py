"""A small Jetstream server fed by a real repo firehose.

Jetstream (a Go service, not installable here) turns ``com.atproto.sync.subscribeRepos`` into
plain JSON over a websocket. This bridge does the same for a local PDS: it follows the PDS
firehose with the atproto SDK's ``AsyncFirehoseSubscribeReposClient``, decodes each commit's CAR
blocks, and serves the events in Jetstream's shape on ``/subscribe``:

- ``{"did", "time_us", "kind": "commit", "commit": {"rev", "operation", "collection", "rkey",
  "record", "cid"}}``, one event per repo operation; deletes carry no ``record``/``cid``;
- ``{"did", "time_us", "kind": "identity", "identity": {"did", "handle", "seq", "time"}}``;
- ``{"did", "time_us", "kind": "account", "account": {"active", "did", "seq", "time"}}``.

Query parameters as Jetstream documents them: ``wantedCollections`` (repeatable, NSID or
``prefix.*``; identity and account events always pass), ``wantedDids`` (repeatable), ``cursor``
(unix microseconds: replay every logged event with ``time_us >= cursor``, then live; absent or in
the future means live tail) and ``requireHello`` (wait for the first ``options_update``
message). ``time_us`` is the bridge's own receive time, strictly increasing, as in Jetstream.
Replay comes from an in-memory log, so it covers what the bridge saw since it started (it reads
the firehose from ``firehose_cursor``, 0 by default: the PDS's whole history).

Run standalone: ``python -m mhchat.emulators.jetstream_bridge ws://localhost:PORT --port N``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import bisect
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import WSMsgType, web
from atproto import (  # type: ignore[import-untyped]
    CAR,
    CID,
    AsyncFirehoseSubscribeReposClient,
    parse_subscribe_repos_message,
)
from atproto_client.models.com.atproto.sync import (  # type: ignore[import-untyped]
    subscribe_repos,
)
from atproto_subscription.frames import MessageFrame  # type: ignore[import-untyped]

MAX_WANTED_COLLECTIONS = 100
MAX_WANTED_DIDS = 10_000


@dataclass(frozen=True, slots=True)
class LoggedEvent:
    time_us: int
    did: str
    collection: str | None
    """``None`` for identity and account events, which every subscriber receives."""
    text: str
    """The event as Jetstream JSON."""


@dataclass(slots=True)
class _Filter:
    collections: tuple[str, ...] = ()
    dids: frozenset[str] = frozenset()

    def wants(self, event: LoggedEvent) -> bool:
        if self.dids and event.did not in self.dids:
            return False
        if event.collection is None or not self.collections:
            return True
        return any(
            event.collection == c or (c.endswith(".*") and event.collection.startswith(c[:-1]))
            for c in self.collections
        )


# CIDv1, codec raw (0x55) or dag-cbor (0x71), sha2-256 multihash of 32 bytes: every link in
# atproto records has this binary form.
_CID_PREFIXES = (b"\x01\x55\x12\x20", b"\x01\x71\x12\x20")
_CID_LENGTH = 36


def _is_cid(value: bytes | bytearray) -> bool:
    return len(value) == _CID_LENGTH and bytes(value[:4]) in _CID_PREFIXES


def to_json_value(value: Any) -> Any:
    """DAG-CBOR data model -> atproto JSON: links become ``$link``, bytes become ``$bytes``.

    The SDK's decoder (libipld) hands a link (CBOR tag 42) over as the CID's raw bytes, so a
    byte string with exactly a CID's binary form is taken as a link. Records hold links (blob
    refs) far more often than raw bytes, and a real byte string of that exact shape is unlikely.
    """
    if isinstance(value, dict):
        return {str(k): to_json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json_value(v) for v in value]
    if isinstance(value, CID):
        return {"$link": str(value)}
    if isinstance(value, bytes | bytearray):
        if _is_cid(value):
            return {"$link": str(CID.from_decoded_bytes(bytes(value)))}
        return {"$bytes": base64.b64encode(value).decode().rstrip("=")}
    return value


def commit_events(commit: subscribe_repos.Commit) -> list[tuple[str, dict[str, Any]]]:
    """Jetstream ``commit`` bodies (without ``time_us``), one per operation, with collections."""
    blocks = CAR.from_bytes(commit.blocks).blocks if commit.blocks else {}
    out: list[tuple[str, dict[str, Any]]] = []
    for op in commit.ops:
        collection, _, rkey = op.path.partition("/")
        body: dict[str, Any] = {
            "rev": commit.rev,
            "operation": op.action,
            "collection": collection,
            "rkey": rkey,
        }
        if op.action in ("create", "update"):
            if op.cid is None:
                continue
            record = blocks.get(op.cid)
            if record is None:
                # The record block is missing (a "tooBig" commit); Jetstream skips these too.
                continue
            body["record"] = to_json_value(record)
            body["cid"] = str(op.cid)
        out.append((collection, body))
    return out


class JetstreamBridge:
    """Follows a PDS firehose and serves it as Jetstream. ``await start()`` returns the URL."""

    def __init__(
        self,
        firehose_url: str,
        *,
        firehose_cursor: int | None = 0,
        max_log: int = 200_000,
        now_us: Callable[[], int] | None = None,
    ) -> None:
        """``firehose_url`` is the PDS's websocket XRPC base, e.g. ``ws://localhost:2583``."""
        base = firehose_url.rstrip("/")
        self._firehose_base = base if base.endswith("/xrpc") else base + "/xrpc"
        self._firehose_cursor = firehose_cursor
        self._max_log = max_log
        self._now_us = now_us or (lambda: time.time_ns() // 1000)
        self._log: list[LoggedEvent] = []
        self._times: list[int] = []
        self._base_index = 0  # absolute index of self._log[0] after trimming
        self._last_time_us = 0
        self._changed = asyncio.Condition()
        self._client: AsyncFirehoseSubscribeReposClient | None = None
        self._reader: asyncio.Task[None] | None = None
        self._runner: web.AppRunner | None = None
        self._sockets: set[web.WebSocketResponse] = set()
        self.base_url = ""
        self.last_seq = 0
        """The last firehose sequence number processed."""
        self.firehose_error: BaseException | None = None
        """Why the firehose reader stopped for good (an error frame such as FutureCursor)."""
        self.counters: dict[str, int] = {
            "firehose_frames": 0,
            "commits": 0,
            "events": 0,
            "skipped_frames": 0,
            "subscribers": 0,
        }

    # ----------------------------------------------------------------- lifecycle

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        app = web.Application()
        app.router.add_get("/subscribe", self._subscribe)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        server = site._server  # the bound port when port=0
        assert server is not None
        bound = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        self.base_url = f"http://{host}:{bound}"
        params = {} if self._firehose_cursor is None else {"cursor": self._firehose_cursor}
        self._client = AsyncFirehoseSubscribeReposClient(params, base_uri=self._firehose_base)
        self._reader = asyncio.create_task(self._client.start(self._on_frame, self._on_error))
        self._reader.add_done_callback(self._reader_done)
        return self.base_url

    def _reader_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            self.firehose_error = task.exception()

    async def stop(self) -> None:
        if self._client is not None:
            await self._client.stop()
        if self._reader is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(self._reader, 5)
            self._reader = None
        self.drop_streams()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def jetstream_url(self) -> str:
        return self.base_url.replace("http://", "ws://", 1) + "/subscribe"

    # ---------------------------------------------------------------- inspection

    def events(self) -> list[dict[str, Any]]:
        """Every logged event, decoded (what a subscriber with cursor=0 would receive)."""
        return [orjson.loads(e.text) for e in self._log]

    @property
    def last_time_us(self) -> int:
        return self._last_time_us

    async def wait_for_seq(self, seq: int, within: float = 10.0) -> None:
        """Wait until the firehose event ``seq`` has been processed (``TimeoutError`` if not)."""
        async with asyncio.timeout(within), self._changed:
            await self._changed.wait_for(lambda: self.last_seq >= seq)

    async def wait_for_event(
        self, predicate: Callable[[dict[str, Any]], bool], within: float = 10.0
    ) -> dict[str, Any]:
        """Return the first logged event (old or new) for which ``predicate`` holds."""
        checked = self._base_index
        async with asyncio.timeout(within):
            while True:
                end = self._base_index + len(self._log)
                for i in range(max(checked, self._base_index), end):
                    event: dict[str, Any] = orjson.loads(self._log[i - self._base_index].text)
                    if predicate(event):
                        return event
                checked = end
                await self._wait_beyond(end)

    # ----------------------------------------------------------- fault injection

    def drop_streams(self) -> None:
        """Close every subscriber's connection, as a Jetstream restart would."""
        for ws in list(self._sockets):
            task = asyncio.ensure_future(ws.close(code=1001, message=b"going away"))
            task.add_done_callback(lambda t: t.exception())

    def inject_frame(self, text: str) -> None:
        """Send a raw text frame (malformed JSON, say) to every live subscriber, unlogged."""
        for ws in list(self._sockets):
            task = asyncio.ensure_future(ws.send_str(text))
            task.add_done_callback(lambda t: t.exception())

    # ------------------------------------------------------------------ firehose

    async def _on_error(self, exc: BaseException) -> None:
        self.counters["skipped_frames"] += 1

    async def _on_frame(self, frame: MessageFrame) -> None:
        self.counters["firehose_frames"] += 1
        try:
            message = parse_subscribe_repos_message(frame)
        except Exception:  # noqa: BLE001 - one undecodable frame must not stop the stream
            self.counters["skipped_frames"] += 1
            return
        seq = getattr(message, "seq", None)
        if isinstance(seq, int):
            if seq <= self.last_seq:
                return  # replayed after the SDK reconnected
            if self._client is not None:
                # The SDK reconnects with its params; keep them at our position.
                self._client.update_params({"cursor": seq})
        try:
            items = self._translate(message)
        except Exception:  # noqa: BLE001 - a broken commit (bad CAR) is skipped and counted
            self.counters["skipped_frames"] += 1
            items = []
        for did, collection, kind, body in items:
            self._append(did, collection, kind, body)
        async with self._changed:
            if isinstance(seq, int):
                self.last_seq = seq
            self._changed.notify_all()

    def _translate(self, message: Any) -> list[tuple[str, str | None, str, dict[str, Any]]]:
        if isinstance(message, subscribe_repos.Commit):
            self.counters["commits"] += 1
            return [
                (message.repo, collection, "commit", body)
                for collection, body in commit_events(message)
            ]
        if isinstance(message, subscribe_repos.Identity):
            body = {
                "did": message.did,
                "handle": message.handle,
                "seq": message.seq,
                "time": message.time,
            }
            return [(message.did, None, "identity", body)]
        if isinstance(message, subscribe_repos.Account):
            body = {
                "active": message.active,
                "did": message.did,
                "seq": message.seq,
                "time": message.time,
            }
            if message.status is not None:
                body["status"] = message.status
            return [(message.did, None, "account", body)]
        return []  # sync, info: Jetstream does not forward them

    def _append(self, did: str, collection: str | None, kind: str, body: dict[str, Any]) -> None:
        time_us = max(self._now_us(), self._last_time_us + 1)
        self._last_time_us = time_us
        event = {"did": did, "time_us": time_us, "kind": kind, kind: body}
        logged = LoggedEvent(time_us, did, collection, orjson.dumps(event).decode())
        self._log.append(logged)
        self._times.append(time_us)
        self.counters["events"] += 1
        if len(self._log) > self._max_log:
            drop = len(self._log) - self._max_log // 2
            del self._log[:drop]
            del self._times[:drop]
            self._base_index += drop

    # ---------------------------------------------------------------- subscribers

    def _start_index(self, cursor: int | None) -> int:
        if cursor is None or cursor > self._now_us():
            return self._base_index + len(self._log)  # live tail
        return self._base_index + bisect.bisect_left(self._times, cursor)

    async def _subscribe(self, request: web.Request) -> web.StreamResponse:
        try:
            flt, cursor, require_hello = _parse_query(request)
        except ValueError as exc:
            raise web.HTTPBadRequest(text=str(exc)) from exc
        ws = web.WebSocketResponse(heartbeat=None)
        await ws.prepare(request)
        self._sockets.add(ws)
        self.counters["subscribers"] += 1
        hello = asyncio.Event()
        if not require_hello:
            hello.set()
        reader = asyncio.create_task(self._read_client(ws, flt, hello))
        try:
            await self._send_loop(ws, flt, self._start_index(cursor), hello, reader)
        except (ConnectionResetError, RuntimeError):
            pass  # the subscriber went away mid-send
        finally:
            reader.cancel()
            self._sockets.discard(ws)
            await ws.close()
        return ws

    async def _send_loop(
        self,
        ws: web.WebSocketResponse,
        flt: _Filter,
        index: int,
        hello: asyncio.Event,
        reader: asyncio.Task[None],
    ) -> None:
        await _first_of(hello.wait(), reader)
        while not ws.closed and not reader.done():
            # A subscriber that fell behind the trimmed log resumes at its oldest event.
            index = max(index, self._base_index)
            while index - self._base_index < len(self._log):
                event = self._log[index - self._base_index]
                index += 1
                if flt.wants(event):
                    await ws.send_str(event.text)
            await _first_of(self._wait_beyond(index), reader)

    async def _wait_beyond(self, index: int) -> None:
        async with self._changed:
            await self._changed.wait_for(lambda: self._base_index + len(self._log) > index)

    async def _read_client(
        self, ws: web.WebSocketResponse, flt: _Filter, hello: asyncio.Event
    ) -> None:
        """Handles Jetstream's subscriber-sourced ``options_update`` messages."""
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                continue
            try:
                payload = orjson.loads(msg.data)
                if payload.get("type") != "options_update":
                    continue
                update = payload["payload"]
                collections = tuple(update.get("wantedCollections") or ())
                dids = frozenset(update.get("wantedDids") or ())
                _check_limits(collections, dids)
            except (ValueError, KeyError, TypeError, AttributeError):
                await ws.close(code=1008, message=b"invalid options update")
                return
            flt.collections, flt.dids = collections, dids
            hello.set()


async def _first_of(waiter: Any, reader: asyncio.Task[None]) -> None:
    task = asyncio.ensure_future(waiter)
    try:
        await asyncio.wait({task, reader}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not task.done():
            task.cancel()


def _check_limits(collections: tuple[str, ...], dids: frozenset[str]) -> None:
    if len(collections) > MAX_WANTED_COLLECTIONS:
        raise ValueError(f"at most {MAX_WANTED_COLLECTIONS} wantedCollections")
    if len(dids) > MAX_WANTED_DIDS:
        raise ValueError(f"at most {MAX_WANTED_DIDS} wantedDids")
    for c in collections:
        if not isinstance(c, str) or not c or (c.endswith("*") and not c.endswith(".*")):
            raise ValueError(f"invalid collection filter: {c!r}")


def _parse_query(request: web.Request) -> tuple[_Filter, int | None, bool]:
    collections = tuple(request.query.getall("wantedCollections", []))
    dids = frozenset(request.query.getall("wantedDids", []))
    _check_limits(collections, dids)
    raw_cursor = request.query.get("cursor")
    cursor: int | None = None
    if raw_cursor:
        try:
            cursor = int(raw_cursor)
        except ValueError as exc:
            raise ValueError(f"cursor must be unix microseconds, got {raw_cursor!r}") from exc
    if request.query.get("compress", "false") == "true":
        raise ValueError("compress=true (zstd) is not supported by this bridge")
    require_hello = request.query.get("requireHello", "false") == "true"
    return _Filter(collections, dids), cursor, require_hello


async def _serve(firehose: str, host: str, port: int) -> None:
    bridge = JetstreamBridge(firehose)
    url = await bridge.start(host, port)
    print(f"jetstream bridge on {url}/subscribe, following {firehose}", flush=True)  # noqa: T201
    try:
        await asyncio.Event().wait()
    finally:
        await bridge.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve a PDS firehose as Jetstream JSON.")
    parser.add_argument("firehose", help="PDS websocket base, e.g. ws://localhost:2583")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=6008)
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args.firehose, args.host, args.port))


if __name__ == "__main__":
    main()
