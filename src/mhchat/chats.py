"""Many chats in one deployment.

A chat is configuration: a ``[[chats]]`` table with its ``id`` and ``hashtag`` and, when it
differs from the shared settings, its own ``[chats.adapters...]`` (accounts), ``[chats.schedule]``,
``[chats.questions]``, ``[chats.reposts]`` / ``[chats.welcomes]`` (budgets), ``[chats.safety]``
and ``[chats.modes]``. Everything else (database, bus, web, leases, logging) is shared.

Each chat runs as its own runtime inside the one process: its own bus (or its own JetStream
consumer), ingest worker, adapters, senders, scheduler, kill switch and leases, over the one
database in which every row carries its ``chat_id``. A chat's adapter failing, its budget running
out or its kill switch being pulled touches no other chat. Its routes live under
``/chats/<id>/`` (webhooks, ``readyz``, dashboard); ``/readyz`` at the root sums them up.

Secrets per chat come from ``MHCHAT_CHAT_<ID>_<PLATFORM>_<NAME>`` (the chat id upper-cased,
``-`` as ``_``) and take precedence over the shared ``MHCHAT_<PLATFORM>_<NAME>``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson
import structlog
from aiohttp import web

from mhchat.clock import Clock
from mhchat.config import SECRET_PREFIX, Settings, parse_settings
from mhchat.errors import ConfigError
from mhchat.store.db import Database
from mhchat.store.migrate import migrate
from mhchat.store.open import open_database
from mhchat.textfiles import read_config_text
from mhchat.web.keys import RUNTIME

log = structlog.get_logger("mhchat.chats")

CHAT_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
PER_CHAT = frozenset(
    {"adapters", "schedule", "questions", "reposts", "welcomes", "safety", "modes", "dashboard"}
)
"""Sections a ``[[chats]]`` table may set for itself; the rest are the deployment's."""

CHATS_KEY = web.AppKey("mhchat_chats", dict)


def has_many_chats(doc: Mapping[str, Any]) -> bool:
    return "chats" in doc


def chat_env(env: Mapping[str, str], chat_id: str) -> dict[str, str]:
    """The environment as one chat sees it: its own secrets over the shared ones."""
    prefix = f"{SECRET_PREFIX}CHAT_{chat_id.upper().replace('-', '_')}_"
    own = {
        SECRET_PREFIX + k.removeprefix(prefix): v for k, v in env.items() if k.startswith(prefix)
    }
    shared = {k: v for k, v in env.items() if not k.startswith(f"{SECRET_PREFIX}CHAT_")}
    return {**shared, **own}


def chat_documents(doc: Mapping[str, Any]) -> tuple[list[dict[str, Any]], list[str]]:
    """One settings document per ``[[chats]]`` table, and the problems found."""
    tables = doc.get("chats")
    problems: list[str] = []
    if not isinstance(tables, list) or not tables:
        return [], ["[[chats]] must be one or more tables, each with an id and a hashtag."]
    base = {k: v for k, v in doc.items() if k not in ("chats", "chat")}
    seen: set[str] = set()
    found: list[dict[str, Any]] = []
    for number, table in enumerate(tables, start=1):
        where = f"[[chats]] number {number}"
        if not isinstance(table, Mapping):
            problems.append(f"{where} must be a table with an id and a hashtag.")
            continue
        chat_id = table.get("id")
        if not isinstance(chat_id, str) or not CHAT_ID.match(chat_id):
            problems.append(
                f"{where}: id must be lower-case letters, digits, - or _ (up to 40), such as"
                f' "mhchat-uk" (got {chat_id!r}).'
            )
            continue
        if chat_id in seen:
            problems.append(f"{where}: the id {chat_id!r} is used by another chat.")
            continue
        seen.add(chat_id)
        unknown = sorted(set(table) - PER_CHAT - {"id", "hashtag"})
        problems.extend(
            f"[[chats]] {chat_id}: {name!r} is shared by every chat; set it at the top level."
            for name in unknown
        )
        merged = dict(base)
        merged["chat"] = {"id": chat_id, "hashtag": table.get("hashtag", "")}
        for section in PER_CHAT & set(table):
            merged[section] = table[section]
        found.append(merged)
    return found, problems


def parse_chats(
    doc: Mapping[str, Any], env: Mapping[str, str], *, source: str = "<embedded defaults>"
) -> list[Settings]:
    """Settings for every chat of a deployment (one when there is no ``[[chats]]``)."""
    if not has_many_chats(doc):
        return [parse_settings(doc, env, source=source)]
    documents, problems = chat_documents(doc)
    chats: list[Settings] = []
    for chat_doc in documents:
        chat_id = chat_doc["chat"]["id"]
        try:
            chats.append(parse_settings(chat_doc, chat_env(env, chat_id), source=source))
        except ConfigError as exc:
            problems.extend(f"[[chats]] {chat_id}: {p}" for p in exc.problems)
    if problems:
        raise ConfigError(problems)
    return chats


def chat_problems(
    doc: Mapping[str, Any], env: Mapping[str, str], *, source: str = "<embedded defaults>"
) -> list[str]:
    """Every problem of the ``[[chats]]`` tables, as plain sentences (for check-config)."""
    try:
        parse_chats(doc, env, source=source)
    except ConfigError as exc:
        return list(exc.problems)
    return []


def load_chats(path: str | Path, env: Mapping[str, str]) -> list[Settings]:
    import tomllib  # noqa: PLC0415

    file = Path(path)
    text = read_config_text(file, "The configuration file")
    return parse_chats(tomllib.loads(text), env, source=str(file))


async def build_deployment(
    chats: Sequence[Settings], *, clock: Clock | None = None, extra_hooks: Sequence[Any] = ()
) -> web.Application:
    """One process, several chats: a root app sharing the database, one sub-app per chat."""
    from mhchat.service import build_service  # noqa: PLC0415 - avoids an import cycle
    from mhchat.web.health import readyz as chat_readyz  # noqa: PLC0415

    shared = chats[0]
    root = web.Application(client_max_size=shared.web.max_body_bytes)
    holder: dict[str, Database] = {}

    async def open_shared(_app: web.Application) -> None:
        db = await open_database(shared.database)
        report = await migrate(db)
        log.info("schema_ready", version=report.current, chats=len(chats))
        holder["db"] = db

    async def close_shared(_app: web.Application) -> None:
        db = holder.pop("db", None)
        if db is not None:
            await db.close()

    # The chats' sub-apps start after this handler and stop before the one added at the end.
    root.on_startup.append(open_shared)

    def database() -> Database:
        return holder["db"]

    apps: dict[str, web.Application] = {}
    for settings in chats:
        app = await build_service(
            settings, clock=clock, extra_hooks=extra_hooks, shared_database=database
        )
        apps[settings.chat.chat_id] = app
        root.add_subapp(f"/chats/{settings.chat.chat_id}/", app)
    root[CHATS_KEY] = apps
    root.on_cleanup.append(close_shared)

    async def healthz(_request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "chats": sorted(apps)})

    async def readyz(request: web.Request) -> web.Response:
        """Every chat's readiness; ready when all are (one chat down shows which)."""
        body: dict[str, Any] = {}
        ready = True
        for chat_id, app in apps.items():
            response = await chat_readyz(_ChatRequest(app))  # type: ignore[arg-type]
            body[chat_id] = orjson.loads(response.text or "{}")
            ready = ready and response.status == 200
        return web.json_response({"ready": ready, "chats": body}, status=200 if ready else 503)

    root.router.add_get("/healthz", healthz)
    root.router.add_get("/readyz", readyz)
    return root


class _ChatRequest:
    """Just enough of a request for a chat's readiness handler: its app."""

    def __init__(self, app: web.Application) -> None:
        self.app = app


def runtimes(root: web.Application) -> dict[str, Any]:
    """Each chat's runtime, by chat id (tests and the dashboard's overview)."""
    return {chat_id: app[RUNTIME] for chat_id, app in root[CHATS_KEY].items()}
