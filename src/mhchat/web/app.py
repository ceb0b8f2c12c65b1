"""The aiohttp application owns the process.

Start-up order (cleanup contexts): http session -> database (migrate, recover) -> ingest worker
-> adapters -> senders -> components (scheduler...). Shutdown runs in reverse: duties stop,
senders stop, adapters stop taking events, the bus drains within a deadline, the database closes.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import aiohttp
import structlog
from aiohttp import web

from mhchat.adapters import (
    Adapter,
    AdapterContext,
    ChatInfo,
    WebhookCapable,
    load_factories,
)
from mhchat.bus import BusSink, EventBus
from mhchat.clock import Clock, SystemClock
from mhchat.config import Settings
from mhchat.controls import Controls
from mhchat.errors import ConfigError
from mhchat.events import PlatformName
from mhchat.ingest import IngestWorker
from mhchat.leases import DutyBody, Fence, LeaseManager, LeaseStore
from mhchat.runtime import AdapterSlot, Component, DbState, Runtime
from mhchat.sender import Sender, recover
from mhchat.store.chats import ensure_chat
from mhchat.store.db import Database
from mhchat.store.migrate import migrate
from mhchat.store.open import open_database
from mhchat.web import health
from mhchat.web.keys import RUNTIME

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


def spawn(runtime: Runtime, name: str, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
    """Start a named, tracked task whose failure is logged, never lost."""
    task = asyncio.create_task(coro, name=name)
    runtime.tasks[name] = task

    def done(t: asyncio.Task[None]) -> None:
        runtime.tasks.pop(name, None)
        if not t.cancelled() and t.exception() is not None:
            runtime.errors.append(f"{name}: {type(t.exception()).__name__}")
            log.error("task_failed", task=name, exc_info=t.exception())

    task.add_done_callback(done)
    return task


async def _cancel(runtime: Runtime, prefix: str) -> None:
    tasks = [t for n, t in list(runtime.tasks.items()) if n.startswith(prefix)]
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task


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
    leased = settings.leases_on
    session = http or aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60))
    owns_session = http is None

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

    async def http_ctx(_app: web.Application) -> AsyncIterator[None]:
        yield
        if owns_session:
            await session.close()

    async def database_ctx(_app: web.Application) -> AsyncIterator[None]:
        # Several chats in one process share one database, opened and migrated once.
        db = shared_database() if shared_database else await open_database(settings.database)
        runtime.db = db
        try:
            if shared_database is None:
                report = await migrate(db)
                log.info("schema_ready", version=report.current, applied=list(report.applied))
            runtime.controls = Controls(db, settings.chat.chat_id, runtime.modes)
            await runtime.controls.load()
            await ensure_chat(db, settings.chat.chat_id, settings.chat.hashtag, clock.now())
            if leased:
                # Several processes: each platform is recovered by whoever takes its lease,
                # never here, where another instance may be sending right now.
                runtime.leases = await lease_manager(runtime, db)
            else:
                unknown = await recover(db, clock, chat_id=settings.chat.chat_id)
                if unknown:
                    log.warning("actions_with_unknown_outcome", count=len(unknown))
            yield
        finally:
            if shared_database is None:
                await db.close()
            runtime.db = None

    async def ingest_ctx(_app: web.Application) -> AsyncIterator[None]:
        assert runtime.bus is not None
        bus = runtime.bus
        connect = getattr(bus, "connect", None)
        if connect is not None:
            await connect()
        worker = IngestWorker(
            bus=runtime.bus,
            db=runtime.require_db(),
            clock=clock,
            chat_id=settings.chat.chat_id,
            handlers=runtime.handlers,
            observers=[*runtime.observers, lambda _b: runtime.poke_senders()],
            max_batch=settings.bus.max_batch,
            keep_raw=settings.database.keep_raw,
        )
        runtime.worker = worker
        if runtime.leases is not None and connect is not None:
            # A shared durable stream: one consumer per chat at a time, under a lease.
            async def ingest_duty(_fence: Fence) -> None:
                await worker.run()

            runtime.leases.add(duty_name(runtime, "ingest"), ingest_duty)
        else:
            _ = spawn(runtime, "ingest", worker.run())
        yield
        bus.close()
        try:
            async with asyncio.timeout(settings.bus.shutdown_deadline_seconds):
                await bus.join()
        except TimeoutError:
            log.warning("shutdown_deadline_passed", left_in_queue=bus.depth)
        await _cancel(runtime, "ingest")
        aclose = getattr(bus, "aclose", None)
        if aclose is not None:
            await aclose()

    async def adapters_ctx(_app: web.Application) -> AsyncIterator[None]:
        if runtime.leases is not None:
            # Each platform's sending belongs to its lease holder, and so does its intake when
            # that is a stream or polling (one consumer); webhook intake runs on every
            # instance, behind any load balancer.
            for name in runtime.slots:
                runtime.leases.add(
                    duty_name(runtime, f"platform.{name}"), platform_duty(runtime, name)
                )
        for name, slot in runtime.slots.items():
            if slot.adapter is None:
                continue
            if runtime.leases is not None and not isinstance(slot.adapter, WebhookCapable):
                continue
            try:
                await slot.adapter.start()
                slot.started = True
                log.info("adapter_started", platform=name)
            except Exception as exc:  # noqa: BLE001 - isolate a crashing adapter
                slot.problem = f"failed to start: {type(exc).__name__}"
                log.error("adapter_start_failed", platform=name, error_type=type(exc).__name__)
        yield
        for name, slot in runtime.slots.items():
            if slot.adapter is None or not slot.started:
                continue
            try:
                await slot.adapter.stop()
            except Exception as exc:  # noqa: BLE001 - keep stopping the others
                log.error("adapter_stop_failed", platform=name, error_type=type(exc).__name__)

    async def senders_ctx(_app: web.Application) -> AsyncIterator[None]:
        assert runtime.controls is not None
        if runtime.leases is not None:
            yield
            return
        for name, slot in runtime.slots.items():
            if slot.adapter is None or not slot.started:
                continue
            slot.sender = Sender(
                platform=name,
                adapter=slot.adapter,
                db=runtime.require_db(),
                clock=clock,
                controls=runtime.controls,
                min_interval=settings.sender.min_interval_seconds,
                poll_seconds=settings.sender.poll_seconds,
                chat_id=settings.chat.chat_id,
            )
            _ = spawn(runtime, f"sender.{name}", slot.sender.resume())
        yield
        await _cancel(runtime, "sender.")

    async def components_ctx(_app: web.Application) -> AsyncIterator[None]:
        manager = runtime.leases
        for name, component in runtime.components:
            if manager is not None:
                manager.add(
                    duty_name(runtime, f"component.{name}"), component_duty(runtime, component)
                )
            else:
                _ = spawn(runtime, f"component.{name}", component_duty(runtime, component)(None))
        if manager is not None:
            _ = spawn(runtime, "leases", manager.run())
        runtime.ready = True
        yield
        runtime.ready = False
        if manager is not None:
            # Hand every lease back first, so a standby takes over at once.
            await _cancel(runtime, "leases")
            await manager.stop()
        await _cancel(runtime, "component.")

    app.cleanup_ctx.extend(
        [http_ctx, database_ctx, ingest_ctx, adapters_ctx, senders_ctx, components_ctx]
    )
    return app


def duty_name(runtime: Runtime, what: str) -> str:
    return f"{runtime.settings.chat.chat_id}/{what}"


async def lease_manager(runtime: Runtime, db: Database) -> LeaseManager:
    store = LeaseStore(db)
    await store.ensure()
    leases = runtime.settings.leases
    return LeaseManager(store, ttl=leases.timeout_seconds, interval=leases.renew_seconds)


def platform_duty(runtime: Runtime, name: str) -> DutyBody:
    """While held: the platform's adapter runs (stream intake) and its sender sends."""

    async def body(fence: Fence) -> None:
        slot = runtime.slots[name]
        adapter = slot.adapter
        if adapter is None:
            await asyncio.Event().wait()  # nothing to run; keep the lease quiet
            return
        settings = runtime.settings
        db = runtime.require_db()
        assert runtime.controls is not None
        # A webhook adapter runs on every instance already; a stream adapter only here.
        owns_adapter = not slot.started
        if owns_adapter:
            await adapter.start()
            slot.started = True
            log.info("adapter_started", platform=name, term=fence.token)
        try:
            unknown = await recover(
                db, runtime.clock, chat_id=settings.chat.chat_id, platform=name
            )
            sender = Sender(
                platform=name,
                adapter=adapter,
                db=db,
                clock=runtime.clock,
                controls=runtime.controls,
                min_interval=settings.sender.min_interval_seconds,
                poll_seconds=settings.sender.poll_seconds,
                chat_id=settings.chat.chat_id,
                fence=fence,
            )
            slot.sender = sender
            # Left unknown by the previous holder: ask the platform; what it cannot confirm
            # stays unknown for a facilitator, never sent again blindly.
            for row in unknown:
                await sender.check_unknown(row)
            if unknown:
                log.warning("actions_with_unknown_outcome", platform=name, count=len(unknown))
            await sender.run()
        finally:
            slot.sender = None
            if owns_adapter:
                slot.started = False
                await _stop_quietly(adapter, name)

    return body


async def _stop_quietly(adapter: Adapter, name: str) -> None:
    try:
        await adapter.stop()
    except Exception as exc:  # noqa: BLE001 - the lease is handed back regardless
        log.error("adapter_stop_failed", platform=name, error_type=type(exc).__name__)


def component_duty(
    runtime: Runtime, component: Component
) -> Callable[[Fence | None], Coroutine[Any, Any, None]]:
    async def body(_fence: Fence | None) -> None:
        await component(runtime)

    return body


def add_component(runtime: Runtime, name: str, component: Component) -> None:
    runtime.components.append((name, component))
