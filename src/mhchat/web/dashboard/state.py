"""What every dashboard handler shares: the running service, the sign-in checks, the live hub,
and the small helpers that answer a facilitator's action and record it in the audit table."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from mhchat.runtime import Runtime
from mhchat.store.db import Tx
from mhchat.web.dashboard.auth import Credentials, LoginLimiter
from mhchat.web.dashboard.live import LiveHub
from mhchat.web.dashboard.security import WHO, SignOuts, get_session
from mhchat.web.dashboard.settings import DashboardSettings


class ActionRefused(Exception):
    """A facilitator's action that cannot be done, with a sentence saying why."""


@dataclass
class DashboardState:
    runtime: Runtime
    settings: DashboardSettings
    credentials: Credentials
    limiter: LoginLimiter
    hub: LiveHub
    signouts: SignOuts

    @property
    def chat_id(self) -> str:
        return self.runtime.settings.chat.chat_id

    async def _done(self, request: web.Request, message: str, anchor: str) -> web.StreamResponse:
        self.runtime.poke_senders()
        if "application/json" in request.headers.get("Accept", ""):
            return web.json_response({"ok": True, "message": message})
        session = await get_session(request)
        session["flash"] = message
        raise web.HTTPSeeOther(location=f"/dashboard/#{anchor}")

    def _refused(self, request: web.Request, message: str) -> web.StreamResponse:
        if "application/json" in request.headers.get("Accept", ""):
            return web.json_response({"ok": False, "message": message}, status=409)
        return web.Response(text=message, status=409)

    async def _audit(self, who: str, what: str, detail: str | None) -> None:
        async with self.runtime.require_db().write() as tx:
            await audit(tx, self.chat_id, self.runtime, who, what, detail)


def actor(request: web.Request) -> str:
    return f"dashboard:{request[WHO]}"


async def audit(  # noqa: PLR0917 - one audit row's columns
    tx: Tx, chat_id: str, runtime: Runtime, who: str, what: str, detail: str | None
) -> None:
    """One audit row: who did what, with ids and states only (never post text)."""
    await tx.execute(
        "INSERT INTO audit (chat_id, at, actor, what, detail) VALUES (?, ?, ?, ?, ?)",
        (chat_id, runtime.clock.now().isoformat(), f"dashboard:{who}", what, detail),
    )


def dumps(data: Any) -> str:
    return orjson.dumps(data).decode()
