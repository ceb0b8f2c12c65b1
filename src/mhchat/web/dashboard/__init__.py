"""The facilitator dashboard, served under ``/dashboard`` by the service's own aiohttp app.

``install_dashboard`` is an app hook: it mounts a sub-application with its own guards (encrypted
session cookie, sign-in, CSRF, security headers), registers the live feed's ingest observer and
its pump as a background duty. With no ``[dashboard]`` section it does nothing.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from mhchat.errors import ConfigError
from mhchat.runtime import Runtime
from mhchat.web.app import add_component
from mhchat.web.dashboard.auth import Credentials, LoginLimiter
from mhchat.web.dashboard.live import LiveHub
from mhchat.web.dashboard.routes import Dashboard, add_routes
from mhchat.web.dashboard.security import PREFIX, SignOuts, add_headers, guard_middlewares
from mhchat.web.dashboard.settings import DashboardSettings, credential_problems, parse_dashboard

__all__ = ["DASHBOARD", "DASHBOARD_APP", "Dashboard", "install_dashboard"]

STATIC_DIR = Path(__file__).parent / "static"
DASHBOARD = web.AppKey("dashboard", Dashboard)
DASHBOARD_APP = web.AppKey("dashboard_app", web.Application)


def install_dashboard(app: web.Application, runtime: Runtime) -> None:
    if DASHBOARD_APP in app:
        return  # installed already (by the service's hooks and again by a caller)
    settings, problems = parse_dashboard(runtime.settings)
    if not settings.enabled:
        return
    # The section check refuses such settings at load; this covers settings built otherwise.
    problems = problems or credential_problems(settings)
    if problems:
        raise ConfigError(problems)
    dash = build_dashboard(runtime, settings)
    sub = web.Application(middlewares=guard_middlewares(settings, dash.signouts))
    sub.on_response_prepare.append(add_headers(settings))
    add_routes(sub, dash, str(STATIC_DIR))
    sub[DASHBOARD] = dash

    async def close_streams(_app: web.Application) -> None:
        dash.hub.close_all()

    app.on_shutdown.append(close_streams)
    app.add_subapp(PREFIX, sub)
    app[DASHBOARD_APP] = sub
    runtime.observers.append(dash.hub.observe)

    async def pump(rt: Runtime) -> None:
        await dash.hub.pump(rt)

    add_component(runtime, "dashboard-live", pump)


def build_dashboard(runtime: Runtime, settings: DashboardSettings) -> Dashboard:
    return Dashboard(
        runtime=runtime,
        settings=settings,
        credentials=Credentials(settings),
        limiter=LoginLimiter(settings.login_attempts, settings.login_window_minutes * 60),
        hub=LiveHub(runtime),
        signouts=SignOuts(settings.session_hours * 3600),
    )
