"""The whole service: the core application plus the facilitation engine.

``build_service`` is what ``mhchat serve`` and ``mhchat demo`` run; ``build_app`` alone is the
bare core (used by tests of the core).
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable, Sequence

from aiohttp import web

import mhchat.facilitation.settings
import mhchat.web.dashboard.settings  # noqa: F401 - registers the [dashboard] check
from mhchat.adapters import Capability
from mhchat.chats import build_deployment, has_many_chats, parse_chats
from mhchat.clock import Clock
from mhchat.config import Settings
from mhchat.facilitation.handler import FacilitationHandler
from mhchat.facilitation.scheduler import Scheduler
from mhchat.facilitation.settings import facilitation_settings
from mhchat.runtime import Runtime
from mhchat.store.db import Database
from mhchat.web.app import AppHook, add_component, build_app


def install_facilitation(app: web.Application, runtime: Runtime) -> None:
    """Decide on every stored batch; run the session scheduler as a background duty."""
    fac = facilitation_settings(runtime.settings)
    cannot_repost = frozenset(
        name
        for name, slot in runtime.slots.items()
        if slot.adapter is not None and Capability.REPOST not in type(slot.adapter).capabilities
    )
    handler = FacilitationHandler(fac, modes=runtime.modes, cannot_repost=cannot_repost)
    runtime.handlers.append(handler)

    async def load_triage_model(_app: web.Application) -> None:
        # The abuse model takes seconds to import. Loaded lazily, it was imported inside the
        # first ingest batch, holding the event loop: the first webhooks after a start timed
        # out (503). Start-up runs before the port opens, and the import runs in a thread.
        await asyncio.to_thread(lambda: handler.triage.model)

    app.on_startup.append(load_triage_model)

    async def scheduler(rt: Runtime) -> None:
        platforms = [name for name, slot in rt.slots.items() if slot.adapter is not None]
        await Scheduler(
            db=rt.require_db(),
            clock=rt.clock,
            settings=fac,
            modes=rt.modes,
            platforms=platforms,
            on_decided=rt.poke_senders,
        ).run()

    add_component(runtime, "scheduler", scheduler)


def freeze_heap_after_start(app: web.Application) -> None:
    """For a service process: once started, move every object alive then out of the GC's way.

    The abuse model, the lexicon and the libraries are hundreds of thousands of long-lived
    objects; every full collection walked them all, a pause of 50 to 250 ms measured under
    load. ``gc.freeze`` leaves them out of later collections. Only for a process that runs
    one service (``mhchat serve``): a process that builds many would keep their garbage.
    """

    async def freeze(_app: web.Application) -> None:
        gc.collect()
        gc.freeze()

    app.on_startup.append(freeze)


def service_hooks() -> list[AppHook]:
    """Every part of the service beyond the core, in the order they are installed."""
    from mhchat.web.dashboard import install_dashboard  # noqa: PLC0415 - imports aiohttp-session

    hooks: list[AppHook] = [install_facilitation, install_dashboard]
    return hooks


async def build_service(
    settings: Settings,
    *,
    clock: Clock | None = None,
    extra_hooks: Sequence[AppHook] = (),
    shared_database: Callable[[], Database] | None = None,
) -> web.Application:
    if has_many_chats(settings.raw):
        # [[chats]]: one runtime per chat in this process (mhchat.chats).
        chats = parse_chats(settings.raw, settings.secrets, source=settings.source)
        return await build_deployment(chats, clock=clock, extra_hooks=extra_hooks)
    return await build_app(
        settings,
        clock=clock,
        hooks=[*service_hooks(), *extra_hooks],
        shared_database=shared_database,
    )
