"""The dashboard's pages and the facilitator's actions.

Every action is a POST behind sign-in and the CSRF check, and is written to the audit table with
the facilitator's name (ids and states only, never post text). A form posted by the page's script
(``Accept: application/json``) gets a JSON answer; a plain form gets a redirect back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
import structlog
from aiohttp import web

from mhchat import ledger, transcript
from mhchat.actions import Purpose, Reply
from mhchat.codec import action_to_json
from mhchat.facilitation import views
from mhchat.facilitation.formatting import limit_for
from mhchat.ledger import Mode, State
from mhchat.runtime import Runtime
from mhchat.store.db import Tx
from mhchat.web.dashboard import queries, render
from mhchat.web.dashboard.auth import Credentials, LoginLimiter
from mhchat.web.dashboard.live import LiveHub
from mhchat.web.dashboard.security import WHO, csrf_token, get_session, sign_in, signed_in
from mhchat.web.dashboard.settings import DashboardSettings

log = structlog.get_logger("mhchat.dashboard")


class ActionRefused(Exception):
    """A facilitator's action that cannot be done, with a sentence saying why."""


@dataclass(slots=True)
class Dashboard:
    runtime: Runtime
    settings: DashboardSettings
    credentials: Credentials
    limiter: LoginLimiter
    hub: LiveHub

    @property
    def chat_id(self) -> str:
        return self.runtime.settings.chat.chat_id

    # -- sign-in ----------------------------------------------------------------------------

    async def login(self, request: web.Request) -> web.StreamResponse:
        session = await get_session(request)
        if signed_in(session, self.settings) is not None:
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
        controls = rt.controls
        panels = {
            "queue": render.safety_panel(flags, token),
            "approvals": render.approvals_panel(approvals, set(), token),
            "unknown": render.unknown_panel(lists["unknown"], token),
            "controls": render.controls_panel(
                controls.killed if controls else False, rt.modes, token
            ),
            "health": render.health_panel(queries.health(rt)),
            "decisions": render.decisions_panel(recent),
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

    async def panels_json(self, request: web.Request) -> web.StreamResponse:
        panels, counts = await self._panels_for(request)
        return web.json_response({"panels": panels, "counts": counts}, dumps=_dumps)

    async def feed_json(self, request: web.Request) -> web.StreamResponse:
        async with self.runtime.require_db().read() as tx:
            posts = await queries.recent_posts(tx, self.chat_id)
            texts = await queries.question_texts(
                tx, self.chat_id, [p["session"] for p in posts if p["session"]]
            )
        for post in posts:
            post["question_text"] = texts.get(f"{post['session']}/{post['question']}")
        return web.json_response({"posts": posts}, dumps=_dumps)

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
        return web.json_response(data, dumps=_dumps)

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

    # -- actions ----------------------------------------------------------------------------

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

    async def kill(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        value = form.get("value")
        if value not in {"on", "off"}:
            raise web.HTTPBadRequest(text="value must be on or off.")
        controls = self.runtime.controls
        if controls is None:
            raise web.HTTPServiceUnavailable(text="The service is still starting.")
        await controls.set_killed(
            value == "on", now=self.runtime.clock.now(), actor=_actor(request)
        )
        log.warning("kill_switch", on=value == "on", by=request[WHO])
        msg = "Every sender is stopped." if value == "on" else "Senders are running again."
        return await self._done(request, msg, "controls")

    async def mode(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        try:
            purpose = Purpose(str(form.get("purpose")))
            mode = Mode(str(form.get("mode")))
        except ValueError:
            raise web.HTTPBadRequest(text="Unknown purpose or mode.") from None
        controls = self.runtime.controls
        if controls is None:
            raise web.HTTPServiceUnavailable(text="The service is still starting.")
        try:
            await controls.set_mode(
                purpose, mode, now=self.runtime.clock.now(), actor=_actor(request)
            )
        except ValueError as exc:
            return self._refused(request, str(exc).capitalize() + ".")
        return await self._done(
            request, f"{purpose.value} actions now: {render.MODE_LABELS[mode]}.", "controls"
        )

    async def flag_action(self, request: web.Request) -> web.StreamResponse:
        flag_id = int(request.match_info["flag"])
        verb = request.match_info["verb"]
        who = request[WHO]
        now = self.runtime.clock.now()
        form = await request.post()
        try:
            async with self.runtime.require_db().write() as tx:
                flag = await tx.fetchone(
                    "SELECT platform, remote_id, signpost_key, state FROM safety_flags"
                    " WHERE chat_id = ? AND id = ?",
                    (self.chat_id, flag_id),
                )
                if flag is None:
                    raise web.HTTPNotFound(text="No such flag.")
                platform, remote_id, signpost_key = str(flag[0]), str(flag[1]), flag[2]
                if verb == "approve":
                    message = await self._approve_signpost(
                        tx, signpost_key, str(form.get("text", "")), who, now
                    )
                    await views.set_flag_state(tx, self.chat_id, flag_id, "handled", now)
                elif verb in {"dismiss", "handled"}:
                    state = "dismissed" if verb == "dismiss" else "handled"
                    await views.set_flag_state(tx, self.chat_id, flag_id, state, now)
                    if signpost_key is not None:
                        await _drop_waiting(
                            tx, str(signpost_key), now, f"flag {state} by {who} without sending"
                        )
                    message = "Flag dismissed." if verb == "dismiss" else "Flag marked handled."
                elif verb == "block":
                    author = await tx.fetchone(
                        "SELECT author_id FROM posts"
                        " WHERE chat_id = ? AND platform = ? AND remote_id = ?",
                        (self.chat_id, platform, remote_id),
                    )
                    if author is None:
                        raise ActionRefused(  # noqa: TRY301 - refused inside the transaction
                            "The post is gone, so its author is not known any more."
                        )
                    await tx.execute(
                        "UPDATE participants SET blocked = 1"
                        " WHERE chat_id = ? AND platform = ? AND author_id = ?",
                        (self.chat_id, platform, str(author[0])),
                    )
                    await views.set_flag_state(tx, self.chat_id, flag_id, "handled", now)
                    await audit(
                        tx,
                        self.chat_id,
                        self.runtime,
                        who,
                        "blocked author",
                        f"{platform}:{author[0]}",
                    )
                    message = "Author blocked: they will not be reposted or welcomed."
                else:
                    raise web.HTTPNotFound()
                await audit(
                    tx,
                    self.chat_id,
                    self.runtime,
                    who,
                    f"flag {verb}",
                    f"flag {flag_id} {platform}:{remote_id}",
                )
        except ActionRefused as exc:
            return self._refused(request, str(exc))
        return await self._done(request, message, "queue")

    async def _approve_signpost(self, tx: Tx, key: object, text: str, who: str, now: Any) -> str:
        if key is None:
            raise ActionRefused("This flag has no prepared reply.")
        row = await tx.fetchone("SELECT id FROM actions WHERE key = ?", (str(key),))
        found = await ledger.get(tx, int(row[0])) if row else None
        if found is None or found.state is not State.AWAITING_APPROVAL:
            raise ActionRefused("The reply is no longer waiting for approval.")
        action = found.action
        text = text.replace("\r\n", "\n").strip()
        if not text:
            raise ActionRefused("The reply is empty: write the reply, or dismiss the flag.")
        if isinstance(action, Reply) and text and text != action.text:
            limit = limit_for(action.platform)
            if limit.measure(text) > limit.maximum:
                raise ActionRefused(
                    f"The reply is too long for {limit.name}:"
                    f" at most {limit.maximum} {limit.unit}."
                )
            edited = Reply(
                key=action.key,
                platform=action.platform,
                purpose=action.purpose,
                text=text,
                parent=action.parent,
                root=action.root,
                parent_author_id=action.parent_author_id,
                parent_mentions_host=action.parent_mentions_host,
                not_after=action.not_after,
            )
            await tx.execute(
                "UPDATE actions SET payload = ? WHERE id = ?", (action_to_json(edited), found.id)
            )
            detail = f"approved with edited text by {who}"
        else:
            detail = f"approved by {who}"
        moved = await ledger.transition(
            tx,
            found.id,
            to=State.PENDING,
            now=now,
            detail=detail,
            expect=[State.AWAITING_APPROVAL],
        )
        if not moved:
            raise ActionRefused("The reply is no longer waiting for approval.")
        return "Reply approved: it is being sent."

    async def action(self, request: web.Request) -> web.StreamResponse:
        action_id = int(request.match_info["action"])
        verb = request.match_info["verb"]
        who = request[WHO]
        now = self.runtime.clock.now()
        rules: dict[str, tuple[list[State], State, str, str]] = {
            "approve": (
                [State.AWAITING_APPROVAL],
                State.PENDING,
                f"approved by {who}",
                "Approved: it is being sent.",
            ),
            "drop": (
                [State.AWAITING_APPROVAL, State.UNKNOWN],
                State.DROPPED,
                f"dropped by {who}",
                "Dropped.",
            ),
            "confirm": (
                [State.UNKNOWN],
                State.SENT,
                f"{who} confirmed it reached the platform",
                "Marked as sent.",
            ),
            "retry": (
                [State.UNKNOWN],
                State.PENDING,
                f"{who} asked to send it again",
                "It will be sent again.",
            ),
        }
        if verb not in rules:
            raise web.HTTPNotFound()
        expect, to, detail, message = rules[verb]
        async with self.runtime.require_db().write() as tx:
            row = await ledger.get(tx, action_id)
            if row is None or row.chat_id != self.chat_id:
                raise web.HTTPNotFound(text="No such action.")
            moved = await ledger.transition(
                tx, action_id, to=to, now=now, detail=detail, expect=expect
            )
            if moved:
                await audit(
                    tx,
                    self.chat_id,
                    self.runtime,
                    who,
                    f"action {verb}",
                    f"{row.key} {row.state.value}->{to.value}",
                )
        if not moved:
            return self._refused(
                request,
                f"That action is {row.state.value.replace('_', ' ')} now; nothing was changed.",
            )
        return await self._done(
            request, message, "approvals" if verb in {"approve", "drop"} else "unknown"
        )

    async def events(self, request: web.Request) -> web.StreamResponse:
        return await self.hub.stream(request)


def _actor(request: web.Request) -> str:
    return f"dashboard:{request[WHO]}"


async def audit(  # noqa: PLR0917 - one audit row's columns
    tx: Tx, chat_id: str, runtime: Runtime, who: str, what: str, detail: str | None
) -> None:
    await tx.execute(
        "INSERT INTO audit (chat_id, at, actor, what, detail) VALUES (?, ?, ?, ?, ?)",
        (chat_id, runtime.clock.now().isoformat(), f"dashboard:{who}", what, detail),
    )


async def _drop_waiting(tx: Tx, key: str, now: Any, detail: str) -> None:
    row = await tx.fetchone("SELECT id FROM actions WHERE key = ?", (key,))
    if row is not None:
        await ledger.transition(
            tx,
            int(row[0]),
            to=State.DROPPED,
            now=now,
            detail=detail,
            expect=[State.AWAITING_APPROVAL],
        )


async def _session_exists(tx: Tx, chat_id: str, session_id: str) -> bool:
    row = await tx.fetchone(
        "SELECT 1 FROM chat_sessions WHERE chat_id = ? AND session_id = ?", (chat_id, session_id)
    )
    return row is not None


def _dumps(data: Any) -> str:
    return orjson.dumps(data).decode()


def add_routes(app: web.Application, dash: Dashboard, static_dir: str) -> None:
    r = app.router
    r.add_get("/login", dash.login, name="dashboard.login")
    r.add_post("/login", dash.login_post, name="dashboard.login_post")
    r.add_post("/logout", dash.logout, name="dashboard.logout")
    r.add_get("/", dash.live, name="dashboard.live")
    r.add_get("/events", dash.events, name="dashboard.events")
    r.add_get("/api/feed", dash.feed_json, name="dashboard.feed")
    r.add_get("/api/panels", dash.panels_json, name="dashboard.panels")
    r.add_get("/api/sessions/{session}/activity", dash.activity_json, name="dashboard.activity")
    r.add_get("/transcripts", dash.transcripts, name="dashboard.transcripts")
    r.add_get("/transcripts/{session}/export", dash.export, name="dashboard.export_form")
    r.add_get(
        r"/transcripts/{session}.{fmt:md|html|json|csv}", dash.export, name="dashboard.export"
    )
    r.add_get("/sessions/{session}", dash.session_view, name="dashboard.session")
    r.add_post("/controls/kill", dash.kill, name="dashboard.kill")
    r.add_post("/controls/mode", dash.mode, name="dashboard.mode")
    r.add_post(
        r"/flags/{flag:\d+}/{verb:approve|dismiss|handled|block}",
        dash.flag_action,
        name="dashboard.flag",
    )
    r.add_post(
        r"/actions/{action:\d+}/{verb:approve|drop|confirm|retry}",
        dash.action,
        name="dashboard.action",
    )
    r.add_static("/static", static_dir, name="dashboard.static", append_version=False)
