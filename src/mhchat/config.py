"""Configuration: one TOML file plus environment variables.

Secrets come only from the environment (``MHCHAT_<PLATFORM>_<NAME>``, ``MHCHAT_DASHBOARD_*``)
and are never logged. Every problem is reported as one plain sentence a host can act on;
``load_settings`` collects them all before raising ``ConfigError``.
"""

from __future__ import annotations

import difflib
import os
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from mhchat.actions import Purpose
from mhchat.errors import ConfigError
from mhchat.ledger import Mode
from mhchat.textfiles import read_config_text

DEFAULT_CONFIG = """\
# mhchat embedded defaults: one chat, SQLite, no platform enabled.
[chat]
id = "default"
hashtag = "MHChat"

[database]
url = "sqlite:///var/mhchat.db"

[web]
host = "127.0.0.1"
port = 8080
"""

SECRET_PREFIX = "MHCHAT_"  # noqa: S105 - a name prefix, not a secret
SECTIONS = frozenset(
    {
        # Read here.
        "chat",
        "database",
        "web",
        "bus",
        "leases",
        "sender",
        "logging",
        "modes",
        "adapters",
        # Owned by other modules, listed here so that a section is known however few of them
        # are imported: mhchat.chats, mhchat.web.dashboard.settings, mhchat.facilitation.settings.
        "chats",
        "dashboard",
        "schedule",
        "questions",
        "reposts",
        "welcomes",
        "safety",
    }
)
"""Every top-level section of the TOML file; any other is a typo, reported as a problem."""
MASK = "***"


def shown_url(url: str) -> str:
    """``url`` with its password replaced by ``***``, safe to print or log.

    A PostgreSQL URL may carry the password after the user name or as ``?password=``.
    """
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        # Unparseable (e.g. a broken IPv6 host): a password in it cannot be found, so hide it all.
        return f"{url.partition(':')[0]}:{MASK}"
    netloc = parts.netloc
    if password is not None:
        userinfo, _, host = netloc.rpartition("@")
        netloc = f"{userinfo.partition(':')[0]}:{MASK}@{host}"
    query = "&".join(
        f"password={MASK}" if field.partition("=")[0] == "password" else field
        for field in parts.query.split("&")
    )
    if netloc == parts.netloc and query == parts.query:
        return url
    # Built by hand: urlunsplit would drop the "//" of sqlite:/// and postgresql:/// URLs.
    start = f"{parts.scheme}://" if url.partition(":")[2].startswith("//") else f"{parts.scheme}:"
    rest = parts.path + (f"?{query}" if query else "")
    return start + netloc + rest + (f"#{parts.fragment}" if parts.fragment else "")


@dataclass(frozen=True, slots=True, kw_only=True)
class ChatSettings:
    chat_id: str = "default"
    hashtag: str = "MHChat"


@dataclass(frozen=True, slots=True, kw_only=True)
class DatabaseSettings:
    url: str = "sqlite:///var/mhchat.db"
    keep_raw: bool = False
    spool: str = ""
    """The intake spool's file (webhook deliveries before they are parsed); "" puts it
    beside the SQLite database, or at var/mhchat.spool with PostgreSQL."""
    spool_capacity: int = 100_000
    """Deliveries the spool may hold before webhooks are answered 503 (Meta retries)."""
    spool_max_wait_seconds: float = 30.0
    """In a flood, how long parsing may wait while deliveries keep arriving (intake first)."""

    @property
    def spool_path(self) -> str:
        if self.spool:
            return self.spool
        path = self.sqlite_path
        if path == ":memory:":
            return ":memory:"
        return f"{path}.spool" if path else "var/mhchat.spool"

    @property
    def sqlite_path(self) -> str | None:
        if self.url.startswith("sqlite:///"):
            return self.url.removeprefix("sqlite:///")
        if self.url == "sqlite::memory:":
            return ":memory:"
        return None


@dataclass(frozen=True, slots=True, kw_only=True)
class WebSettings:
    host: str = "127.0.0.1"
    port: int = 8080
    max_body_bytes: int = 1024 * 1024


@dataclass(frozen=True, slots=True, kw_only=True)
class BusSettings:
    capacity: int = 1000
    max_batch: int = 2000
    shutdown_deadline_seconds: float = 10.0
    backend: str = "memory"
    """``memory`` (in-process queue) or ``nats`` (NATS JetStream, for several processes)."""
    nats_url: str = "nats://127.0.0.1:4222"
    stream: str = "MHCHAT_EVENTS"
    subject_prefix: str = "mhchat.events"
    ack_wait_seconds: float = 30.0
    """An event pulled but not acknowledged in this time is delivered again."""
    max_ack_pending: int = 2000
    """Bound on events handed out and not yet acknowledged (back-pressure on the consumer)."""
    max_stream_messages: int = 1_000_000
    """Bound on events waiting in the stream: past it, publishing is refused (back-pressure)."""
    duplicate_window_seconds: float = 120.0


@dataclass(frozen=True, slots=True, kw_only=True)
class LeaseSettings:
    enabled: bool | None = None
    """None: on with PostgreSQL (several processes), off with SQLite (one process)."""
    timeout_seconds: float = 15.0
    """A duty whose holder stopped renewing is taken over after at most this long."""
    renew_seconds: float | None = None
    """Default: a third of the timeout."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SenderSettings:
    min_interval_seconds: float = 1.0
    """Gap between two sends on one platform: the bounded catch-up rate after downtime."""
    poll_seconds: float = 0.5


@dataclass(frozen=True, slots=True, kw_only=True)
class LogSettings:
    level: str = "info"
    json: bool | None = None
    """None: JSON when stdout is not a terminal."""
    include_post_text: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class AdapterSettings:
    name: str
    enabled: bool
    options: Mapping[str, Any]
    secrets: Mapping[str, str] = field(repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    chat: ChatSettings
    database: DatabaseSettings
    web: WebSettings
    bus: BusSettings
    sender: SenderSettings
    logging: LogSettings
    modes: Mapping[Purpose, Mode]
    adapters: tuple[AdapterSettings, ...]
    raw: Mapping[str, Any] = field(repr=False)
    """The whole TOML document, for sections owned by other modules."""
    secrets: Mapping[str, str] = field(repr=False, default_factory=dict)
    """Every MHCHAT_* environment value (for redaction and module-owned secrets)."""
    source: str = "<embedded defaults>"
    leases: LeaseSettings = field(default_factory=LeaseSettings)

    @property
    def leases_on(self) -> bool:
        if self.leases.enabled is not None:
            return self.leases.enabled
        return self.database.sqlite_path is None

    def section(self, name: str) -> Mapping[str, Any]:
        value = self.raw.get(name, {})
        return value if isinstance(value, Mapping) else {}

    @property
    def enabled_adapters(self) -> tuple[AdapterSettings, ...]:
        return tuple(a for a in self.adapters if a.enabled)


SectionCheck = Callable[["Settings"], list[str]]
_section_checks: list[SectionCheck] = []


def register_section_check(check: SectionCheck) -> SectionCheck:
    """Let a module that owns a TOML section add its problems to ``check-config``."""
    _section_checks.append(check)
    return check


_serving_checks: list[SectionCheck] = []


def register_serving_check(check: SectionCheck) -> SectionCheck:
    """Like ``register_section_check``, for what only matters where the service is served
    (e.g. the dashboard's sign-in): commands that only read or import skip these."""
    _serving_checks.append(check)
    return check


_section_warnings: list[SectionCheck] = []


def register_section_warning(check: SectionCheck) -> SectionCheck:
    """Let a module add warnings to ``check-config``: things a host should see and fix, which
    must not stop the service (e.g. help-line numbers due for their review)."""
    _section_warnings.append(check)
    return check


def section_warnings(settings: Settings) -> list[str]:
    return [warning for check in _section_warnings for warning in check(settings)]


class _Reader:
    """Reads typed values out of a TOML table, collecting problems instead of raising."""

    def __init__(self, table: Mapping[str, Any], where: str, problems: list[str]) -> None:
        self.table = table
        self.where = where
        self.problems = problems

    def _get(self, key: str, kind: type | tuple[type, ...], default: Any, what: str) -> Any:
        if key not in self.table:
            return default
        value = self.table[key]
        if (
            isinstance(value, bool)
            and kind is not bool
            and bool not in (kind if isinstance(kind, tuple) else (kind,))
        ):
            self.problems.append(f"[{self.where}] {key} must be {what}, not true/false.")
            return default
        if not isinstance(value, kind):
            self.problems.append(f"[{self.where}] {key} must be {what}, not {value!r}.")
            return default
        return value

    def text(self, key: str, default: str) -> str:
        return str(self._get(key, str, default, "text in quotes"))

    def integer(self, key: str, default: int, *, minimum: int | None = None) -> int:
        value = int(self._get(key, int, default, "a whole number"))
        if minimum is not None and value < minimum:
            self.problems.append(f"[{self.where}] {key} must be at least {minimum}, not {value}.")
            return default
        return value

    def number(self, key: str, default: float, *, minimum: float = 0.0) -> float:
        value = float(self._get(key, (int, float), default, "a number"))
        if value < minimum:
            self.problems.append(f"[{self.where}] {key} must be at least {minimum}, not {value}.")
            return default
        return value

    def flag(self, key: str, default: bool) -> bool:
        return bool(self._get(key, bool, default, "true or false"))

    def optional_flag(self, key: str) -> bool | None:
        """true, false, or None when the key is absent (or wrong, which is reported)."""
        value = self._get(key, bool, None, "true or false")
        return value if isinstance(value, bool) else None

    def unknown(self, known: Iterable[str]) -> None:
        self.problems.extend(unknown_settings(self.where, self.table, known))


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """`` (did you mean x?)`` when ``name`` looks like a misspelling of a known name, else ""."""
    names = sorted(known)
    close = difflib.get_close_matches(name, names, n=1)
    if not close:
        # A name without its unit ("timeout" for timeout_seconds) is too short to look close.
        close = [n for n in names if n.startswith(f"{name}_")][:1]
    return f" (did you mean {close[0]}?)" if close else ""


def unknown_settings(where: str, table: Mapping[str, Any], known: Iterable[str]) -> list[str]:
    """One problem per key of ``table`` (the section ``[where]``) that is not in ``known``."""
    names = sorted(known)
    problems: list[str] = []
    for key in table:
        if key in names:
            continue
        hint = did_you_mean(key, names)
        if hint:
            problems.append(f"[{where}] has no setting {key}{hint}.")
        else:
            problems.append(
                f"[{where}] has no setting {key}; its settings are {', '.join(names)}."
            )
    return problems


def _sections(doc: Mapping[str, Any], problems: list[str]) -> None:
    known = [f"[{s}]" for s in sorted(SECTIONS)]
    for name in doc:
        if name in SECTIONS:
            continue
        hint = did_you_mean(f"[{name}]", known)
        problems.append(
            f"[{name}] is not a section mhchat knows{hint}."
            if hint
            else f"[{name}] is not a section mhchat knows; the sections are {', '.join(known)}."
        )


def _table(doc: Mapping[str, Any], name: str, problems: list[str]) -> Mapping[str, Any]:
    value = doc.get(name, {})
    if not isinstance(value, Mapping):
        problems.append(f"[{name}] must be a table (a section), not a single value.")
        return {}
    return value


def _chat(doc: Mapping[str, Any], problems: list[str]) -> ChatSettings:
    chat_t = _Reader(_table(doc, "chat", problems), "chat", problems)
    chat_t.unknown({"id", "hashtag"})
    hashtag = chat_t.text("hashtag", "MHChat").lstrip("#")
    if not hashtag or not hashtag.replace("_", "").isalnum():
        problems.append(
            f"[chat] hashtag must be letters, digits or underscores (got {hashtag!r})."
        )
    chat_id = chat_t.text("id", "default")
    if not chat_id.strip():
        # Every stored row carries the chat id: an empty one cannot tell chats apart.
        problems.append('[chat] id must not be empty; name the chat, e.g. id = "default".')
        chat_id = "default"
    return ChatSettings(chat_id=chat_id, hashtag=hashtag)


def _database(doc: Mapping[str, Any], problems: list[str]) -> DatabaseSettings:
    db_t = _Reader(_table(doc, "database", problems), "database", problems)
    db_t.unknown({"url", "keep_raw", "spool", "spool_capacity", "spool_max_wait_seconds"})
    database = DatabaseSettings(
        url=db_t.text("url", "sqlite:///var/mhchat.db"),
        keep_raw=db_t.flag("keep_raw", False),
        spool=db_t.text("spool", ""),
        spool_capacity=db_t.integer("spool_capacity", 100_000, minimum=100),
        spool_max_wait_seconds=db_t.number("spool_max_wait_seconds", 30.0),
    )
    if database.sqlite_path is None and not database.url.startswith(
        ("postgresql://", "postgres://")
    ):
        problems.append(
            "[database] url must start with sqlite:/// (a file path) or postgresql://"
            f" (got {shown_url(database.url)!r})."
        )
    return database


def _web(doc: Mapping[str, Any], problems: list[str]) -> WebSettings:
    web_t = _Reader(_table(doc, "web", problems), "web", problems)
    web_t.unknown({"host", "port", "max_body_bytes"})
    web = WebSettings(
        host=web_t.text("host", "127.0.0.1"),
        port=web_t.integer("port", 8080, minimum=0),
        max_body_bytes=web_t.integer("max_body_bytes", 1024 * 1024, minimum=1024),
    )
    if web.port > 65535:
        problems.append(f"[web] port must be between 0 and 65535 (got {web.port}).")
    return web


def _bus(doc: Mapping[str, Any], problems: list[str]) -> BusSettings:
    bus_t = _Reader(_table(doc, "bus", problems), "bus", problems)
    bus_t.unknown(BusSettings.__dataclass_fields__)
    bus = BusSettings(
        capacity=bus_t.integer("capacity", 1000, minimum=1),
        max_batch=bus_t.integer("max_batch", 2000, minimum=1),
        shutdown_deadline_seconds=bus_t.number("shutdown_deadline_seconds", 10.0),
        backend=bus_t.text("backend", "memory"),
        nats_url=bus_t.text("nats_url", "nats://127.0.0.1:4222"),
        stream=bus_t.text("stream", "MHCHAT_EVENTS"),
        subject_prefix=bus_t.text("subject_prefix", "mhchat.events"),
        ack_wait_seconds=bus_t.number("ack_wait_seconds", 30.0, minimum=0.5),
        max_ack_pending=bus_t.integer("max_ack_pending", 2000, minimum=1),
        max_stream_messages=bus_t.integer("max_stream_messages", 1_000_000, minimum=1),
        duplicate_window_seconds=bus_t.number("duplicate_window_seconds", 120.0, minimum=1.0),
    )
    if bus.backend not in {"memory", "nats"}:
        problems.append(f"[bus] backend must be memory or nats (got {bus.backend!r}).")
    return bus


def _leases(doc: Mapping[str, Any], problems: list[str]) -> LeaseSettings:
    lease_t = _Reader(_table(doc, "leases", problems), "leases", problems)
    lease_t.unknown({"enabled", "timeout_seconds", "renew_seconds"})
    return LeaseSettings(
        enabled=lease_t.optional_flag("enabled"),
        timeout_seconds=lease_t.number("timeout_seconds", 15.0, minimum=0.5),
        renew_seconds=(
            lease_t.number("renew_seconds", 5.0, minimum=0.1)
            if "renew_seconds" in lease_t.table
            else None
        ),
    )


def _runtime(
    doc: Mapping[str, Any], problems: list[str]
) -> tuple[BusSettings, SenderSettings, LogSettings]:
    bus = _bus(doc, problems)
    send_t = _Reader(_table(doc, "sender", problems), "sender", problems)
    send_t.unknown({"min_interval_seconds", "poll_seconds"})
    sender = SenderSettings(
        min_interval_seconds=send_t.number("min_interval_seconds", 1.0),
        poll_seconds=send_t.number("poll_seconds", 0.5, minimum=0.01),
    )
    log_t = _Reader(_table(doc, "logging", problems), "logging", problems)
    log_t.unknown({"level", "json", "include_post_text"})
    level = log_t.text("level", "info").lower()
    if level not in {"debug", "info", "warning", "error"}:
        problems.append(f"[logging] level must be debug, info, warning or error (got {level!r}).")
        level = "info"
    logging = LogSettings(
        level=level,
        json=log_t.optional_flag("json"),
        include_post_text=log_t.flag("include_post_text", False),
    )
    return bus, sender, logging


def _modes(doc: Mapping[str, Any], problems: list[str]) -> dict[Purpose, Mode]:
    modes: dict[Purpose, Mode] = {Purpose.SIGNPOSTING: Mode.APPROVE_FIRST}
    for key, value in _table(doc, "modes", problems).items():
        try:
            purpose = Purpose(key)
        except ValueError:
            problems.append(
                f"[modes] {key!r} is not an action purpose; use one of"
                f" {', '.join(p.value for p in Purpose)}."
            )
            continue
        try:
            modes[purpose] = Mode(value)
        except ValueError:
            problems.append(
                f"[modes] {key} must be auto, approve_first or dry_run (got {value!r})."
            )
    if modes.get(Purpose.SIGNPOSTING) is Mode.AUTO:
        problems.append(
            "[modes] signposting replies must be approved by a person: use approve_first"
            " or dry_run."
        )
    return modes


def _adapters(
    doc: Mapping[str, Any], env: Mapping[str, str], problems: list[str]
) -> tuple[AdapterSettings, ...]:
    adapters: list[AdapterSettings] = []
    for name, table in _table(doc, "adapters", problems).items():
        if not isinstance(table, Mapping):
            problems.append(f"[adapters.{name}] must be a table of settings.")
            continue
        prefix = f"{SECRET_PREFIX}{name.upper()}_"
        secrets = {k.removeprefix(prefix): v for k, v in env.items() if k.startswith(prefix)}
        enabled = table.get("enabled", True)
        if not isinstance(enabled, bool):
            problems.append(f"[adapters.{name}] enabled must be true or false.")
            enabled = False
        options = {k: v for k, v in table.items() if k != "enabled"}
        adapters.append(
            AdapterSettings(name=name, enabled=enabled, options=options, secrets=secrets)
        )
    return tuple(adapters)


def parse_settings(
    doc: Mapping[str, Any],
    env: Mapping[str, str],
    *,
    source: str = "<embedded defaults>",
    serving: bool = True,
) -> Settings:
    """Build settings from a parsed TOML document and the environment.

    ``serving=False`` leaves out the checks of what only the running service needs."""
    problems: list[str] = []
    _sections(doc, problems)
    bus, sender, logging = _runtime(doc, problems)
    settings = Settings(
        chat=_chat(doc, problems),
        database=_database(doc, problems),
        web=_web(doc, problems),
        bus=bus,
        sender=sender,
        logging=logging,
        modes=_modes(doc, problems),
        adapters=_adapters(doc, env, problems),
        raw=doc,
        secrets={k: v for k, v in env.items() if k.startswith(SECRET_PREFIX)},
        source=source,
        leases=_leases(doc, problems),
    )
    for check in _section_checks + (_serving_checks if serving else []):
        problems.extend(check(settings))
    if "chats" in doc:
        # [[chats]]: check every chat's own settings too, so serve and check-config explain
        # them like the rest (imported here: mhchat.chats builds on this module).
        from mhchat.chats import chat_problems  # noqa: PLC0415

        problems.extend(chat_problems(doc, env, source=source))
    if problems:
        raise ConfigError(problems)
    return settings


def load_settings(
    path: str | Path | None, env: Mapping[str, str] | None = None, *, serving: bool = True
) -> Settings:
    """Read the TOML file (or the embedded defaults) and the environment."""
    environ = dict(os.environ if env is None else env)
    if path is None:
        return parse_settings(tomllib.loads(DEFAULT_CONFIG), environ, serving=serving)
    file = Path(path)
    text = read_config_text(file, "The configuration file")
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{file} is not valid TOML: {exc}."]) from None
    return parse_settings(doc, environ, source=str(file), serving=serving)
