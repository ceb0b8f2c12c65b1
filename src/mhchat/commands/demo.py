"""``mhchat demo``: run a whole chat locally against emulated platforms."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

DESCRIPTION = """\
Run a whole #MHChat session on this machine, with no platform accounts: local emulators of X,
Bluesky and a Facebook page, simulated participants, and the real service and adapters.
The chat is compressed in time (--speed), progress is shown as it runs, and it ends with a
summary table and the session's transcript in Markdown, HTML, JSON and CSV (in --out)."""


def add_parser(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "demo",
        help="run a whole chat locally: emulated platforms and simulated participants",
        description=DESCRIPTION,
    )
    parser.add_argument(
        "--speed",
        type=float,
        default=60.0,
        help="how many times faster than real time the chat runs (default 60: a minute a second)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("var/demo"),
        help="folder for the database, configuration and transcripts (default var/demo)",
    )
    parser.add_argument("--no-browser", action="store_true", help="do not open the dashboard")
    parser.add_argument("--seed", type=int, default=7, help="seed of the simulated session")
    parser.add_argument(
        "--participants",
        type=int,
        default=36,
        help="number of simulated participants over the three platforms (at least 15)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mhchat.demo.script import MIN_PARTICIPANTS  # noqa: PLC0415 - keep --help fast

    if args.speed <= 0:
        print("mhchat demo: --speed must be a positive number.", file=sys.stderr)  # noqa: T201
        return 2
    if args.participants < MIN_PARTICIPANTS:
        print(  # noqa: T201
            f"mhchat demo: --participants must be at least {MIN_PARTICIPANTS}.", file=sys.stderr
        )
        return 2
    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        print(f"mhchat demo: --out {args.out} is a file; give a folder.", file=sys.stderr)  # noqa: T201
        return 2
    except OSError as exc:
        print(  # noqa: T201
            f"mhchat demo: the folder {args.out} cannot be made: {exc.strerror}.", file=sys.stderr
        )
        return 2
    from mhchat.demo.runner import DemoOptions, run_demo  # noqa: PLC0415 - loads the service

    options = DemoOptions(
        speed=args.speed,
        out=args.out,
        browser=not args.no_browser,
        seed=args.seed,
        participants=args.participants,
    )
    result = asyncio.run(run_demo(options))
    return 1 if result.skipped_steps else 0
