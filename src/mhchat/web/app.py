"""The aiohttp application owns the process: it builds the runtime and the adapters, mounts
their webhooks and the routes, and hands start-up and shutdown to ``Lifecycle``."""

from __future__ import annotations

from collections.abc import Callable

import aiohttp
import structlog
from aiohttp import web

from mhchat.adapters import (
    AdapterContext,
    ChatInfo,
    WebhookCapable,
    load_factories,
)
from mhchat.bus import BusSink, EventBus
from mhchat.clock import Clock, SystemClock
from mhchat.config import Settings
from mhchat.errors import ConfigError
from mhchat.events import PlatformName
from mhchat.runtime import AdapterSlot, Component, DbState, Runtime
from mhchat.spool import Spool, SpoolPort
from mhchat.store.db import Database
from mhchat.web import health
from mhchat.web.keys import RUNTIME
from mhchat.web.lifecycle import Lifecycle

log = structlog.get_logger("mhchat.app")

AppHook = Callable[[web.Application, Runtime], None]
"""Called while building the app: add handlers, components, routes (e.g. the dashboard)."""

_hooks: list[AppHook] = []


def register_app_hook(hook: AppHook) -> AppHook:
    _hooks.append(hook)
    return hook


class _LazyState:
    """Adapter state bound to the database once it is open."""

    def __init__(self, runtime: Runtime, platform: str) -> None:
        self._runtime = runtime
        self._platform = platform

    def _state(self) -> DbState:
        return DbState(
            self._runtime.require_db(),
            self._runtime.settings.chat.chat_id,
            self._platform,
            self._runtime.clock,
        )

    async def get(self, key: str) -> str | None:
        return await self._state().get(key)

    async def set(self, key: str, value: str) -> None:
        await self._state().set(key, value)


async def build_app(
    settings: Settings,
    *,
    clock: Clock | None = None,
    http: aiohttp.ClientSession | None = None,
    hooks: list[AppHook] | None = None,
    shared_database: Callable[[], Database] | None = None,
) -> web.Application:
    """Build the application and construct the configured adapters."""
    clock = clock or SystemClock()
    runtime = Runtime(settings=settings, clock=clock, started_at=clock.now())
    runtime.modes.update(settings.modes)
    app = web.Application(client_max_size=settings.web.max_body_bytes)
    app[RUNTIME] = runtime
    if settings.bus.backend == "nats":
        from mhchat.bus_nats import JetStreamBus  # noqa: PLC0415 - optional extra

        runtime.bus = JetStreamBus(settings.bus, settings.chat.chat_id)
    else:
        runtime.bus = EventBus(settings.bus.capacity)
    session = http or aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60))
    owns_session = http is None

    runtime.spool = Spool(
        settings.database.spool_path,
        capacity=settings.database.spool_capacity,
        max_wait=settings.database.spool_max_wait_seconds,
    )
    factories = load_factories([a.name for a in settings.enabled_adapters])
    for adapter_settings in settings.enabled_adapters:
        name = adapter_settings.name
        slot = AdapterSlot(name=name)
        runtime.slots[name] = slot
        factory = factories.factories.get(name)
        if factory is None:
            slot.problem = factories.problems.get(name, "not loaded")
            log.error("adapter_not_loaded", platform=name, problem=slot.problem)
            continue
        ctx = AdapterContext(
            platform=PlatformName(name),
            chat=ChatInfo(chat_id=settings.chat.chat_id, hashtag=settings.chat.hashtag),
            sink=BusSink(runtime.bus, PlatformName(name)),
            http=session,
            clock=clock,
            log=structlog.get_logger(f"mhchat.adapter.{name}").bind(platform=name),
            state=_LazyState(runtime, name),
            settings=adapter_settings.options,
            secrets=adapter_settings.secrets,
            spool=SpoolPort(runtime.spool, f"{settings.chat.chat_id}:{name}"),
        )
        try:
            slot.adapter = factory(ctx)
        except ConfigError as exc:
            slot.problem = "; ".join(exc.problems)
            log.error("adapter_config_invalid", platform=name, problem=slot.problem)
        except Exception as exc:  # noqa: BLE001 - one broken adapter must not stop the rest
            slot.problem = f"failed to start: {type(exc).__name__}: {exc}"
            log.error("adapter_construction_failed", platform=name, error_type=type(exc).__name__)
    for name, slot in runtime.slots.items():
        if slot.adapter is not None and isinstance(slot.adapter, WebhookCapable):
            app.add_subapp(f"/webhooks/{name}", slot.adapter.webhook_app())

    health.add_routes(app)
    for hook in [*_hooks, *(hooks or [])]:
        hook(app, runtime)

    Lifecycle(
        runtime, session=session, owns_session=owns_session, shared_database=shared_database
    ).install(app)
    return app


def add_component(runtime: Runtime, name: str, component: Component) -> None:
    runtime.components.append((name, component))
