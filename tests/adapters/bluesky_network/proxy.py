"""An HTTP pass-through in front of the real PDS that can lose an answer.

``swallow_next(nsid)`` lets the next call of that method reach the PDS (so it takes effect) and
then never answers it: the "timeout after the request reached the platform" case, on a real
server that would otherwise always answer.
"""

from __future__ import annotations

import asyncio
import contextlib

import aiohttp
from aiohttp import web

_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "transfer-encoding",
        "content-length",
        "content-encoding",
        "host",
        "upgrade",
    }
)


class XrpcProxy:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.base_url = ""
        self.swallowed: list[str] = []
        """NSIDs whose answers were dropped after the PDS handled them."""
        self._armed: list[str] = []
        self._runner: web.AppRunner | None = None
        self._http: aiohttp.ClientSession | None = None
        self._closing = asyncio.Event()

    def swallow_next(self, nsid: str) -> None:
        self._armed.append(nsid)

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        self._http = aiohttp.ClientSession()
        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        assert site._server is not None
        bound = site._server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        self.base_url = f"http://{host}:{bound}"
        return self.base_url

    async def stop(self) -> None:
        self._closing.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._http is not None:
            await self._http.close()
            self._http = None

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        assert self._http is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
        body = await request.read()
        async with self._http.request(
            request.method,
            f"{self.upstream}{request.rel_url}",
            headers=headers,
            data=body or None,
            allow_redirects=False,
        ) as upstream:
            payload = await upstream.read()
            status = upstream.status
            answer_headers = {
                k: v for k, v in upstream.headers.items() if k.lower() not in _HOP_BY_HOP
            }
        nsid = request.path.rsplit("/", 1)[-1]
        if nsid in self._armed:
            self._armed.remove(nsid)
            self.swallowed.append(nsid)
            # The PDS has done the work; the caller never hears of it.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), timeout=60)
            raise web.HTTPGatewayTimeout()
        return web.Response(status=status, body=payload, headers=answer_headers)
