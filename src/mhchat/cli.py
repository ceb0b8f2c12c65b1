"""The ``mhchat`` command line."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import importlib
import importlib.util
import os
import sys
from collections.abc import Sequence

from mhchat import __version__
from mhchat.config import Settings, load_settings, shown_url
from mhchat.errors import ConfigError, DatabaseUnavailable, MigrationError

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


def settings_or_exit(path: str | None, *, serving: bool = False) -> Settings:
    """Load settings, or print each problem in plain words and exit with status 2.

    ``serving``: the command runs the service, or checks the configuration for it, so what
    only the running service needs (the dashboard's sign-in) is checked too."""
    import mhchat.service  # noqa: F401, PLC0415 - registers every section's checks

    try:
        return load_settings(path, serving=serving)
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

    settings = settings_or_exit(args.config, serving=True)
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

    try:
        web.run_app(
            service(),
            host=host,
            port=port,
            print=None,
            shutdown_timeout=settings.bus.shutdown_deadline_seconds,
        )
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise
        print(
            f"mhchat cannot serve: port {port} on {host} is in use; stop what listens there"
            " or choose another with --port or [web] port.",
            file=sys.stderr,
        )
        return 1
    except DatabaseUnavailable as exc:
        print(f"mhchat cannot start: {exc}", file=sys.stderr)
        return 1
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
    except (MigrationError, DatabaseUnavailable) as exc:
        print(f"mhchat cannot migrate the database: {exc}", file=sys.stderr)
        return 1


class _NoState:
    """Adapter state for check-config: adapters are built there, never started."""

    async def get(self, key: str) -> str | None:
        return None

    async def set(self, key: str, value: str) -> None:
        return None


def _own_words(name: str, problem: str) -> str:
    """An adapter's problem without its own name in front ("x: ...", "facebook.page_id ...",
    "[adapters.bluesky] ..."): check-config puts ``[adapters.<name>]`` there already."""
    for prefix in (f"[adapters.{name}] ", f"{name}: ", f"{name}."):
        if problem.startswith(prefix):
            return problem.removeprefix(prefix)
    return problem


async def _adapter_problems(chats: Sequence[Settings], *, named: bool) -> list[str]:
    """Build every enabled adapter of every chat as ``build_app`` does, without starting it.

    Each adapter checks its own settings and secrets when it is built; only doing the same here
    makes check-config refuse what ``serve`` would run without.
    """
    import aiohttp  # noqa: PLC0415 - keep `mhchat --help` fast
    import structlog  # noqa: PLC0415

    from mhchat.adapters import AdapterContext, ChatInfo, load_factories  # noqa: PLC0415
    from mhchat.bus import BusSink, EventBus  # noqa: PLC0415
    from mhchat.clock import SystemClock  # noqa: PLC0415
    from mhchat.events import PlatformName  # noqa: PLC0415

    problems: list[str] = []
    async with aiohttp.ClientSession() as http:
        for chat in chats:
            which = f"[[chats]] {chat.chat.chat_id}: " if named else ""
            loaded = load_factories([a.name for a in chat.enabled_adapters])
            problems.extend(f"{which}[adapters.{n}] {p}" for n, p in loaded.problems.items())
            for adapter_settings in chat.enabled_adapters:
                name = adapter_settings.name
                factory = loaded.factories.get(name)
                if factory is None:
                    continue
                platform = PlatformName(name)
                ctx = AdapterContext(
                    platform=platform,
                    chat=ChatInfo(chat_id=chat.chat.chat_id, hashtag=chat.chat.hashtag),
                    sink=BusSink(EventBus(1), platform),
                    http=http,
                    clock=SystemClock(),
                    log=structlog.get_logger(f"mhchat.adapter.{name}").bind(platform=name),
                    state=_NoState(),
                    settings=adapter_settings.options,
                    secrets=adapter_settings.secrets,
                )
                where = f"{which}[adapters.{name}]"
                try:
                    adapter = factory(ctx)
                except ConfigError as exc:
                    problems.extend(f"{where} {_own_words(name, p)}" for p in exc.problems)
                    continue
                except Exception as exc:  # noqa: BLE001 - report it as serve would, then go on
                    problems.append(f"{where} cannot be built: {type(exc).__name__}: {exc}")
                    continue
                with contextlib.suppress(Exception):
                    await adapter.stop()  # releases clients made at construction
    return problems


def _check_config(args: argparse.Namespace) -> int:
    import mhchat.service  # noqa: F401, PLC0415 - registers every section's checks
    from mhchat.chats import has_many_chats, parse_chats  # noqa: PLC0415
    from mhchat.config import section_warnings  # noqa: PLC0415

    settings = settings_or_exit(args.config, serving=True)
    many = has_many_chats(settings.raw)
    # With [[chats]] every chat runs its own adapters, as build_service does.
    chats = (
        parse_chats(settings.raw, settings.secrets, source=settings.source) if many else [settings]
    )
    problems = asyncio.run(_adapter_problems(chats, named=many))
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
