"""The dashboard's URL map."""

from __future__ import annotations

from aiohttp import web

from mhchat.web.dashboard.actions import Actions
from mhchat.web.dashboard.pages import Pages


class Dashboard(Pages, Actions):
    """Every handler, over one shared state (see ``DashboardState``)."""


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
        r"/flags/{flag:\d{1,18}}/{verb:approve|dismiss|handled|block}",
        dash.flag_action,
        name="dashboard.flag",
    )
    r.add_post(
        r"/actions/{action:\d{1,18}}/{verb:approve|drop|confirm|retry}",
        dash.action,
        name="dashboard.action",
    )
    r.add_static("/static", static_dir, name="dashboard.static", append_version=False)
