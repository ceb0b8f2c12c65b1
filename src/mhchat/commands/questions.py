"""``mhchat questions``: validate the host's questions file and preview a session."""

from __future__ import annotations

import argparse
import os
import sys
from datetime import UTC, date, datetime
from pathlib import Path
from typing import IO, Any

from mhchat.errors import ConfigError


def _say(text: str = "", *, file: IO[str] | None = None) -> None:
    (file or sys.stdout).write(f"{text}\n")


def add_parser(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "questions",
        help="check the questions file and preview a session's posts",
        description=(
            "Check the questions file and show a session's reminder, intro and questions with"
            " their times in the host's zone and the audiences' zones (UK, US Eastern, US"
            " Pacific), as each platform will post them."
        ),
    )
    parser.add_argument(
        "-c",
        "--config",
        default=os.environ.get("MHCHAT_CONFIG"),
        help="TOML configuration file (for the schedule and hashtag)",
    )
    parser.add_argument("--file", type=Path, help="questions file (default: [questions] file)")
    parser.add_argument(
        "--session", help="chat date to preview, e.g. 2026-11-25 (default: the next)"
    )
    parser.add_argument(
        "--platforms",
        default=None,
        help=(
            "comma-separated platforms to format for"
            " (default: the enabled ones, else x,bluesky,facebook)"
        ),
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mhchat.config import load_settings  # noqa: PLC0415 - imported on first use
    from mhchat.facilitation.questions import load_questions, preview, validate  # noqa: PLC0415 - imported on first use
    from mhchat.facilitation.schedule import Schedule  # noqa: PLC0415 - imported on first use
    from mhchat.facilitation.settings import facilitation_settings  # noqa: PLC0415 - imported on first use

    try:
        settings = load_settings(args.config, serving=False)
        fac = facilitation_settings(settings)
        path = args.file or fac.questions.file
        qfile = load_questions(path)
    except ConfigError as exc:
        _say("The questions cannot be used:", file=sys.stderr)
        for problem in exc.problems:
            _say(f"  - {problem}", file=sys.stderr)
        return 2
    if args.platforms:
        platforms = [p.strip() for p in args.platforms.split(",") if p.strip()]
    else:
        platforms = [a.name for a in settings.enabled_adapters] or ["x", "bluesky", "facebook"]
    schedule = Schedule(fac.schedule)
    problems = validate(qfile, schedule, hashtag=fac.hashtag, platforms=platforms)
    if args.session:
        try:
            session = schedule.by_id(args.session)
        except ValueError:
            day = date.fromisoformat(args.session) if _is_date(args.session) else None
            what = f"a {day:%A}" if day else "not a date"
            _say(
                f"{args.session} is {what}; the chat is on the configured weekday.",
                file=sys.stderr,
            )
            return 2
    else:
        session = schedule.next_session(datetime.now(UTC))
    _say(f"Questions from {qfile.source}")
    _say(preview(qfile, session, hashtag=fac.hashtag, zone=fac.schedule.zone, platforms=platforms))
    if problems:
        _say("Problems to fix before the chat:", file=sys.stderr)
        for problem in problems:
            _say(f"  - {problem}", file=sys.stderr)
        return 1
    _say("The questions file is valid.")
    return 0


def _is_date(text: str) -> bool:
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return True
