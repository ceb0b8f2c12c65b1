"""The dashboard's sign-in and pages: the live view and its panels, the feed snapshot, the
transcripts list and exports, and a session's activity charts."""

from __future__ import annotations

import structlog
from aiohttp import web

from mhchat import transcript
from mhchat.facilitation import views
from mhchat.store.db import Tx
from mhchat.web.dashboard import panels as fragments
from mhchat.web.dashboard import queries, render
from mhchat.web.dashboard.security import WHO, csrf_token, get_session, sign_in, signed_in
from mhchat.web.dashboard.state import DashboardState, dumps

log = structlog.get_logger("mhchat.dashboard")


class Pages(DashboardState):
    # -- sign-in ----------------------------------------------------------------------------

    async def login(self, request: web.Request) -> web.StreamResponse:
        session = await get_session(request)
        if signed_in(session, self.settings, self.signouts) is not None:
            raise web.HTTPSeeOther(location="/dashboard/")
        html = render.login_page(csrf_token(session), self.settings.facilitators)
        return web.Response(text=html, content_type="text/html")

    async def login_post(self, request: web.Request) -> web.StreamResponse:
        address = request.remote or "unknown"
        wait = self.limiter.retry_after(address)
        if wait > 0:
            log.warning("dashboard_login_limited", address=address)
            raise web.HTTPTooManyRequests(
                text="Too many failed sign-ins from this address:"
                f" try again in {int(wait) + 1} seconds.",
                headers={"Retry-After": str(int(wait) + 1)},
            )
        form = await request.post()
        name = str(form.get("facilitator", ""))
        secret = str(form.get("password", ""))
        who = self.credentials.facilitator(name)
        if who is None or not secret or not self.credentials.check(secret):
            self.limiter.failed(address)
            log.warning("dashboard_login_failed", address=address)
            session = await get_session(request)
            html = render.login_page(
                csrf_token(session),
                self.settings.facilitators,
                error="That did not match. Check the password or token and try again.",
            )
            return web.Response(text=html, content_type="text/html", status=401)
        self.limiter.succeeded(address)
        await sign_in(request, who)
        await self._audit(who, "signed in", None)
        raise web.HTTPSeeOther(location="/dashboard/")

    async def logout(self, request: web.Request) -> web.StreamResponse:
        session = await get_session(request)
        await self._audit(request[WHO], "signed out", None)
        sid = session.get("sid")
        if isinstance(sid, str):
            self.signouts.revoke(sid)
        session.invalidate()
        raise web.HTTPSeeOther(location="/dashboard/login")

    # -- pages ------------------------------------------------------------------------------

    async def _panels_for(self, request: web.Request) -> tuple[dict[str, str], dict[str, int]]:
        rt = self.runtime
        session = await get_session(request)
        token = csrf_token(session)
        async with rt.require_db().read() as tx:
            flags = await views.safety_queue(tx, self.chat_id, rt.clock.now())
            lists = await queries.ledger_lists(tx, self.chat_id)
            recent = await queries.recent_decisions(tx, self.chat_id, limit=20)
            hidden = {f.signpost_key for f in flags if f.signpost_key}
            approvals = [r for r in lists["approvals"] if r.key not in hidden]
            about = await queries.posts_about(tx, self.chat_id, [*approvals, *lists["unknown"]])
        controls = rt.controls
        panels = {
            "queue": fragments.safety_panel(flags, token),
            "approvals": fragments.approvals_panel(approvals, about, token),
            "unknown": fragments.unknown_panel(lists["unknown"], about, token),
            "controls": fragments.controls_panel(
                controls.killed if controls else False, rt.modes, token
            ),
            "health": fragments.health_panel(queries.health(rt)),
            "decisions": fragments.decisions_panel(recent),
        }
        counts = {
            "queue": len(flags),
            "approvals": len(approvals),
            "unknown": len(lists["unknown"]),
        }
        return panels, counts

    async def live(self, request: web.Request) -> web.StreamResponse:
        session = await get_session(request)
        flash = session.pop("flash", None)
        panels, counts = await self._panels_for(request)
        html = render.live_page(
            panels, counts, token=csrf_token(session), who=request[WHO], flash=flash
        )
        return web.Response(text=html, content_type="text/html")

    async def events(self, request: web.Request) -> web.StreamResponse:
        """The live feed (server-sent events)."""
        return await self.hub.stream(request)

    async def panels_json(self, request: web.Request) -> web.StreamResponse:
        panels, counts = await self._panels_for(request)
        return web.json_response({"panels": panels, "counts": counts}, dumps=dumps)

    async def feed_json(self, request: web.Request) -> web.StreamResponse:
        async with self.runtime.require_db().read() as tx:
            posts = await queries.recent_posts(tx, self.chat_id)
            texts = await queries.question_texts(
                tx, self.chat_id, [p["session"] for p in posts if p["session"]]
            )
        for post in posts:
            post["question_text"] = texts.get(f"{post['session']}/{post['question']}")
        return web.json_response({"posts": posts}, dumps=dumps)

    async def transcripts(self, request: web.Request) -> web.StreamResponse:
        session = await get_session(request)
        async with self.runtime.require_db().read() as tx:
            sessions = await views.sessions(tx, self.chat_id)
        html = render.transcripts_page(sessions, token=csrf_token(session), who=request[WHO])
        return web.Response(text=html, content_type="text/html")

    async def session_view(self, request: web.Request) -> web.StreamResponse:
        sid = request.match_info["session"]
        session = await get_session(request)
        async with self.runtime.require_db().read() as tx:
            if not await _session_exists(tx, self.chat_id, sid):
                raise web.HTTPNotFound(text="No such session.")
            fig = await views.figures(tx, self.chat_id, sid)
        html = render.session_page(fig, token=csrf_token(session), who=request[WHO])
        return web.Response(text=html, content_type="text/html")

    async def activity_json(self, request: web.Request) -> web.StreamResponse:
        sid = request.match_info["session"]
        async with self.runtime.require_db().read() as tx:
            if not await _session_exists(tx, self.chat_id, sid):
                raise web.HTTPNotFound(text="No such session.")
            data = await queries.activity(tx, self.chat_id, sid)
        return web.json_response(data, dumps=dumps)

    async def export(self, request: web.Request) -> web.StreamResponse:
        sid = request.match_info["session"]
        fmt_text = request.match_info.get("fmt") or request.query.get("format", "md")
        try:
            fmt = transcript.Format(fmt_text)
        except ValueError:
            raise web.HTTPBadRequest(
                text="Use one of the formats md, html, json or csv."
            ) from None
        anonymise = request.query.get("anonymise") in {"1", "on", "true", "yes"}
        try:
            body = await transcript.export(
                self.runtime.require_db(), self.chat_id, sid, fmt, anonymise=anonymise
            )
        except transcript.SessionNotFound:
            raise web.HTTPNotFound(text="No such session.") from None
        await self._audit(
            request[WHO],
            "exported transcript",
            f"{sid} {fmt.value}{' anonymised' if anonymise else ''}",
        )
        name = transcript.filename(sid, fmt, anonymise=anonymise)
        return web.Response(
            body=body.encode(),
            headers={
                "Content-Type": transcript.CONTENT_TYPES[fmt],
                "Content-Disposition": f'attachment; filename="{name}"',
            },
        )


async def _session_exists(tx: Tx, chat_id: str, session_id: str) -> bool:
    row = await tx.fetchone(
        "SELECT 1 FROM chat_sessions WHERE chat_id = ? AND session_id = ?", (chat_id, session_id)
    )
    return row is not None
