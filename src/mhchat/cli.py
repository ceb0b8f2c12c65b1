"""The ``mhchat`` command line."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import importlib.util
import os
import sys
from collections.abc import Sequence

from mhchat import __version__
from mhchat.config import Settings, load_settings, shown_url
from mhchat.errors import ConfigError, MigrationError

COMMAND_MODULES: tuple[str, ...] = (
    "questions",
    "triage",
    "demo",
    "replay",
    "transcript",
    "db",
)
"""Modules under ``mhchat.commands`` that add subcommands."""


def add_config_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-c",
        "--config",
        default=os.environ.get("MHCHAT_CONFIG"),
        help="TOML configuration file (default: $MHCHAT_CONFIG, else the embedded defaults)",
    )


def settings_or_exit(path: str | None) -> Settings:
    """Load settings, or print each problem in plain words and exit with status 2."""
    import mhchat.service  # noqa: F401, PLC0415 - registers every section's checks

    try:
        return load_settings(path)
    except ConfigError as exc:
        print_problems(exc.problems, path)
        raise SystemExit(2) from None


def print_problems(problems: Sequence[str], path: str | None) -> None:
    where = path or "the embedded defaults"
    print(f"mhchat cannot use the configuration in {where}:", file=sys.stderr)
    for problem in problems:
        print(f"  - {problem}", file=sys.stderr)


def _serve(args: argparse.Namespace) -> int:
    from aiohttp import web  # noqa: PLC0415 - keep `mhchat --help` fast

    from mhchat.logs import configure_logging  # noqa: PLC0415
    from mhchat.service import build_service, freeze_heap_after_start  # noqa: PLC0415

    settings = settings_or_exit(args.config)
    configure_logging(
        level=settings.logging.level,
        json=settings.logging.json,
        secrets=settings.secrets.values(),
        allow_text=settings.logging.include_post_text,
    )
    host = args.host or settings.web.host
    port = settings.web.port if args.port is None else args.port

    async def service() -> web.Application:
        app = await build_service(settings)
        freeze_heap_after_start(app)
        return app

    web.run_app(
        service(),
        host=host,
        port=port,
        print=None,
        shutdown_timeout=settings.bus.shutdown_deadline_seconds,
    )
    return 0


def _migrate(args: argparse.Namespace) -> int:
    from mhchat.store.migrate import migrate  # noqa: PLC0415
    from mhchat.store.open import open_database  # noqa: PLC0415

    settings = settings_or_exit(args.config)

    async def run() -> int:
        db = await open_database(settings.database)
        try:
            report = await migrate(db)
        finally:
            await db.close()
        if report.applied:
            applied = ", ".join(f"{v:04d}" for v in report.applied)
            print(f"Applied migrations {applied}; schema is at version {report.current}.")
        else:
            print(f"Nothing to do; schema is at version {report.current}.")
        return 0

    try:
        return asyncio.run(run())
    except MigrationError as exc:
        print(f"mhchat cannot migrate the database: {exc}", file=sys.stderr)
        return 1


def _check_config(args: argparse.Namespace) -> int:
    import mhchat.service  # noqa: F401, PLC0415 - registers every section's checks
    from mhchat.adapters import load_factories  # noqa: PLC0415
    from mhchat.config import section_warnings  # noqa: PLC0415

    settings = settings_or_exit(args.config)
    problems: list[str] = []
    loaded = load_factories([a.name for a in settings.enabled_adapters])
    problems.extend(f"[adapters.{n}] {p}" for n, p in loaded.problems.items())
    if problems:
        print_problems(problems, args.config)
        return 2
    print(f"Configuration in {settings.source} is valid.")
    print(f"  chat: {settings.chat.chat_id} (#{settings.chat.hashtag})")
    print(f"  database: {shown_url(settings.database.url)}")
    enabled = ", ".join(a.name for a in settings.enabled_adapters) or "none"
    print(f"  platforms enabled: {enabled}")
    for adapter in settings.enabled_adapters:
        names = ", ".join(sorted(adapter.secrets)) or "none"
        print(f"    {adapter.name}: secrets found in the environment: {names}")
    warnings = section_warnings(settings)
    if warnings:
        print("Warnings (mhchat still starts; please see to them):")
        for warning in warnings:
            print(f"  - {warning}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mhchat",
        description=(
            "Run the #MHChat peer-support chat across X, Bluesky and a Facebook page:"
            " scheduled questions, fair reposts, welcomes and safety triage."
        ),
    )
    parser.add_argument("--version", action="version", version=f"mhchat {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    serve = sub.add_parser("serve", help="run the service (webhooks, dashboard, adapters)")
    add_config_argument(serve)
    serve.add_argument("--host", help="address to listen on (default: [web] host)")
    serve.add_argument("--port", type=int, help="port to listen on (default: [web] port)")
    serve.set_defaults(func=_serve)

    mig = sub.add_parser("migrate", help="bring the database schema up to date")
    add_config_argument(mig)
    mig.set_defaults(func=_migrate)

    check = sub.add_parser("check-config", help="explain every problem in the configuration")
    add_config_argument(check)
    check.set_defaults(func=_check_config)

    for name in COMMAND_MODULES:
        # A command whose optional module is not part of this build is simply not offered.
        if importlib.util.find_spec(f"mhchat.commands.{name}") is None:
            continue
        module = importlib.import_module(f"mhchat.commands.{name}")
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130
