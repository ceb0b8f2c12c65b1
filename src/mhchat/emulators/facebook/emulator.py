"""The Facebook emulator itself: serving Graph, participants acting on the page, and Meta's
data-deletion callback."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
from typing import Any

import aiohttp
from aiohttp import web

from mhchat.emulators.common import serve
from mhchat.emulators.facebook.graph import FacebookGraph
from mhchat.emulators.facebook.model import Person


class FacebookEmulator(FacebookGraph):
    """One page, its Graph API and its webhook deliveries. See the package docstring."""

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        app = web.Application()
        app.router.add_route("*", r"/{version:v\d+\.\d+}/{path:.*}", self._graph)
        self._runner, self.base_url = await serve(app, host, port, access_log=True)
        self._http = aiohttp.ClientSession()
        self._release.clear()
        return self.base_url

    async def stop(self) -> None:
        self._release.set()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._http is not None:
            await self._http.close()
            self._http = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def page_post(self, message: str) -> str:
        """The page posts directly (as from the page's own interface)."""
        return self._add_post(self.page, message).id

    async def visitor_post(self, author: Person, message: str) -> str:
        return self._add_post(author, message).id

    async def comment(
        self, author: Person, message: str, on_post: str, parent: str | None = None
    ) -> str:
        """``author`` comments on ``on_post`` (or replies to the comment ``parent``)."""
        return self._add_comment(author, message, parent or on_post).id

    async def edit(self, object_id: str, message: str) -> None:
        node = self.nodes[object_id]
        node.message = message
        self._emit(self._change_value(node, "edited") | {"message": message}, node)

    async def remove(self, object_id: str) -> None:
        node = self.nodes[object_id]
        node.removed = True
        # A post's comments and a comment's replies go with it; Meta announces only this one.
        gone = {object_id}
        while True:
            under = [
                n
                for n in self.nodes.values()
                if not n.removed and (n.parent_id in gone or n.post_id in gone)
            ]
            if not under:
                break
            for n in under:
                n.removed = True
                gone.add(n.id)
        value = self._change_value(node, "remove")
        self._emit(value, node)

    def signed_request(self, user_id: str, *, app_secret: str | None = None) -> str:
        payload = {
            "algorithm": "HMAC-SHA256",
            "expires": int(self.clock.now().timestamp()) + 3600,
            "issued_at": int(self.clock.now().timestamp()),
            "user_id": user_id,
        }
        encoded = base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")
        key = (app_secret or self.app_secret).encode()
        digest = hmac.new(key, encoded.encode(), hashlib.sha256).digest()
        signature = base64.urlsafe_b64encode(digest).decode().rstrip("=")
        return f"{signature}.{encoded}"

    async def request_data_deletion(self, url: str, user_id: str) -> tuple[int, Any]:
        """POST Meta's data-deletion callback for ``user_id``: (status, JSON or text)."""
        assert self._http is not None, "start() the emulator first"
        form = {"signed_request": self.signed_request(user_id)}
        async with self._http.post(url, data=form) as resp:
            text = await resp.text()
            try:
                return resp.status, json.loads(text)
            except ValueError:
                return resp.status, text
