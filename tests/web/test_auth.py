"""Sign-in: argon2 password or token, cookies, rate limit, refusing to start."""

from __future__ import annotations

from pathlib import Path

import pytest

from mhchat.config import parse_settings
from mhchat.errors import ConfigError
from mhchat.web.dashboard.auth import LoginLimiter
from mhchat.web.dashboard.security import COOKIE

from .conftest import PASSWORD, TOKEN, Rig, RigFactory, csrf_of, dashboard_settings


async def _login(rig: Rig, who: str, secret: str) -> int:
    page = await rig.client.get("/dashboard/login")
    token = csrf_of(await page.text())
    resp = await rig.client.post(
        "/dashboard/login",
        data={"csrf_token": token, "facilitator": who, "password": secret},
        allow_redirects=False,
    )
    return resp.status


class TestSignIn:
    async def test_login_page_is_public_with_security_headers(self, rig: Rig) -> None:
        resp = await rig.client.get("/dashboard/login")
        assert resp.status == 200
        csp = resp.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp
        assert "unsafe-inline" not in csp
        assert "frame-ancestors 'none'" in csp
        assert resp.headers["X-Frame-Options"] == "DENY"
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
        assert "Access-Control-Allow-Origin" not in resp.headers
        html = await resp.text()
        assert '<label for="password">' in html
        assert "<script>" not in html

    async def test_token_signs_in_and_sets_a_strict_http_only_cookie(self, rig: Rig) -> None:
        page = await rig.client.get("/dashboard/login")
        token = csrf_of(await page.text())
        resp = await rig.client.post(
            "/dashboard/login",
            data={"csrf_token": token, "facilitator": "Sam", "password": TOKEN},
            allow_redirects=False,
        )
        assert resp.status == 303
        assert resp.headers["Location"] == "/dashboard/"
        cookie = resp.cookies[COOKIE]
        assert cookie["httponly"] is True
        assert cookie["samesite"] == "Strict"
        assert cookie["path"] == "/dashboard"
        assert not cookie["secure"]  # plain http in the test; see the https test below
        live = await rig.client.get("/dashboard/")
        assert live.status == 200
        assert "Signed in as <strong>Sam</strong>" in await live.text()
        audit = await rig.rows("SELECT actor, what FROM audit WHERE what = 'signed in'")
        assert audit == [("dashboard:Sam", "signed in")]

    async def test_argon2_password_signs_in(self, rig: Rig) -> None:
        assert await _login(rig, "alex", PASSWORD) == 303  # names match case-insensitively
        live = await rig.client.get("/dashboard/")
        assert "Signed in as <strong>Alex</strong>" in await live.text()

    async def test_wrong_secret_or_unknown_name_is_refused(self, rig: Rig) -> None:
        assert await _login(rig, "Sam", "not the password") == 401
        assert await _login(rig, "Mallory", TOKEN) == 401
        assert await _login(rig, "Sam", "") == 401
        resp = await rig.client.get("/dashboard/", allow_redirects=False)
        assert resp.status == 303
        assert resp.headers["Location"] == "/dashboard/login"

    async def test_failed_sign_ins_are_limited_per_address(self, make_rig: RigFactory) -> None:
        rig = await make_rig(dashboard={"login_attempts": 3, "login_window_minutes": 5})
        for _ in range(3):
            assert await _login(rig, "Sam", "guess") == 401
        page = await rig.client.get("/dashboard/login")
        resp = await rig.client.post(
            "/dashboard/login",
            data={
                "csrf_token": csrf_of(await page.text()),
                "facilitator": "Sam",
                "password": TOKEN,
            },
            allow_redirects=False,
        )
        assert resp.status == 429  # even the right token waits once the limit is reached
        assert int(resp.headers["Retry-After"]) > 0

    async def test_sign_out_ends_the_session_even_for_a_copied_cookie(self, rig: Rig) -> None:
        csrf = await rig.sign_in()
        copied = next(c.value for c in rig.client.session.cookie_jar if c.key == COOKIE)
        resp = await rig.client.post(
            "/dashboard/logout", data={"csrf_token": csrf}, allow_redirects=False
        )
        assert resp.status == 303
        again = await rig.client.get("/dashboard/api/feed")
        assert again.status == 401
        rig.client.session.cookie_jar.update_cookies({COOKIE: copied})
        replayed = await rig.client.get("/dashboard/api/feed")
        assert replayed.status == 401

    async def test_a_forged_cookie_is_not_a_session(self, rig: Rig) -> None:
        rig.client.session.cookie_jar.update_cookies({COOKIE: "gAAAAAforged"})
        resp = await rig.client.get("/dashboard/api/feed")
        assert resp.status == 401

    async def test_cookie_is_secure_when_configured_for_https(self, make_rig: RigFactory) -> None:
        rig = await make_rig(dashboard={"secure_cookies": True})
        resp = await rig.client.get("/dashboard/login")
        assert resp.cookies[COOKIE]["secure"] is True


class TestConfiguration:
    def test_enabled_without_credentials_refuses_to_start(self, tmp_path: Path) -> None:
        with pytest.raises(ConfigError) as caught:
            dashboard_settings(tmp_path, env={})
        sentence = " ".join(caught.value.problems)
        assert "no sign-in is set up" in sentence
        assert "MHCHAT_DASHBOARD_PASSWORD_HASH" in sentence
        assert "MHCHAT_DASHBOARD_TOKEN" in sentence

    def test_bad_hash_and_short_token_are_explained(self, tmp_path: Path) -> None:
        with pytest.raises(ConfigError) as caught:
            dashboard_settings(
                tmp_path,
                env={
                    "MHCHAT_DASHBOARD_PASSWORD_HASH": "plaintext",
                    "MHCHAT_DASHBOARD_TOKEN": "short",
                },
            )
        assert any("not an argon2 hash" in p for p in caught.value.problems)
        assert any("too short" in p for p in caught.value.problems)

    def test_without_a_dashboard_section_nothing_is_required(self, tmp_path: Path) -> None:
        settings = parse_settings({"database": {"url": f"sqlite:///{tmp_path}/x.db"}}, {})
        assert settings.section("dashboard") == {}

    async def test_without_a_dashboard_section_no_route_exists(
        self, make_rig: RigFactory, tmp_path: Path
    ) -> None:
        rig = await make_rig(dashboard={"enabled": False}, env={})
        assert (await rig.client.get("/dashboard/login")).status == 404


def test_login_limiter_window_slides() -> None:
    now = [0.0]
    limiter = LoginLimiter(2, 60, now=lambda: now[0])
    limiter.failed("a")
    limiter.failed("a")
    assert limiter.retry_after("a") == 60
    assert limiter.retry_after("b") == 0
    now[0] = 61
    assert limiter.retry_after("a") == 0
    limiter.failed("c")
    limiter.succeeded("c")
    assert limiter.retry_after("c") == 0


class TestKeysAndHashes:
    def test_session_key_from_the_environment_is_stable(self) -> None:
        from cryptography.fernet import Fernet  # noqa: PLC0415

        from mhchat.web.dashboard.security import fernet_key  # noqa: PLC0415

        assert fernet_key("a passphrase of any length") == fernet_key("a passphrase of any length")
        proper = Fernet.generate_key().decode()
        assert fernet_key(proper) == proper.encode()
        assert fernet_key(None) != fernet_key(None)  # generated per process when unset

    def test_install_refuses_settings_without_credentials(self, tmp_path: Path) -> None:
        import dataclasses  # noqa: PLC0415

        from aiohttp import web  # noqa: PLC0415

        from mhchat.runtime import Runtime  # noqa: PLC0415
        from mhchat.testing import FakeClock  # noqa: PLC0415
        from mhchat.web.dashboard import install_dashboard  # noqa: PLC0415

        settings = dataclasses.replace(dashboard_settings(tmp_path), secrets={})
        clock = FakeClock()
        runtime = Runtime(settings=settings, clock=clock, started_at=clock.now())
        with pytest.raises(ConfigError, match="no sign-in is set up"):
            install_dashboard(web.Application(), runtime)

    def test_hash_command_prints_a_hash_that_verifies(
        self, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        from mhchat.web.dashboard import auth  # noqa: PLC0415
        from mhchat.web.dashboard.settings import DashboardSettings  # noqa: PLC0415

        monkeypatch.setattr("getpass.getpass", lambda _prompt: "a fine long password")
        assert auth.main() == 0
        printed = capsys.readouterr().out.strip()
        assert printed.startswith("$argon2id$")
        creds = auth.Credentials(DashboardSettings(enabled=True, password_hash=printed))
        assert creds.check("a fine long password")
        assert not creds.check("a fine long passwore")
