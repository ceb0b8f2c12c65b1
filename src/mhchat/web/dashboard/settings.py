"""The ``[dashboard]`` section and the sign-in secrets it needs.

The dashboard is on when the configuration has a ``[dashboard]`` section (``enabled = false``
turns it off again). Sign-in needs ``MHCHAT_DASHBOARD_PASSWORD_HASH`` (an argon2 hash) or
``MHCHAT_DASHBOARD_TOKEN``; with neither, ``serve`` and ``check-config`` refuse the
configuration before anything starts (the commands that do not serve it need no sign-in).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mhchat.config import Settings, register_section_check, register_serving_check

HASH_ENV = "MHCHAT_DASHBOARD_PASSWORD_HASH"
TOKEN_ENV = "MHCHAT_DASHBOARD_TOKEN"  # noqa: S105 - the variable's name, not a secret
SECRET_KEY_ENV = "MHCHAT_DASHBOARD_SECRET_KEY"  # noqa: S105 - the variable's name
MIN_TOKEN_LENGTH = 16
KNOWN = {
    "enabled",
    "facilitators",
    "secure_cookies",
    "session_hours",
    "login_attempts",
    "login_window_minutes",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class DashboardSettings:
    enabled: bool = False
    facilitators: tuple[str, ...] = ("facilitator",)
    secure_cookies: bool = False
    """Always mark cookies Secure (behind a TLS proxy); they are Secure anyway over https."""
    session_hours: float = 12.0
    login_attempts: int = 5
    """Failed sign-ins allowed per address within the window before it must wait."""
    login_window_minutes: float = 15.0
    password_hash: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)
    secret_key: str | None = field(default=None, repr=False)


def parse_dashboard(
    settings: Settings, *, sign_in: bool = True
) -> tuple[DashboardSettings, list[str]]:
    """Read ``[dashboard]`` and the sign-in secrets; return the settings and any problems
    (those of the sign-in only with ``sign_in``)."""
    problems: list[str] = []
    present = "dashboard" in settings.raw
    table: Mapping[str, Any] = settings.section("dashboard")
    if present and not isinstance(settings.raw.get("dashboard"), Mapping):
        problems.append("[dashboard] must be a table (a section), not a single value.")
    for key in table:
        if key not in KNOWN:
            problems.append(
                f"[dashboard] has a setting {key!r} that mhchat does not know;"
                f" known settings are: {', '.join(sorted(KNOWN))}."
            )

    def flag(key: str, default: bool) -> bool:
        value = table.get(key, default)
        if not isinstance(value, bool):
            problems.append(f"[dashboard] {key} must be true or false, not {value!r}.")
            return default
        return value

    def number(key: str, default: float, minimum: float) -> float:
        value = table.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or value < minimum:
            problems.append(
                f"[dashboard] {key} must be a number of at least {minimum}, not {value!r}."
            )
            return default
        return float(value)

    names = table.get("facilitators", ["facilitator"])
    if (
        not isinstance(names, list)
        or not names
        or not all(isinstance(n, str) and n.strip() for n in names)
    ):
        problems.append(
            "[dashboard] facilitators must be a list of names,"
            ' e.g. facilitators = ["Sam", "Alex"].'
        )
        names = ["facilitator"]
    env = settings.secrets
    password_hash = env.get(HASH_ENV) or None
    token = env.get(TOKEN_ENV) or None
    parsed = DashboardSettings(
        enabled=present and flag("enabled", True),
        facilitators=tuple(str(n).strip() for n in names),
        secure_cookies=flag("secure_cookies", False),
        session_hours=number("session_hours", 12.0, 0.1),
        login_attempts=int(number("login_attempts", 5, 1)),
        login_window_minutes=number("login_window_minutes", 15.0, 0.1),
        password_hash=password_hash,
        token=token,
        secret_key=env.get(SECRET_KEY_ENV) or None,
    )
    if parsed.enabled and sign_in:
        problems.extend(credential_problems(parsed))
    return parsed, problems


def credential_problems(parsed: DashboardSettings) -> list[str]:
    problems: list[str] = []
    if parsed.password_hash is None and parsed.token is None:
        problems.append(
            "The dashboard is turned on by the [dashboard] section but no sign-in is set up:"
            f" set {HASH_ENV} to an argon2 hash of the facilitators' password (make one with"
            f" `python -m mhchat.web.dashboard.auth`) or {TOKEN_ENV} to a long random token,"
            " or set enabled = false under [dashboard]."
        )
    if parsed.password_hash is not None and not parsed.password_hash.startswith("$argon2"):
        problems.append(
            f"{HASH_ENV} is not an argon2 hash (it should start with $argon2id$): make one with"
            " `python -m mhchat.web.dashboard.auth`."
        )
    if parsed.token is not None and len(parsed.token) < MIN_TOKEN_LENGTH:
        problems.append(
            f"{TOKEN_ENV} is too short to be safe: use at least {MIN_TOKEN_LENGTH} random"
            " characters (e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`)."
        )
    return problems


@register_section_check
def _check(settings: Settings) -> list[str]:
    return parse_dashboard(settings, sign_in=False)[1]


@register_serving_check
def _check_sign_in(settings: Settings) -> list[str]:
    # Only where the dashboard is served: a transcript or a migration needs no sign-in.
    parsed, _ = parse_dashboard(settings, sign_in=False)
    return credential_problems(parsed) if parsed.enabled else []
