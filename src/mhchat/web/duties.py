"""Singleton duties held under leases when several processes share one database."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import structlog

from mhchat.adapters import Adapter
from mhchat.leases import DutyBody, Fence, LeaseManager, LeaseStore
from mhchat.runtime import Component, Runtime
from mhchat.sender import Sender, recover
from mhchat.store.db import Database

log = structlog.get_logger("mhchat.app")


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
