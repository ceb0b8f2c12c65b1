"""``mhchat triage``: run the safety step on example posts and print each decision.

Input: plain lines, or JSON lines with a ``text`` field (other fields are echoed back, so a
labelled file can be checked). Output: one JSON line per post with ``decision`` and ``reason``.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import orjson

BATCH = 256


def _say(text: str = "", *, file: IO[str] | None = None) -> None:
    (file or sys.stdout).write(f"{text}\n")


def add_parser(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "triage",
        help="show the safety step's decision on example posts (JSON lines out)",
        description=(
            'Read posts (plain lines, or JSON lines with a "text" field) and print each'
            " post's decision (ok, crisis, abuse, spam) and reason as JSON lines. Crisis"
            " phrases cover English, Spanish, French, German, Portuguese, Italian, Dutch and"
            " Japanese; the abuse model is English."
        ),
    )
    parser.add_argument("file", nargs="?", default="-", help="input file, or - for standard input")
    parser.add_argument(
        "-c",
        "--config",
        default=os.environ.get("MHCHAT_CONFIG"),
        help="TOML configuration file (for [safety] settings)",
    )
    parser.set_defaults(func=run)


def _records(stream: IO[str]) -> Iterator[dict[str, Any]]:
    for number, line in enumerate(stream, start=1):
        text = line.rstrip("\n").removesuffix("\r")
        if not text.strip():
            continue
        if text.lstrip().startswith("{"):
            try:
                data = orjson.loads(text)
            except orjson.JSONDecodeError:
                data = None
            if isinstance(data, dict) and isinstance(data.get("text"), str):
                yield {"line": number, **data}
                continue
        yield {"line": number, "text": text}


def run(args: argparse.Namespace) -> int:
    from mhchat.config import load_settings  # noqa: PLC0415 - imported on first use
    from mhchat.errors import ConfigError  # noqa: PLC0415 - imported on first use
    from mhchat.facilitation.handler import build_triage  # noqa: PLC0415 - imported on first use
    from mhchat.facilitation.reviews import review_warnings  # noqa: PLC0415 - imported on first use
    from mhchat.facilitation.settings import facilitation_settings  # noqa: PLC0415 - imported on first use
    from mhchat.facilitation.triage.classifier import TriageInput  # noqa: PLC0415 - imported on first use

    try:
        fac = facilitation_settings(load_settings(args.config, serving=False))
        triage = build_triage(fac)
    except ConfigError as exc:
        for problem in exc.problems:
            _say(f"  - {problem}", file=sys.stderr)
        return 2
    for warning in review_warnings(fac.safety, triage.lexicon, datetime.now(UTC).date()):
        _say(f"warning: {warning}", file=sys.stderr)
    # A byte that is not UTF-8 becomes U+FFFD rather than an error: one bad byte must not
    # stop the lines around it, a crisis post among them, from being classified.
    if args.file == "-":
        stream: IO[str] = sys.stdin
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors="replace")
    else:
        try:
            stream = Path(args.file).open(encoding="utf-8", errors="replace")  # noqa: SIM115 - closed below
        except OSError as exc:
            _say(f"{args.file} cannot be read: {exc.strerror}.", file=sys.stderr)
            return 2
    out = sys.stdout
    try:
        pending: list[dict[str, Any]] = []
        for record in _records(stream):
            pending.append(record)
            if len(pending) >= BATCH:
                _flush(triage, pending, out, TriageInput)
        _flush(triage, pending, out, TriageInput)
    finally:
        if stream is not sys.stdin:
            stream.close()
    return 0


def _flush(triage: Any, pending: list[dict[str, Any]], out: IO[str], make: Any) -> None:
    if not pending:
        return
    results = triage.classify_many(
        [make(text=r["text"], author=("input", "author")) for r in pending]
    )
    for record, result in zip(pending, results, strict=True):
        record["decision"] = result.verdict.value
        record["reason"] = result.reason
        out.write(orjson.dumps(record).decode() + "\n")
    pending.clear()
