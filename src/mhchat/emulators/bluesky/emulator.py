"""The Bluesky emulator itself: the aiohttp app and its XRPC dispatch."""

from __future__ import annotations

import functools
from typing import Any

import orjson
from aiohttp import web

from mhchat.emulators.bluesky.model import _NO_AUTH, Handler, RecordedRequest, XrpcError
from mhchat.emulators.bluesky.participants import BlueskyParticipants
from mhchat.emulators.common import ConnectionDropped, serve


class BlueskyEmulator(BlueskyParticipants):
    """An in-memory PDS + appview + Jetstream. ``await start()`` returns the base URL."""

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        app = web.Application()
        app.router.add_route("*", "/xrpc/{nsid}", self._dispatch)
        app.router.add_get("/subscribe", self._subscribe)
        self._stopping.clear()
        self._runner, self.base_url = await serve(app, host, port)
        return self.base_url

    async def stop(self) -> None:
        self._stopping.set()
        self._close_streams()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @functools.cached_property
    def _handlers(self) -> dict[str, tuple[str, bool, Handler]]:
        """XRPC method -> (HTTP method, whether a session is required, handler)."""
        return {
            "com.atproto.server.createSession": ("POST", False, self._create_session),
            "com.atproto.server.refreshSession": ("POST", False, self._refresh_session),
            "com.atproto.server.getSession": ("GET", True, self._get_session),
            "com.atproto.identity.resolveHandle": ("GET", False, self._resolve_handle),
            "app.bsky.actor.getProfile": ("GET", True, self._get_profile),
            "app.bsky.actor.getProfiles": ("GET", True, self._get_profiles),
            "com.atproto.repo.createRecord": ("POST", True, self._create_record),
            "com.atproto.repo.putRecord": ("POST", True, self._put_record),
            "com.atproto.repo.deleteRecord": ("POST", True, self._delete_record),
            "com.atproto.repo.getRecord": ("GET", False, self._get_record),
            "com.atproto.repo.listRecords": ("GET", False, self._list_records),
            "app.bsky.feed.getPosts": ("GET", True, self._get_posts),
            "app.bsky.feed.getPostThread": ("GET", True, self._get_post_thread),
            "app.bsky.feed.searchPosts": ("GET", False, self._search_posts),
        }

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        nsid = request.match_info["nsid"]
        did: str | None = None
        status = 200
        try:
            method, needs_auth, handler = self._route(nsid, request.method)
            fault = self._take_fault(nsid)
            if fault is not None:
                await self._apply_fault_before(request, fault)
            body: dict[str, Any] = {}
            if method == "POST" and request.can_read_body:
                raw = await request.read()
                body = orjson.loads(raw) if raw else {}
            # createSession ignores a stale Authorization header, as the PDS does; optional-auth
            # reads check a token only when one is sent.
            if needs_auth or (request.headers.get("Authorization") and nsid not in _NO_AUTH):
                did = self._authorize(request, nsid)
            headers: dict[str, str] = {}
            result = await handler(request, body, did)
            headers = result.pop("__headers__", {})
            if fault is not None and fault.kind == "hang_after":
                await self._hang()
            return web.json_response(result, headers=headers)
        except XrpcError as exc:
            status = exc.status
            return exc.response()
        except ConnectionDropped:
            status = 0
            return web.Response(status=500)  # never reaches the client: the socket is gone
        finally:
            self.requests.append(RecordedRequest(nsid, request.method, did, status))

    def _route(self, nsid: str, method: str) -> tuple[str, bool, Handler]:
        entry = self._handlers.get(nsid)
        if entry is None:
            raise XrpcError(501, "MethodNotImplemented", "Method Not Implemented")
        if method != entry[0]:
            raise XrpcError(400, "InvalidRequest", f"Incorrect HTTP method ({method})")
        return entry
