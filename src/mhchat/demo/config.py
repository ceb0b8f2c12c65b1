"""The demo's configuration file: SQLite, the three real adapters on the emulators, and a
schedule that starts the chat a few (compressed) minutes after launch."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from mhchat.demo.script import (
    AFTER_HOURS_MINUTES,
    HASHTAG,
    LENGTH_MINUTES,
    PRE_CHAT_MINUTES,
    QUESTION_OFFSETS,
    Script,
)
from mhchat.tomlwrite import to_toml as write_toml

QUESTIONS = (
    "How are you, really, this week?",
    "What is one small thing that helped you lately?",
    "Who or what do you turn to when things feel heavy?",
    "What would you like to tell someone who is struggling tonight?",
)

QUESTIONS_FILE = """\
# The demo's questions: the packaged example, with a reminder a few minutes before the start.
[default]
topic = "Looking after ourselves this week"
reminder = "{reminder}"
intro = "{intro}"
{questions}"""


def budgets(script: Script) -> dict[str, int]:
    """Repost budgets that make the demo show both sides of fairness.

    X gets fewer reposts than it has eligible people (so nobody is reposted twice there), Bluesky
    enough for everyone once and a second round after the hour, the Facebook page none (a page
    cannot share a comment).
    """
    eligible: dict[str, set[str]] = {"x": set(), "bluesky": set()}
    opted = {p.key for p in script.people if p.role == "opt_out"}
    gone = script.deleted
    for step in script.session_posts():
        if step.category == "ok" and step.author not in opted and step.id not in gone:
            eligible.setdefault(step.platform, set()).add(step.author)
    return {
        "x": max(2, len(eligible["x"]) - 3),
        "bluesky": 2 * len(eligible["bluesky"]),
        "facebook": 0,
    }


def document(
    *,
    starts_at: datetime,
    database: Path,
    questions_file: Path,
    adapters: Mapping[str, Mapping[str, Any]],
    script: Script,
    virtual_seconds: float,
) -> dict[str, Any]:
    """The TOML document as a dict (``virtual_seconds`` = one real second on the clock)."""
    return {
        "chat": {"id": "demo", "hashtag": HASHTAG},
        "database": {"url": f"sqlite:///{database}"},
        "web": {"host": "127.0.0.1", "port": 0},
        "sender": {
            "min_interval_seconds": 1.0,
            "poll_seconds": max(0.5, 0.2 * virtual_seconds),
        },
        "logging": {"level": "warning"},
        "schedule": {
            "zone": "UTC",
            "weekday": starts_at.strftime("%A").lower(),
            "time": starts_at.strftime("%H:%M"),
            "length_minutes": LENGTH_MINUTES,
            "pre_chat_minutes": PRE_CHAT_MINUTES,
            "reminder_minutes_before": PRE_CHAT_MINUTES,
            "after_hours_minutes": AFTER_HOURS_MINUTES,
            "lateness_minutes": 10,
        },
        "questions": {"file": str(questions_file)},
        "reposts": {"budget": budgets(script), "second_round": True},
        "welcomes": {"budget": 100},
        "dashboard": {"facilitators": ["demo"]},
        "adapters": {name: dict(table) for name, table in adapters.items()},
    }


REMINDER = (
    "Reminder: #{{hashtag}} starts in a few minutes ({{times}}). Tonight: {{topic}}."
    " Everyone is welcome; answer with A1, A2... and be kind."
)
INTRO = (
    "Welcome to #{{hashtag}}! Tonight: {{topic}}. Questions come as Q1, Q2...; answer with"
    " A1, A2... Share only what feels OK, and be kind to each other."
)


def questions_toml() -> str:
    blocks = [
        f'\n[[default.questions]]\nn = {n}\noffset_minutes = {offset}\ntext = "{text}"\n'
        for n, (offset, text) in enumerate(zip(QUESTION_OFFSETS, QUESTIONS, strict=True), 1)
    ]
    text = QUESTIONS_FILE.format(questions="".join(blocks), reminder=REMINDER, intro=INTRO)
    return text.replace("{{", "{").replace("}}", "}")


def to_toml(doc: Mapping[str, Any]) -> str:
    """The demo's configuration document as TOML."""
    header = "# Written by `mhchat demo`: the service pointed at local emulators.\n"
    return header + write_toml(doc) + "\n"
