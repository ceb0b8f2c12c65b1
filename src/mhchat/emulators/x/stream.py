"""The filtered stream (newline-delimited JSON with ``\\r\\n`` keep-alives) and its rules."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from aiohttp import web

from mhchat.emulators.x.model import _HEADERS, PROBLEMS, Principal, Tweet, XApiError, _iso, _Stream
from mhchat.emulators.x.render import XRender


class XStream(XRender):
    """Open stream connections, what they are sent, and the stream rules endpoints."""

    def push_stream_raw(self, line: bytes) -> None:
        """Send bytes as they are (a recorded line, a broken one) on every open stream."""
        for conn in self._streams:
            conn.queue.put_nowait(line)

    def stall_streams(self) -> None:
        """Open streams go silent (no data, no keep-alives) until the client gives up."""
        for conn in self._streams:
            conn.stalled = True

    def disconnect_streams(self) -> None:
        for conn in list(self._streams):
            conn.queue.put_nowait(None)

    @property
    def open_streams(self) -> int:
        return len(self._streams)

    def _broadcast(self, tweet: Tweet) -> None:
        if not self._streams:
            return
        matched = [
            {"id": rid, "tag": rule.get("tag")}
            for rid, rule in self.rules.items()
            if self._matches(rule["value"], tweet)
        ]
        if not matched:
            return
        for conn in self._streams:
            payload = self._envelope(
                [tweet], conn.fields, conn.expansions, conn.user_fields, single=True
            )
            payload["matching_rules"] = matched
            conn.queue.put_nowait(orjson.dumps(payload) + b"\r\n")

    async def _stream(
        self, request: web.Request, who: Principal, body: dict[str, Any]
    ) -> web.StreamResponse:
        if not self.rules:
            raise XApiError(
                409, "ConnectionException", "This stream has no rules.", "streaming-connection"
            )
        if len(self._streams) >= self.max_stream_connections:
            for _ in range(20):  # a client that just hung up may not be gone yet
                await asyncio.sleep(0.01)
                if len(self._streams) < self.max_stream_connections:
                    break
            else:
                raise XApiError(
                    429,
                    "ConnectionException",
                    "This stream is currently at the maximum allowed connection limit.",
                    "streaming-connection",
                    connection_issue="TooManyConnections",
                )
        response = web.StreamResponse(status=200, headers=dict(request.get(_HEADERS, {})))
        response.content_type = "application/json"
        conn = _Stream(
            asyncio.Queue(),
            self._fields(request, "tweet.fields"),
            self._fields(request, "expansions"),
            self._fields(request, "user.fields"),
        )
        # Registered before the headers go out: anything posted after the client sees 200
        # reaches it on the stream.
        self._streams.add(conn)
        self.stream_connections += 1
        try:
            await response.prepare(request)
            while not self._stopping.is_set():
                wait = 0.02 if conn.stalled else self.keepalive_seconds
                try:
                    item = await asyncio.wait_for(conn.queue.get(), wait)
                except TimeoutError:
                    item = b"\r\n"
                if item is None:
                    break
                if conn.stalled:
                    transport = request.transport
                    if transport is None or transport.is_closing():
                        break
                    continue
                try:
                    await response.write(item)
                except (ConnectionError, RuntimeError):
                    break
        finally:
            self._streams.discard(conn)
        return response

    async def _rules_get(
        self, request: web.Request, who: Principal, body: dict[str, Any]
    ) -> web.StreamResponse:
        meta = {"sent": _iso(self.clock.now()), "result_count": len(self.rules)}
        out: dict[str, Any] = {"meta": meta}
        if self.rules:
            out["data"] = [{"id": rid, **rule} for rid, rule in self.rules.items()]
        return self._json(request, out)

    async def _rules_post(
        self, request: web.Request, who: Principal, body: dict[str, Any]
    ) -> web.StreamResponse:
        sent = _iso(self.clock.now())
        if ("add" in body) == ("delete" in body):
            raise XApiError(
                400,
                "Invalid Request",
                "Exactly one of add, delete, or ?delete_all=true must be provided.",
                "invalid-request",
            )
        if "delete" in body:
            ids = [str(i) for i in body["delete"].get("ids", [])]
            gone = [i for i in ids if self.rules.pop(i, None) is not None]
            summary = {"deleted": len(gone), "not_deleted": len(ids) - len(gone)}
            return self._json(request, {"meta": {"sent": sent, "summary": summary}})
        created, errors = [], []
        for rule in body.get("add", []):
            value = str(rule.get("value", ""))
            self._check_query(value)
            if any(r["value"] == value for r in self.rules.values()):
                errors.append(
                    {
                        "value": value,
                        "id": next(i for i, r in self.rules.items() if r["value"] == value),
                        "title": "DuplicateRule",
                        "type": PROBLEMS + "duplicate-rules",
                    }
                )
                continue
            rid = self._new_id()
            self.rules[rid] = {"value": value, "tag": str(rule.get("tag", ""))}
            created.append({"id": rid, **self.rules[rid]})
        summary = {
            "created": len(created),
            "not_created": len(errors),
            "valid": len(created),
            "invalid": 0,
        }
        out: dict[str, Any] = {"meta": {"sent": sent, "summary": summary}}
        if created:
            out["data"] = created
        if errors:
            out["errors"] = errors
        return self._json(request, out, status=201 if created else 200)
