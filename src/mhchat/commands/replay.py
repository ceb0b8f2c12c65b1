"""``mhchat replay FILE...``: import recorded platform payloads (archives) into the store."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from mhchat.errors import DatabaseUnavailable


def add_parser(subparsers: Any) -> None:
    from mhchat.cli import add_config_argument  # noqa: PLC0415

    parser: argparse.ArgumentParser = subparsers.add_parser(
        "replay",
        help="import recorded platform payloads (X pages and stream lines, Jetstream, webhooks)",
    )
    add_config_argument(parser)
    parser.add_argument("files", nargs="+", metavar="FILE")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mhchat.replay import main  # noqa: PLC0415 - keep --help fast

    try:
        return main(args)
    except DatabaseUnavailable as exc:
        sys.stderr.write(f"mhchat cannot replay into the database: {exc}\n")
        return 1
