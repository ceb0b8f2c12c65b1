"""The service's start-up and shutdown, as aiohttp cleanup contexts in dependency order.

http session -> database (migrate, recover) -> ingest worker -> adapters -> senders ->
components (scheduler...). Shutdown runs in reverse: duties stop, senders stop, adapters stop
taking events, the bus drains within a deadline, the database closes.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import aiohttp
import structlog
from aiohttp import web

from mhchat.adapters import WebhookCapable
from mhchat.clock import Clock
from mhchat.config import Settings
from mhchat.controls import Controls
from mhchat.ingest import IngestWorker
from mhchat.leases import Fence
from mhchat.runtime import Runtime
from mhchat.sender import Sender, recover
from mhchat.store.chats import ensure_chat
from mhchat.store.db import Database
from mhchat.store.migrate import migrate
from mhchat.store.open import open_database
from mhchat.web.duties import component_duty, duty_name, lease_manager, platform_duty
from mhchat.web.tasks import cancel_tasks, spawn

log = structlog.get_logger("mhchat.app")


class Lifecycle:
    """Owns the order in which the service's parts start and stop."""

    def __init__(
        self,
        runtime: Runtime,
        *,
        session: aiohttp.ClientSession,
        owns_session: bool,
        shared_database: Callable[[], Database] | None,
    ) -> None:
        self.runtime = runtime
        self.settings: Settings = runtime.settings
        self.clock: Clock = runtime.clock
        self.session = session
        self.owns_session = owns_session
        self.shared_database = shared_database

    def install(self, app: web.Application) -> None:
        app.cleanup_ctx.extend(
            [
                self.http_ctx,
                self.database_ctx,
                self.spool_ctx,
                self.ingest_ctx,
                self.adapters_ctx,
                self.senders_ctx,
                self.components_ctx,
            ]
        )

    async def http_ctx(self, _app: web.Application) -> AsyncIterator[None]:
        yield
        if self.owns_session:
            await self.session.close()

    async def database_ctx(self, _app: web.Application) -> AsyncIterator[None]:
        # Several chats in one process share one database, opened and migrated once.
        db = (
            self.shared_database()
            if self.shared_database
            else await open_database(self.settings.database)
        )
        self.runtime.db = db
        try:
            if self.shared_database is None:
                report = await migrate(db)
                log.info("schema_ready", version=report.current, applied=list(report.applied))
            self.runtime.controls = Controls(db, self.settings.chat.chat_id, self.runtime.modes)
            await self.runtime.controls.load()
            await ensure_chat(
                db, self.settings.chat.chat_id, self.settings.chat.hashtag, self.clock.now()
            )
            if self.settings.leases_on:
                # Several processes: each platform is recovered by whoever takes its lease,
                # never here, where another instance may be sending right now.
                self.runtime.leases = await lease_manager(self.runtime, db)
            else:
                unknown = await recover(db, self.clock, chat_id=self.settings.chat.chat_id)
                if unknown:
                    log.warning("actions_with_unknown_outcome", count=len(unknown))
            yield
        finally:
            if self.shared_database is None:
                await db.close()
            self.runtime.db = None

    async def spool_ctx(self, _app: web.Application) -> AsyncIterator[None]:
        spool = self.runtime.spool
        pushed = any(
            isinstance(slot.adapter, WebhookCapable) for slot in self.runtime.slots.values()
        )
        if spool is None or not pushed:
            yield
            return
        await spool.open()
        if spool.depth():
            # Deliveries answered 200 before a stop or crash and not yet stored: the adapters'
            # spool readers take them first.
            log.info("spool_recovered", waiting=spool.depth())
        try:
            yield
        finally:
            await spool.close()

    async def ingest_ctx(self, _app: web.Application) -> AsyncIterator[None]:
        assert self.runtime.bus is not None
        bus = self.runtime.bus
        connect = getattr(bus, "connect", None)
        if connect is not None:
            await connect()
        worker = IngestWorker(
            bus=self.runtime.bus,
            db=self.runtime.require_db(),
            clock=self.clock,
            chat_id=self.settings.chat.chat_id,
            handlers=self.runtime.handlers,
            observers=[*self.runtime.observers, lambda _b: self.runtime.poke_senders()],
            max_batch=self.settings.bus.max_batch,
            keep_raw=self.settings.database.keep_raw,
        )
        self.runtime.worker = worker
        if self.runtime.leases is not None and connect is not None:
            # A shared durable stream: one consumer per chat at a time, under a lease.
            async def ingest_duty(_fence: Fence) -> None:
                await worker.run()

            self.runtime.leases.add(duty_name(self.runtime, "ingest"), ingest_duty)
        else:
            _ = spawn(self.runtime, "ingest", worker.run())
        yield
        bus.close()
        try:
            async with asyncio.timeout(self.settings.bus.shutdown_deadline_seconds):
                await bus.join()
        except TimeoutError:
            log.warning("shutdown_deadline_passed", left_in_queue=bus.depth)
        await cancel_tasks(self.runtime, "ingest")
        aclose = getattr(bus, "aclose", None)
        if aclose is not None:
            await aclose()

    async def adapters_ctx(self, _app: web.Application) -> AsyncIterator[None]:
        if self.runtime.leases is not None:
            # Each platform's sending belongs to its lease holder, and so does its intake when
            # that is a stream or polling (one consumer); webhook intake runs on every
            # instance, behind any load balancer.
            for name in self.runtime.slots:
                self.runtime.leases.add(
                    duty_name(self.runtime, f"platform.{name}"), platform_duty(self.runtime, name)
                )
        for name, slot in self.runtime.slots.items():
            if slot.adapter is None:
                continue
            if self.runtime.leases is not None and not isinstance(slot.adapter, WebhookCapable):
                continue
            try:
                await slot.adapter.start()
                slot.started = True
                log.info("adapter_started", platform=name)
            except Exception as exc:  # noqa: BLE001 - isolate a crashing adapter
                slot.problem = f"failed to start: {type(exc).__name__}"
                log.error("adapter_start_failed", platform=name, error_type=type(exc).__name__)
        yield
        for name, slot in self.runtime.slots.items():
            if slot.adapter is None or not slot.started:
                continue
            try:
                await slot.adapter.stop()
            except Exception as exc:  # noqa: BLE001 - keep stopping the others
                log.error("adapter_stop_failed", platform=name, error_type=type(exc).__name__)

    async def senders_ctx(self, _app: web.Application) -> AsyncIterator[None]:
        assert self.runtime.controls is not None
        if self.runtime.leases is not None:
            yield
            return
        for name, slot in self.runtime.slots.items():
            if slot.adapter is None or not slot.started:
                continue
            slot.sender = Sender(
                platform=name,
                adapter=slot.adapter,
                db=self.runtime.require_db(),
                clock=self.clock,
                controls=self.runtime.controls,
                min_interval=self.settings.sender.min_interval_seconds,
                poll_seconds=self.settings.sender.poll_seconds,
                chat_id=self.settings.chat.chat_id,
            )
            _ = spawn(self.runtime, f"sender.{name}", slot.sender.resume())
        yield
        await cancel_tasks(self.runtime, "sender.")

    async def components_ctx(self, _app: web.Application) -> AsyncIterator[None]:
        manager = self.runtime.leases
        for name, component in self.runtime.components:
            if manager is not None:
                manager.add(
                    duty_name(self.runtime, f"component.{name}"),
                    component_duty(self.runtime, component),
                )
            else:
                _ = spawn(
                    self.runtime,
                    f"component.{name}",
                    component_duty(self.runtime, component)(None),
                )
        if manager is not None:
            _ = spawn(self.runtime, "leases", manager.run())
        self.runtime.ready = True
        yield
        self.runtime.ready = False
        if manager is not None:
            # Hand every lease back first, so a standby takes over at once.
            await cancel_tasks(self.runtime, "leases")
            await manager.stop()
        await cancel_tasks(self.runtime, "component.")
