"""No dashboard route answers without sign-in, every POST needs the CSRF token, no CORS."""

from __future__ import annotations

import asyncio
import re

from aiohttp import web

from mhchat.web.dashboard import DASHBOARD_APP
from mhchat.web.dashboard.security import COOKIE, PUBLIC_ROUTES

from .conftest import Rig

SAMPLE = {"session": "2026-01-07", "fmt": "md", "flag": "1", "action": "1", "verb": "approve"}


def dashboard_routes(app: web.Application) -> list[tuple[str, str, str]]:
    """(method, concrete path, route name) for every route of the mounted dashboard."""
    sub = app[DASHBOARD_APP]
    found = []
    for resource in sub.router.resources():
        info = resource.get_info()
        template = info.get("formatter") or info.get("path") or info.get("prefix")
        assert isinstance(template, str), info
        path = re.sub(r"\{(\w+)(?::[^}]*)?\}", lambda m: SAMPLE.get(m.group(1), "x"), template)
        if "prefix" in info and "formatter" not in info and "path" not in info:
            path = path.rstrip("/") + "/style.css"  # a static folder
        for route in resource:
            if route.method == "HEAD":
                continue
            found.append((route.method, path, resource.name or ""))
    return found


async def test_every_route_but_the_sign_in_page_requires_signing_in(rig: Rig) -> None:
    routes = dashboard_routes(rig.app)
    assert len(routes) >= 15
    public = {name for _, _, name in routes if name in PUBLIC_ROUTES}
    assert public == {"dashboard.login", "dashboard.login_post", "dashboard.static"}
    checked = 0
    for method, path, name in routes:
        if name in PUBLIC_ROUTES:
            continue
        resp = await rig.client.request(method, path, allow_redirects=False, data={})
        body = await resp.text()
        assert resp.status in {401, 303}, (method, path, resp.status)
        if resp.status == 303:
            assert resp.headers["Location"] == "/dashboard/login"
        assert "MHChat transcript" not in body
        assert "csrf_token" not in body
        checked += 1
    assert checked == len(routes) - 3
    # Also paths that match nothing, and the static folder serves only its own files.
    assert (await rig.client.get("/dashboard/nothing-here", allow_redirects=False)).status in {
        401,
        303,
        404,
    }
    for escape in ("/dashboard/static/../routes.py", "/dashboard/static/%2E%2E/routes.py"):
        resp = await rig.client.get(escape, allow_redirects=False)
        assert "import" not in await resp.text(), escape


async def test_every_post_route_rejects_a_missing_or_wrong_csrf_token(rig: Rig) -> None:
    csrf = await rig.sign_in()
    posts = [
        (m, p)
        for m, p, n in dashboard_routes(rig.app)
        if m == "POST" and n != "dashboard.login_post"
    ]
    assert len(posts) >= 5
    for _, path in posts:
        missing = await rig.client.post(path, data={"value": "on"}, allow_redirects=False)
        assert missing.status == 403, path
        wrong = await rig.client.post(
            path, data={"value": "on", "csrf_token": csrf[:-2] + "xx"}, allow_redirects=False
        )
        assert wrong.status == 403, path
        header = await rig.client.post(
            path, data={"value": "on"}, headers={"X-CSRF-Token": "nope"}, allow_redirects=False
        )
        assert header.status == 403, path
    assert rig.runtime.controls is not None
    assert rig.runtime.controls.killed is False
    audit = await rig.rows("SELECT what FROM audit WHERE what LIKE 'set %'")
    assert audit == []


async def test_login_post_needs_the_token_too(rig: Rig) -> None:
    await rig.client.get("/dashboard/login")
    resp = await rig.client.post(
        "/dashboard/login", data={"facilitator": "Sam", "password": "x"}, allow_redirects=False
    )
    assert resp.status == 403


async def test_a_post_from_another_origin_is_refused(rig: Rig) -> None:
    csrf = await rig.sign_in()
    resp = await rig.client.post(
        "/dashboard/controls/kill",
        data={"value": "on", "csrf_token": csrf},
        headers={"Origin": "https://evil.example"},
        allow_redirects=False,
    )
    assert resp.status == 403


async def test_no_cors_headers_even_when_asked(rig: Rig) -> None:
    await rig.sign_in()
    for method, path in [("GET", "/dashboard/api/feed"), ("OPTIONS", "/dashboard/api/feed")]:
        resp = await rig.client.request(
            method,
            path,
            headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"},
        )
        assert not any(h.lower().startswith("access-control-") for h in resp.headers), path


async def raw_status(rig: Rig, head: bytes) -> int:
    """Send a request as bytes (a client library would refuse to send such headers)."""
    server = rig.client.server
    reader, writer = await asyncio.open_connection(server.host, server.port)
    writer.write(head + b"Connection: close\r\n\r\n")
    await writer.drain()
    status_line = await reader.readline()
    writer.close()
    return int(status_line.split()[1])


async def test_header_bytes_that_are_not_text_are_refused_not_a_server_error(rig: Rig) -> None:
    cookie = b"Cookie: " + COOKIE.encode() + b"=\xff\xfe\r\n"
    assert await raw_status(rig, b"GET /dashboard/login HTTP/1.1\r\nHost: x\r\n" + cookie) == 200
    await rig.sign_in()
    [session] = [m for m in rig.client.session.cookie_jar if m.key == COOKIE]
    signed_in = f"Cookie: {COOKIE}={session.value}\r\n".encode()
    head = (
        b"POST /dashboard/controls/kill HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n"
        + signed_in
        + b"X-CSRF-Token: \xff\xfe\r\n"
    )
    assert await raw_status(rig, head) == 403
    assert rig.runtime.controls is not None
    assert rig.runtime.controls.killed is False


async def test_an_id_beyond_the_database_integers_is_not_found(rig: Rig) -> None:
    csrf = await rig.sign_in()
    for path in ("/dashboard/flags/{}/dismiss", "/dashboard/actions/{}/drop"):
        resp = await rig.client.post(
            path.format("9" * 23), data={"csrf_token": csrf}, allow_redirects=False
        )
        assert resp.status == 404, path
