"""The questions file the host edits: per-session opening sequences, validated and previewed.

Format (TOML)::

    [default]
    topic = "Looking after ourselves"
    reminder = "#MHChat starts in 1 hour: {topic}. {times}"
    intro = "Welcome to #MHChat! Tonight: {topic}. Answer with A1, A2... Be kind."

    [[default.questions]]
    n = 1
    offset_minutes = 5
    text = "How are you, really?"

    [sessions."2026-11-25"]        # a chat date (local): overrides the default
    topic = "Sleep"
    [[sessions."2026-11-25".questions]]
    n = 1
    offset_minutes = 5
    text = "How have you been sleeping?"

Placeholders: ``{topic}``, ``{hashtag}`` and ``{times}`` (the start time in the audiences' zones).
Questions go out as ``Q<n>: <text> #<hashtag>``; participants answer with ``A<n>``.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from mhchat.errors import ConfigError
from mhchat.facilitation.formatting import fit, limit_for, with_hashtag
from mhchat.facilitation.schedule import Schedule, Session
from mhchat.facilitation.settings import WEEKDAYS
from mhchat.textfiles import read_config_text

AUDIENCE_ZONES = (
    ("UK", "Europe/London"),
    ("US Eastern", "America/New_York"),
    ("US Pacific", "America/Los_Angeles"),
)
PLACEHOLDERS = frozenset({"topic", "hashtag", "times"})


@dataclass(frozen=True, slots=True, kw_only=True)
class Question:
    n: int
    text: str
    offset_minutes: int


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionPlan:
    topic: str = ""
    reminder: str = ""
    intro: str = ""
    questions: tuple[Question, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class QuestionsFile:
    default: SessionPlan
    sessions: Mapping[str, SessionPlan]
    source: str

    def plan_for(self, session_id: str) -> SessionPlan:
        return self.sessions.get(session_id, self.default)


@dataclass(frozen=True, slots=True, kw_only=True)
class Item:
    """One scheduled post of a session's opening sequence (reminder, intro or a question)."""

    kind: str
    """``reminder``, ``intro`` or ``question``."""
    n: int
    at: datetime
    text: str

    def key(self, session_id: str, platform: str) -> str:
        if self.kind == "question":
            return f"question:{session_id}:{self.n}:{platform}"
        return f"{self.kind}:{session_id}:{platform}"


def _plan(
    table: Mapping[str, Any], where: str, base: SessionPlan | None, problems: list[str]
) -> SessionPlan:
    plan = base or SessionPlan()
    fields: dict[str, Any] = {}
    for name in ("topic", "reminder", "intro"):
        if name in table:
            value = table[name]
            if not isinstance(value, str):
                problems.append(f"{where}: {name} must be text in quotes.")
            else:
                fields[name] = value
    unknown = set(table) - {"topic", "reminder", "intro", "questions"}
    problems.extend(
        f"{where}: {name!r} is not a setting of a session." for name in sorted(unknown)
    )
    if "questions" in table:
        raw = table["questions"]
        questions: list[Question] = []
        if not isinstance(raw, list):
            problems.append(f"{where}: questions must be a list of [[...questions]] tables.")
            raw = []
        for i, item in enumerate(raw, start=1):
            label = f"{where} question {i}"
            if not isinstance(item, Mapping):
                problems.append(f"{label} must be a table with n, offset_minutes and text.")
                continue
            n, text, offset = item.get("n"), item.get("text"), item.get("offset_minutes")
            if not isinstance(n, int) or isinstance(n, bool) or n < 1:
                problems.append(f"{label}: n must be a whole number from 1 (got {n!r}).")
                continue
            if not isinstance(text, str) or not text.strip():
                problems.append(f"{where} Q{n}: text must not be empty.")
                continue
            if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
                problems.append(
                    f"{where} Q{n}: offset_minutes must be a whole number of minutes after the"
                    f" start (got {offset!r})."
                )
                continue
            questions.append(Question(n=n, text=text.strip(), offset_minutes=offset))
        fields["questions"] = tuple(sorted(questions, key=lambda q: q.n))
    return replace(plan, **fields)


def parse_questions(
    doc: Mapping[str, Any], *, source: str = "<questions>"
) -> tuple[QuestionsFile, list[str]]:
    problems: list[str] = []
    default_t = doc.get("default", {})
    if not isinstance(default_t, Mapping):
        problems.append("[default] must be a table.")
        default_t = {}
    default = _plan(default_t, "[default]", None, problems)
    sessions: dict[str, SessionPlan] = {}
    sessions_t = doc.get("sessions", {})
    if not isinstance(sessions_t, Mapping):
        problems.append(
            '[sessions] must hold one table per chat date, e.g. [sessions."2026-11-25"].'
        )
        sessions_t = {}
    for key, table in sessions_t.items():
        where = f'[sessions."{key}"]'
        try:
            date.fromisoformat(str(key))
        except ValueError:
            problems.append(f"{where}: the name must be the chat's date, such as 2026-11-25.")
            continue
        if not isinstance(table, Mapping):
            problems.append(f"{where} must be a table.")
            continue
        sessions[str(key)] = _plan(table, where, default, problems)
    extra = set(doc) - {"default", "sessions"}
    problems.extend(f"{name!r} is not a section of a questions file." for name in sorted(extra))
    return QuestionsFile(default=default, sessions=sessions, source=source), problems


def default_questions_text() -> str:
    return (
        resources.files("mhchat.facilitation.data").joinpath("questions.toml").read_text("utf-8")
    )


def load_questions(path: Path | None) -> QuestionsFile:
    """Read the host's file (or the packaged example); raise ConfigError on any problem."""
    if path is None:
        text, source = default_questions_text(), "<packaged example questions>"
    else:
        text, source = read_config_text(path, "The questions file"), str(path)
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{source} is not valid TOML: {exc}."]) from None
    parsed, problems = parse_questions(doc, source=source)
    if problems:
        raise ConfigError(problems)
    return parsed


def audience_times(at: datetime, host_zone: str) -> str:
    """``20:00 GMT / 15:00 EST / 12:00 PST`` (plus the host's zone when it is another)."""
    zones = [z for _, z in AUDIENCE_ZONES]
    if host_zone not in zones:
        zones.insert(0, host_zone)
    parts = []
    for zone in zones:
        local = at.astimezone(ZoneInfo(zone))
        parts.append(f"{local:%H:%M} {local.tzname()}")
    return " / ".join(parts)


def _render(template: str, *, topic: str, hashtag: str, times: str) -> str:
    return template.format_map({"topic": topic, "hashtag": hashtag, "times": times})


def question_text(n: int, text: str) -> str:
    return f"Q{n}: {text}"


def session_items(
    plan: SessionPlan, session: Session, *, hashtag: str, zone: str, reminder_at: datetime
) -> list[Item]:
    """The opening sequence of one session, in time order, texts not yet fitted."""
    times = audience_times(session.starts_at, zone)
    items: list[Item] = []
    if plan.reminder:
        items.append(
            Item(
                kind="reminder",
                n=0,
                at=reminder_at,
                text=_render(plan.reminder, topic=plan.topic, hashtag=hashtag, times=times),
            )
        )
    if plan.intro:
        items.append(
            Item(
                kind="intro",
                n=0,
                at=session.starts_at,
                text=_render(plan.intro, topic=plan.topic, hashtag=hashtag, times=times),
            )
        )
    items.extend(
        Item(
            kind="question",
            n=q.n,
            at=session.starts_at + timedelta(minutes=q.offset_minutes),
            text=question_text(
                q.n, _render(q.text, topic=plan.topic, hashtag=hashtag, times=times)
            ),
        )
        for q in plan.questions
    )
    return sorted(items, key=lambda item: (item.at, item.kind != "reminder", item.n))


def _placeholder_problems(where: str, text: str) -> list[str]:
    import string  # noqa: PLC0415 - imported on first use

    found = {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}
    return [
        f"{where}: {{{name}}} is not a placeholder; use {{topic}}, {{hashtag}} or {{times}}."
        for name in sorted(found - PLACEHOLDERS)
    ]


def validate(
    qfile: QuestionsFile, schedule: Schedule, *, hashtag: str, platforms: list[str]
) -> list[str]:
    """Plain-sentence problems a host must fix before the chat."""
    problems: list[str] = []
    length = schedule.settings.length_minutes
    plans = [("[default]", "", qfile.default)] + [
        (f'[sessions."{k}"]', k, v) for k, v in qfile.sessions.items()
    ]
    for where, key, plan in plans:
        if key:
            day = date.fromisoformat(key)
            if day.weekday() != schedule.settings.weekday:
                problems.append(
                    f"{where}: {key} is a {day:%A}, but the chat is on"
                    f" {WEEKDAYS[schedule.settings.weekday].capitalize()}."
                )
        problems.extend(_order_problems(where, plan, length))
        problems.extend(_text_problems(where, plan, hashtag=hashtag, platforms=platforms))
    return problems


def _order_problems(where: str, plan: SessionPlan, length: int) -> list[str]:
    problems: list[str] = []
    seen: set[int] = set()
    for q in plan.questions:
        if q.n in seen:
            problems.append(f"{where}: Q{q.n} appears twice.")
        seen.add(q.n)
        if q.offset_minutes > length:
            problems.append(
                f"{where} Q{q.n}: offset {q.offset_minutes} minutes is after the chat's end"
                f" ({length} minutes)."
            )
    ordered = [q.offset_minutes for q in plan.questions]
    if ordered != sorted(ordered):
        problems.append(
            f"{where}: questions must go out in order (Q1 first), check offset_minutes."
        )
    if not plan.questions:
        problems.append(f"{where}: there are no questions.")
    return problems


def _text_problems(
    where: str, plan: SessionPlan, *, hashtag: str, platforms: list[str]
) -> list[str]:
    problems: list[str] = []
    for label, text in [("reminder", plan.reminder), ("intro", plan.intro)] + [
        (f"Q{q.n}", q.text) for q in plan.questions
    ]:
        try:
            problems.extend(_placeholder_problems(f"{where} {label}", text))
            rendered = _render(
                text,
                topic=plan.topic,
                hashtag=hashtag,
                times="20:00 GMT / 15:00 EST / 12:00 PST",
            )
        except (ValueError, KeyError, IndexError):
            problems.append(
                f"{where} {label}: braces must hold a placeholder such as {{topic}}; write"
                f" {{{{ for a brace."
            )
            continue
        if label.startswith("Q"):
            rendered = question_text(int(label[1:]), rendered)
        full = with_hashtag(rendered, hashtag)
        for platform in platforms:
            limit = limit_for(platform)
            size = limit.measure(full)
            if size > limit.maximum:
                problems.append(
                    f"{where} {label} is {size} {limit.unit} on {limit.name} with the hashtag;"
                    f" {limit.name} allows {limit.maximum}: shorten it (it would be cut)."
                )
    return problems


def preview(
    qfile: QuestionsFile, session: Session, *, hashtag: str, zone: str, platforms: list[str]
) -> str:
    """A readable preview of one session: times in every audience zone, text per platform."""
    plan = qfile.plan_for(session.session_id)
    lines = [
        f"#{hashtag} session {session.session_id}" + (f": {plan.topic}" if plan.topic else ""),
        f"  starts {audience_times(session.starts_at, zone)}",
        "",
    ]
    for item in session_items(
        plan, session, hashtag=hashtag, zone=zone, reminder_at=session.reminder_at
    ):
        label = item.kind if item.kind != "question" else f"Q{item.n}"
        lines.append(f"{label:>8}  {audience_times(item.at, zone)}")
        for platform in platforms:
            text = fit(item.text, hashtag, platform)
            limit = limit_for(platform)
            lines.append(f"          {platform} ({limit.measure(text)}/{limit.maximum}): {text}")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


class QuestionsSource:
    """The host's questions file, read again when it changes (no restart needed).

    A file that no longer parses keeps the last good version in use, and says so once.
    """

    def __init__(
        self, path: Path | None, *, on_problem: Callable[[list[str]], None] | None = None
    ) -> None:
        self.path = path
        self.on_problem = on_problem
        self._stamp: tuple[int, int] | None = None
        self._current = load_questions(path)
        self._stamp = self._stat()

    def _stat(self) -> tuple[int, int] | None:
        if self.path is None:
            return None
        try:
            info = self.path.stat()
        except OSError:
            return None
        return (info.st_mtime_ns, info.st_size)

    def current(self) -> QuestionsFile:
        stamp = self._stat()
        if stamp is None or stamp == self._stamp:
            return self._current
        self._stamp = stamp
        try:
            self._current = load_questions(self.path)
        except ConfigError as exc:
            if self.on_problem is not None:
                self.on_problem(exc.problems)
        return self._current
