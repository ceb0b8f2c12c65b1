"""Settings, secrets and access tiers of the X adapter.

The TOML table ``[adapters.x]`` arrives as ``ctx.settings``; secrets come from the environment
(``MHCHAT_X_<NAME>`` with the prefix removed). Everything a host can get wrong is reported at
once as a ``ConfigError`` with one plain sentence per problem.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from mhchat.errors import ConfigError

DEFAULT_API_BASE = "https://api.x.com"


class Tier(StrEnum):
    FREE = "free"
    BASIC = "basic"
    PRO = "pro"
    PAY_PER_USE = "pay_per_use"
    ENTERPRISE = "enterprise"


class IngestMode(StrEnum):
    AUTO = "auto"
    STREAM = "stream"
    SEARCH = "search"
    OFF = "off"


class UserAuth(StrEnum):
    AUTO = "auto"
    OAUTH1 = "oauth1"
    OAUTH2 = "oauth2"
    NONE = "none"


@dataclass(frozen=True, slots=True, kw_only=True)
class TierRules:
    """What an access tier allows, from X's published tables (PLATFORMS-X-FACEBOOK.md §1.1)."""

    stream: bool
    search_per_15min: int
    """Recent-search requests per 15 minutes per app; 0 when the tier cannot search usefully."""
    retweets_per_15min: int
    posts_per_24h_user: int | None
    reply_needs_summons: bool
    cannot: tuple[str, ...]
    """Plain sentences a host sees in the health detail."""


TIERS: Mapping[Tier, TierRules] = {
    Tier.FREE: TierRules(
        stream=False,
        search_per_15min=1,
        retweets_per_15min=1,
        posts_per_24h_user=17,
        reply_needs_summons=True,
        cannot=(
            "the free tier has no filtered stream and only 100 post reads a month, "
            "so it cannot follow #MHChat live",
            "the free tier allows 17 posts a day and 1 repost per 15 minutes",
            "replies are allowed only to posts that @mention or quote the host",
        ),
    ),
    Tier.BASIC: TierRules(
        stream=False,
        search_per_15min=60,
        retweets_per_15min=5,
        posts_per_24h_user=100,
        reply_needs_summons=True,
        cannot=(
            "the basic tier has no filtered stream: posts arrive by recent search, "
            "up to a minute late",
            "the basic tier allows 5 reposts per 15 minutes and 100 posts a day",
            "replies are allowed only to posts that @mention or quote the host",
        ),
    ),
    Tier.PRO: TierRules(
        stream=True,
        search_per_15min=450,
        retweets_per_15min=50,
        posts_per_24h_user=None,
        reply_needs_summons=True,
        cannot=("replies are allowed only to posts that @mention or quote the host",),
    ),
    Tier.PAY_PER_USE: TierRules(
        stream=True,
        search_per_15min=450,
        retweets_per_15min=50,
        posts_per_24h_user=None,
        reply_needs_summons=True,
        cannot=(
            "every post read and every write costs money (see the cost counter)",
            "replies are allowed only to posts that @mention or quote the host",
            "quote posts are not available",
        ),
    ),
    Tier.ENTERPRISE: TierRules(
        stream=True,
        search_per_15min=450,
        retweets_per_15min=50,
        posts_per_24h_user=None,
        reply_needs_summons=False,
        cannot=(),
    ),
}


@dataclass(frozen=True, slots=True, kw_only=True)
class XSecrets:
    bearer_token: str | None = field(default=None, repr=False)
    api_key: str | None = field(default=None, repr=False)
    api_secret: str | None = field(default=None, repr=False)
    access_token: str | None = field(default=None, repr=False)
    access_token_secret: str | None = field(default=None, repr=False)
    client_id: str | None = field(default=None, repr=False)
    client_secret: str | None = field(default=None, repr=False)
    oauth2_access_token: str | None = field(default=None, repr=False)
    oauth2_refresh_token: str | None = field(default=None, repr=False)

    @property
    def has_oauth1(self) -> bool:
        return all((self.api_key, self.api_secret, self.access_token, self.access_token_secret))

    @property
    def has_oauth2(self) -> bool:
        return bool(self.client_id and (self.oauth2_refresh_token or self.oauth2_access_token))


@dataclass(frozen=True, slots=True, kw_only=True)
class XSettings:
    tier: Tier = Tier.PAY_PER_USE
    ingest: IngestMode = IngestMode.AUTO
    user_auth: UserAuth = UserAuth.AUTO
    api_base: str = DEFAULT_API_BASE
    host_username: str | None = None
    include_own_posts: bool = False
    read_only: bool = False
    request_timeout: float = 15.0
    poll_interval: float | None = None
    """Seconds between recent-search polls; derived from the tier's rate limit when unset."""
    min_poll_interval: float = 5.0
    search_max_results: int = 100
    first_backfill_minutes: float = 0.0
    """On the very first start (no saved cursor), how far back search fills in."""
    rewind_seconds: float = 30.0
    """A stream backfill starts this long before the newest stored post (late arrivals)."""
    stall_seconds: float = 20.0
    backoff_network_step: float = 0.25
    backoff_network_max: float = 16.0
    backoff_http_initial: float = 5.0
    backoff_http_max: float = 320.0
    backoff_429_initial: float = 60.0
    backoff_429_max: float = 960.0
    compliance_interval: float = 900.0
    compliance_window_hours: float = 24.0
    max_cost_usd: float | None = None
    writes_per_3h: int = 300

    @property
    def rules(self) -> TierRules:
        return TIERS[self.tier]


_FLOAT_KEYS = (
    "request_timeout",
    "min_poll_interval",
    "first_backfill_minutes",
    "rewind_seconds",
    "stall_seconds",
    "backoff_network_step",
    "backoff_network_max",
    "backoff_http_initial",
    "backoff_http_max",
    "backoff_429_initial",
    "backoff_429_max",
    "compliance_interval",
    "compliance_window_hours",
)
_KNOWN = {
    *_FLOAT_KEYS,
    "tier",
    "ingest",
    "user_auth",
    "api_base",
    "host_username",
    "include_own_posts",
    "read_only",
    "poll_interval",
    "search_max_results",
    "max_cost_usd",
    "writes_per_3h",
}


def _enum(value: Any, kind: type[StrEnum], name: str, problems: list[str]) -> Any:
    try:
        return kind(str(value).lower())
    except ValueError:
        allowed = ", ".join(m.value for m in kind)
        problems.append(f"x: {name} must be one of {allowed} (got {value!r}).")
        return None


def _number(value: Any, name: str, problems: list[str], *, minimum: float = 0.0) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        problems.append(f"x: {name} must be a number (got {value!r}).")
        return None
    if value < minimum:
        problems.append(f"x: {name} must be at least {minimum} (got {value}).")
        return None
    return float(value)


def load_secrets(secrets: Mapping[str, str]) -> XSecrets:
    def get(name: str) -> str | None:
        value = secrets.get(name, "").strip()
        return value or None

    return XSecrets(
        bearer_token=get("BEARER_TOKEN"),
        api_key=get("API_KEY"),
        api_secret=get("API_SECRET"),
        access_token=get("ACCESS_TOKEN"),
        access_token_secret=get("ACCESS_TOKEN_SECRET"),
        client_id=get("CLIENT_ID"),
        client_secret=get("CLIENT_SECRET"),
        oauth2_access_token=get("OAUTH2_ACCESS_TOKEN"),
        oauth2_refresh_token=get("OAUTH2_REFRESH_TOKEN"),
    )


def load_settings(  # noqa: PLR0912 - one check per setting, in the order of the docs
    raw: Mapping[str, Any], secrets: XSecrets
) -> XSettings:
    """Validate the TOML table against the secrets; raise ``ConfigError`` listing every problem."""
    problems: list[str] = []
    values: dict[str, Any] = {}
    unknown = sorted(set(raw) - _KNOWN)
    if unknown:
        problems.append(f"x: unknown settings {', '.join(unknown)}.")
    if "tier" in raw:
        values["tier"] = _enum(raw["tier"], Tier, "tier", problems)
    if "ingest" in raw:
        values["ingest"] = _enum(raw["ingest"], IngestMode, "ingest", problems)
    if "user_auth" in raw:
        values["user_auth"] = _enum(raw["user_auth"], UserAuth, "user_auth", problems)
    for key in _FLOAT_KEYS:
        if key in raw:
            values[key] = _number(raw[key], key, problems)
    for key in ("poll_interval", "max_cost_usd"):
        if raw.get(key) is not None:
            values[key] = _number(raw[key], key, problems)
    for key, low, high in (("search_max_results", 10, 100), ("writes_per_3h", 1, 10_000)):
        if key in raw:
            value = raw[key]
            if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
                problems.append(f"x: {key} must be a whole number from {low} to {high}.")
            else:
                values[key] = value
    for key in ("include_own_posts", "read_only"):
        if key in raw:
            if not isinstance(raw[key], bool):
                problems.append(f"x: {key} must be true or false.")
            else:
                values[key] = raw[key]
    if "api_base" in raw:
        base = str(raw["api_base"]).rstrip("/")
        if not base.startswith(("https://", "http://127.0.0.1", "http://localhost")):
            problems.append("x: api_base must be an https:// URL (or a local emulator).")
        values["api_base"] = base
    if raw.get("host_username") is not None:
        values["host_username"] = str(raw["host_username"]).lstrip("@")
    # A wrong value falls back to its default here, so that missing credentials are reported
    # in the same pass as a typo, not only once the typo is fixed.
    settings = XSettings(**{k: v for k, v in values.items() if v is not None})
    _check_combination(settings, secrets, problems)
    if problems:
        raise ConfigError(problems)
    return settings


def _check_combination(settings: XSettings, secrets: XSecrets, problems: list[str]) -> None:
    rules = settings.rules
    if settings.ingest is IngestMode.STREAM and not rules.stream:
        problems.append(
            f"x: the {settings.tier.value} tier has no filtered stream; "
            'set ingest = "search" (or "auto").'
        )
    if settings.ingest is IngestMode.STREAM and not secrets.bearer_token:
        problems.append("x: the filtered stream needs the app bearer token MHCHAT_X_BEARER_TOKEN.")
    if settings.user_auth is UserAuth.OAUTH1 and not secrets.has_oauth1:
        problems.append(
            "x: OAuth 1.0a needs MHCHAT_X_API_KEY, MHCHAT_X_API_SECRET, MHCHAT_X_ACCESS_TOKEN "
            "and MHCHAT_X_ACCESS_TOKEN_SECRET."
        )
    if settings.user_auth is UserAuth.OAUTH2 and not secrets.has_oauth2:
        problems.append(
            "x: OAuth 2.0 needs MHCHAT_X_CLIENT_ID and MHCHAT_X_OAUTH2_REFRESH_TOKEN "
            "(or MHCHAT_X_OAUTH2_ACCESS_TOKEN)."
        )
    no_user = settings.user_auth is UserAuth.NONE or (
        settings.user_auth is UserAuth.AUTO and not (secrets.has_oauth1 or secrets.has_oauth2)
    )
    if no_user and not settings.read_only:
        problems.append(
            "x: posting, replying and reposting need user credentials (OAuth 1.0a or OAuth 2.0); "
            "set them or set read_only = true."
        )
    if no_user and not secrets.bearer_token:
        problems.append("x: no credentials at all: set MHCHAT_X_BEARER_TOKEN at least.")
    if no_user and not settings.host_username:
        problems.append("x: without user credentials, host_username must name the host account.")


def resolved_user_auth(settings: XSettings, secrets: XSecrets) -> UserAuth:
    if settings.user_auth is not UserAuth.AUTO:
        return settings.user_auth
    if secrets.has_oauth1:
        return UserAuth.OAUTH1
    if secrets.has_oauth2:
        return UserAuth.OAUTH2
    return UserAuth.NONE


def resolved_ingest(  # noqa: PLR0911 - one return per documented case reads best
    settings: XSettings, secrets: XSecrets
) -> tuple[IngestMode, str]:
    """The ingest mode to run and, when it is reduced, a sentence saying why."""
    rules = settings.rules
    if settings.ingest is IngestMode.OFF:
        return IngestMode.OFF, "ingest is off in the settings"
    if settings.ingest is IngestMode.STREAM:
        return IngestMode.STREAM, ""
    if settings.ingest is IngestMode.SEARCH:
        return IngestMode.SEARCH, ""
    if settings.tier is Tier.FREE:
        return IngestMode.OFF, (
            "no ingest: the free tier cannot read #MHChat (100 post reads a month, no stream)"
        )
    if rules.stream and secrets.bearer_token:
        return IngestMode.STREAM, ""
    if rules.stream:
        return IngestMode.SEARCH, "no app bearer token, so recent search replaces the stream"
    return IngestMode.SEARCH, ""
