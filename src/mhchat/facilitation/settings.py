"""The facilitation sections of the TOML file, parsed into frozen settings.

``[schedule]``, ``[questions]``, ``[reposts]``, ``[welcomes]`` and ``[safety]``. Problems are
collected as plain sentences (shown by ``mhchat check-config``), never raised one at a time.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from mhchat.config import (
    Settings,
    register_section_check,
    register_section_warning,
    unknown_settings,
)
from mhchat.errors import ConfigError

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


@dataclass(frozen=True, slots=True, kw_only=True)
class ScheduleSettings:
    zone: str = "Europe/London"
    weekday: int = 2
    """0 is Monday, as in ``date.weekday()``; the default is Wednesday."""
    start: time = time(20, 0)
    length_minutes: int = 60
    pre_chat_minutes: int = 60
    after_hours_minutes: int = 180
    reminder_minutes_before: int = 60
    lateness_minutes: int = 10
    """A question this late (after downtime) expires instead of going out."""

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.zone)


@dataclass(frozen=True, slots=True, kw_only=True)
class QuestionsSettings:
    file: Path | None = None
    """The host's questions file; None uses the packaged example."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Budgets:
    """A number of actions per session for each platform, with a default."""

    default: int
    per_platform: Mapping[str, int] = field(default_factory=dict)

    def for_platform(self, platform: str) -> int:
        return self.per_platform.get(platform, self.default)


@dataclass(frozen=True, slots=True, kw_only=True)
class RepostSettings:
    enabled: bool = True
    budget: Budgets = field(default_factory=lambda: Budgets(default=100))
    second_round: bool = True
    """After the live hour, spend what is left of the budget on second posts, fairly."""


@dataclass(frozen=True, slots=True, kw_only=True)
class WelcomeSettings:
    enabled: bool = True
    budget: Budgets = field(default_factory=lambda: Budgets(default=50))
    templates: Path | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class HelpLine:
    region: str
    name: str
    contact: str
    reviewed: date


@dataclass(frozen=True, slots=True, kw_only=True)
class SafetySettings:
    lexicon: Path | None = None
    abuse_threshold: float = 0.9
    max_links: int = 3
    repeat_limit: int = 3
    flag_retention_days: int = 30
    regions: tuple[str, ...] = ("uk", "us")
    """Regions whose help lines a signposting reply lists when a post names none."""
    help_lines: tuple[HelpLine, ...] = ()
    review_every_days: int = 180
    """Help-line numbers older than this are reported by check-config."""
    blocklist: frozenset[tuple[str, str]] = frozenset()
    """(platform, author id) pairs never amplified or welcomed."""


DEFAULT_HELP_LINES = (
    HelpLine(region="uk", name="Samaritans", contact="call 116 123", reviewed=date(2026, 11, 1)),
    HelpLine(region="uk", name="SHOUT", contact="text SHOUT to 85258", reviewed=date(2026, 11, 1)),
    HelpLine(
        region="us", name="988 Lifeline", contact="call or text 988", reviewed=date(2026, 11, 1)
    ),
)


@dataclass(frozen=True, slots=True, kw_only=True)
class FacilitationSettings:
    chat_id: str = "default"
    hashtag: str = "MHChat"
    schedule: ScheduleSettings = field(default_factory=ScheduleSettings)
    questions: QuestionsSettings = field(default_factory=QuestionsSettings)
    reposts: RepostSettings = field(default_factory=RepostSettings)
    welcomes: WelcomeSettings = field(default_factory=WelcomeSettings)
    safety: SafetySettings = field(
        default_factory=lambda: SafetySettings(help_lines=DEFAULT_HELP_LINES)
    )


class _Table:
    """Typed reads from one TOML table; problems are appended, defaults returned."""

    def __init__(self, doc: Mapping[str, Any], name: str, problems: list[str]) -> None:
        value = doc.get(name, {})
        if not isinstance(value, Mapping):
            problems.append(f"[{name}] must be a table (a section), not a single value.")
            value = {}
        self.t: Mapping[str, Any] = value
        self.name = name
        self.problems = problems

    def unknown(self, known: set[str]) -> None:
        self.problems.extend(unknown_settings(self.name, self.t, known))

    def get(self, key: str, kind: type, default: Any, what: str) -> Any:
        if key not in self.t:
            return default
        value = self.t[key]
        if (isinstance(value, bool) and kind is not bool) or not isinstance(value, kind):
            self.problems.append(f"[{self.name}] {key} must be {what}, not {value!r}.")
            return default
        return value

    def whole(self, key: str, default: int, minimum: int = 0) -> int:
        value = int(self.get(key, int, default, "a whole number"))
        if value < minimum:
            self.problems.append(f"[{self.name}] {key} must be at least {minimum}, not {value}.")
            return default
        return value

    def path(self, key: str, base: Path) -> Path | None:
        value = self.get(key, str, None, "a file path in quotes")
        if value is None:
            return None
        path = Path(value)
        return path if path.is_absolute() else base / path

    def budgets(self, key: str, default: int) -> Budgets:
        value = self.t.get(key, default)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return Budgets(default=value)
        if isinstance(value, Mapping):
            per: dict[str, int] = {}
            fallback = default
            for platform, count in value.items():
                if isinstance(count, bool) or not isinstance(count, int) or count < 0:
                    self.problems.append(
                        f"[{self.name}.{key}] {platform} must be a whole number of actions per"
                        f" session, not {count!r}."
                    )
                elif platform == "default":
                    fallback = count
                else:
                    per[str(platform)] = count
            return Budgets(default=fallback, per_platform=per)
        self.problems.append(
            f"[{self.name}] {key} must be a whole number per session, or a table of numbers"
            f" per platform (e.g. {key} = {{ x = 20, bluesky = 100 }}), not {value!r}."
        )
        return Budgets(default=default)


def _schedule(doc: Mapping[str, Any], problems: list[str]) -> ScheduleSettings:
    t = _Table(doc, "schedule", problems)
    t.unknown(
        {
            "zone",
            "weekday",
            "time",
            "length_minutes",
            "pre_chat_minutes",
            "after_hours_minutes",
            "reminder_minutes_before",
            "lateness_minutes",
        }
    )
    zone = str(t.get("zone", str, "Europe/London", "a time zone name such as Europe/London"))
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        problems.append(f"[schedule] zone {zone!r} is not a known time zone (e.g. Europe/London).")
        zone = "Europe/London"
    day_name = str(t.get("weekday", str, "wednesday", "a day name such as wednesday")).lower()
    if day_name not in WEEKDAYS:
        problems.append(
            f"[schedule] weekday must be a day name such as wednesday, not {day_name!r}."
        )
        day_name = "wednesday"
    start_text = str(t.get("time", str, "20:00", 'a clock time such as "20:00"'))
    try:
        hour, minute = (int(part) for part in start_text.split(":"))
        start = time(hour, minute)
    except ValueError:
        problems.append(
            f'[schedule] time must be a clock time such as "20:00", not {start_text!r}.'
        )
        start = time(20, 0)
    return ScheduleSettings(
        zone=zone,
        weekday=WEEKDAYS.index(day_name),
        start=start,
        length_minutes=t.whole("length_minutes", 60, minimum=1),
        pre_chat_minutes=t.whole("pre_chat_minutes", 60),
        after_hours_minutes=t.whole("after_hours_minutes", 180),
        reminder_minutes_before=t.whole("reminder_minutes_before", 60),
        lateness_minutes=t.whole("lateness_minutes", 10),
    )


def _help_lines(t: _Table) -> tuple[HelpLine, ...]:
    lines = t.t.get("help_lines")
    if lines is None:
        return DEFAULT_HELP_LINES
    found: list[HelpLine] = []
    if not isinstance(lines, list):
        t.problems.append("[safety] help_lines must be a list of tables ([[safety.help_lines]]).")
        return DEFAULT_HELP_LINES
    for i, line in enumerate(lines, start=1):
        where = f"[[safety.help_lines]] number {i}"
        if not isinstance(line, Mapping):
            t.problems.append(f"{where} must be a table with region, name, contact and reviewed.")
            continue
        missing = [k for k in ("region", "name", "contact", "reviewed") if k not in line]
        if missing:
            t.problems.append(f"{where} is missing {', '.join(missing)}.")
            continue
        reviewed = line["reviewed"]
        if not isinstance(reviewed, date):
            t.problems.append(
                f"{where}: reviewed must be a date such as 2026-11-01, not {reviewed!r}."
            )
            continue
        found.append(
            HelpLine(
                region=str(line["region"]).lower(),
                name=str(line["name"]),
                contact=str(line["contact"]),
                reviewed=reviewed,
            )
        )
    return tuple(found)


def _blocklist(t: _Table) -> frozenset[tuple[str, str]]:
    entries = t.get("blocklist", list, [], 'a list of "platform:author id" texts')
    found: set[tuple[str, str]] = set()
    for entry in entries:
        platform, sep, author = str(entry).partition(":")
        if not sep or not author:
            t.problems.append(
                f'[safety] blocklist entry {entry!r} must look like "platform:author id"'
                ' (e.g. "x:12345").'
            )
            continue
        found.add((platform, author))
    return frozenset(found)


def parse_facilitation(
    doc: Mapping[str, Any], *, base: Path | None = None
) -> tuple[FacilitationSettings, list[str]]:
    """Parse the facilitation sections; return the settings and the problems found."""
    problems: list[str] = []
    here = base or Path.cwd()
    chat = doc.get("chat", {}) if isinstance(doc.get("chat", {}), Mapping) else {}
    schedule = _schedule(doc, problems)
    q = _Table(doc, "questions", problems)
    q.unknown({"file"})
    r = _Table(doc, "reposts", problems)
    r.unknown({"enabled", "budget", "second_round"})
    w = _Table(doc, "welcomes", problems)
    w.unknown({"enabled", "budget", "templates"})
    s = _Table(doc, "safety", problems)
    s.unknown(
        {
            "lexicon",
            "abuse_threshold",
            "max_links",
            "repeat_limit",
            "flag_retention_days",
            "regions",
            "help_lines",
            "review_every_days",
            "blocklist",
        }
    )
    threshold = s.get("abuse_threshold", (float, int), 0.9, "a number between 0 and 1")  # type: ignore[arg-type]
    if not 0.0 < float(threshold) <= 1.0:
        problems.append(f"[safety] abuse_threshold must be between 0 and 1, not {threshold!r}.")
        threshold = 0.9
    regions = tuple(
        str(x).lower() for x in s.get("regions", list, ["uk", "us"], 'a list such as ["uk", "us"]')
    )
    safety = SafetySettings(
        lexicon=s.path("lexicon", here),
        abuse_threshold=float(threshold),
        max_links=s.whole("max_links", 3, minimum=1),
        repeat_limit=s.whole("repeat_limit", 3, minimum=2),
        flag_retention_days=s.whole("flag_retention_days", 30, minimum=1),
        regions=regions,
        help_lines=_help_lines(s),
        review_every_days=s.whole("review_every_days", 180, minimum=1),
        blocklist=_blocklist(s),
    )
    known_regions = {line.region for line in safety.help_lines}
    problems.extend(
        f"[safety] regions names {region!r} but no help line is configured for it."
        for region in regions
        if region not in known_regions
    )
    settings = FacilitationSettings(
        chat_id=str(chat.get("id", "default")),
        hashtag=str(chat.get("hashtag", "MHChat")).lstrip("#"),
        schedule=schedule,
        questions=QuestionsSettings(file=q.path("file", here)),
        reposts=RepostSettings(
            enabled=bool(r.get("enabled", bool, True, "true or false")),
            budget=r.budgets("budget", 100),
            second_round=bool(r.get("second_round", bool, True, "true or false")),
        ),
        welcomes=WelcomeSettings(
            enabled=bool(w.get("enabled", bool, True, "true or false")),
            budget=w.budgets("budget", 50),
            templates=w.path("templates", here),
        ),
        safety=safety,
    )
    return settings, problems


def facilitation_settings(settings: Settings) -> FacilitationSettings:
    """The facilitation settings of a loaded configuration (already checked at load)."""
    base = Path(settings.source).parent if settings.source.endswith(".toml") else Path.cwd()
    parsed, _ = parse_facilitation(settings.raw, base=base)
    return parsed


def stale_help_lines(safety: SafetySettings, today: date) -> list[str]:
    """Plain sentences for help lines whose numbers are due for a check."""
    return [
        f"[safety] the {line.name} ({line.region.upper()}) help line was last checked on"
        f" {line.reviewed.isoformat()}, more than {safety.review_every_days} days ago:"
        " check the number is still right and update its reviewed date."
        for line in safety.help_lines
        if (today - line.reviewed).days > safety.review_every_days
    ]


@register_section_check
def _check(settings: Settings) -> list[str]:
    # Help lines past their review date are warnings (``stale_help_lines``), not problems:
    # a restart in the middle of a chat must not be refused over a date.
    base = Path(settings.source).parent if settings.source.endswith(".toml") else Path.cwd()
    parsed, problems = parse_facilitation(settings.raw, base=base)
    for label, path in (
        ("[questions] file", parsed.questions.file),
        ("[welcomes] templates", parsed.welcomes.templates),
        ("[safety] lexicon", parsed.safety.lexicon),
    ):
        if path is not None and not path.is_file():
            problems.append(f"{label} names {path}, which does not exist.")
    if problems:
        return problems
    # The files themselves: a broken one is found now, not at 20:05 on a Wednesday.
    from mhchat.facilitation.questions import load_questions  # noqa: PLC0415 - avoids a cycle
    from mhchat.facilitation.templates import load_templates  # noqa: PLC0415
    from mhchat.facilitation.triage.lexicon import load_lexicon  # noqa: PLC0415

    for load, path in (
        (load_questions, parsed.questions.file),
        (load_templates, parsed.welcomes.templates),
        (load_lexicon, parsed.safety.lexicon),
    ):
        try:
            load(path)
        except ConfigError as exc:
            problems.extend(exc.problems)
    return problems


@register_section_warning
def _warn(settings: Settings) -> list[str]:
    from datetime import UTC, datetime  # noqa: PLC0415 - only check-config asks for today

    from mhchat.facilitation.reviews import review_warnings  # noqa: PLC0415 - avoids a cycle
    from mhchat.facilitation.triage.lexicon import load_lexicon  # noqa: PLC0415

    parsed = facilitation_settings(settings)
    try:
        lexicon = load_lexicon(parsed.safety.lexicon)
    except ConfigError as exc:
        return list(exc.problems)
    return review_warnings(parsed.safety, lexicon, datetime.now(UTC).date())
