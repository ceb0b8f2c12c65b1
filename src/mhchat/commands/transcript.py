"""``mhchat transcript``: export one chat session as Markdown, HTML, JSON or CSV.

Posts are grouped by question and by thread; deleted posts never appear; ``--anonymise``
replaces people with stable pseudonyms ("Participant 1", ...) and drops links and ids.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any


def add_parser(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "transcript",
        help="export a chat session's transcript (md, html, json or csv)",
        description=(
            "Write one session's posts, grouped by question and thread, to standard output or"
            " a file. Sessions are named by their date (e.g. 2026-11-25). Deleted posts are"
            " never included."
        ),
    )
    parser.add_argument("session", help="the session id, e.g. 2026-11-25")
    parser.add_argument(
        "-f", "--format", choices=["md", "html", "json", "csv"], default="md", help="output format"
    )
    parser.add_argument(
        "--anonymise",
        "--anonymize",
        action="store_true",
        help="replace participants with stable pseudonyms and drop links and post ids",
    )
    parser.add_argument("-o", "--output", help="file to write (default: standard output)")
    parser.add_argument("-c", "--config", help="TOML configuration file")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mhchat import transcript  # noqa: PLC0415 - keep `mhchat --help` fast
    from mhchat.cli import settings_or_exit  # noqa: PLC0415
    from mhchat.config import shown_url  # noqa: PLC0415
    from mhchat.errors import DatabaseUnavailable  # noqa: PLC0415
    from mhchat.store.open import open_database  # noqa: PLC0415

    settings = settings_or_exit(args.config)
    fmt = transcript.Format(args.format)

    async def export() -> str:
        db = await open_database(settings.database, create=False)
        try:
            return await transcript.export(
                db, settings.chat.chat_id, args.session, fmt, anonymise=args.anonymise
            )
        finally:
            await db.close()

    try:
        text = asyncio.run(export())
    except transcript.SessionNotFound:
        sys.stderr.write(
            f"There is no session {args.session!r} in {shown_url(settings.database.url)}"
            f" for chat {settings.chat.chat_id!r}.\n"
        )
        return 1
    except DatabaseUnavailable as exc:
        sys.stderr.write(f"mhchat cannot read the database: {exc}\n")
        return 1
    except Exception as exc:  # noqa: BLE001 - a missing or old database is a plain message
        sys.stderr.write(f"mhchat cannot read the database: {type(exc).__name__}: {exc}\n")
        return 1
    if args.output:
        try:
            Path(args.output).write_text(text, encoding="utf-8")
        except OSError as exc:
            sys.stderr.write(f"mhchat cannot write {args.output}: {exc.strerror}.\n")
            return 1
        sys.stderr.write(f"Wrote {args.output}.\n")
    else:
        sys.stdout.write(text)
    return 0
