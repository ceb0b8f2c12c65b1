"""/healthz (the process answers), /readyz (database and adapters), /metrics (Prometheus)."""

from __future__ import annotations

from aiohttp import web

from mhchat.events import HealthStatus
from mhchat.leases import LeaseManager, utc_now
from mhchat.web.keys import RUNTIME


async def healthz(_request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    adapters = {}
    for name, slot in runtime.slots.items():
        health = slot.health()
        adapters[name] = {"status": health.status.value, "detail": health.detail}
    db_ok = False
    if runtime.db is not None:
        try:
            async with runtime.db.read() as tx:
                await tx.fetchone("SELECT 1")
            db_ok = True
        except Exception:  # noqa: BLE001 - readiness reports, it does not raise
            db_ok = False
    bus = runtime.bus
    ready = runtime.ready and db_ok and bus is not None and not bus.closed
    body: dict[str, object] = {
        "ready": ready,
        "database": "ok" if db_ok else "down",
        "bus": {
            "depth": bus.depth if bus else 0,
            "capacity": bus.capacity if bus else 0,
            "refused": bus.stats.refused if bus else 0,
        },
        "spool": {
            "waiting": runtime.spool.depth() if runtime.spool else 0,
            "capacity": runtime.spool.capacity if runtime.spool else 0,
            "refused": runtime.spool.refused if runtime.spool else 0,
        },
        "ingest": {
            "refused": runtime.worker.stats.refused_events if runtime.worker else 0,
            "handler_errors": runtime.worker.stats.handler_errors if runtime.worker else 0,
        },
        "adapters": adapters,
        "kill_switch": bool(runtime.controls and runtime.controls.killed),
    }
    if runtime.leases is not None and db_ok:
        body["leadership"] = await leadership(runtime.leases, runtime.settings.chat.chat_id)
    return web.json_response(body, status=200 if ready else 503)


async def leadership(manager: LeaseManager, chat_id: str) -> dict[str, object]:
    """Who leads what: this process's id, the duties it holds, and every duty's holder."""
    try:
        rows = await manager.store.rows(prefix=f"{chat_id}/")
    except Exception:  # noqa: BLE001 - readiness reports, it does not raise
        rows = []
    now = utc_now()
    return {
        "instance": manager.holder,
        "leads": sorted(manager.held()),
        "duties": {
            row.name: {
                "holder": row.holder if row.expires_at > now else None,
                "token": row.token,
                "since": row.acquired_at.isoformat(),
                "expires_at": row.expires_at.isoformat(),
                "mine": row.holder == manager.holder and row.expires_at > now,
            }
            for row in rows
        },
    }


async def metrics(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    lines: list[str] = []

    def gauge(name: str, value: float, labels: str = "") -> None:
        lines.append(f"mhchat_{name}{{{labels}}} {value}" if labels else f"mhchat_{name} {value}")

    if runtime.bus is not None:
        gauge("bus_depth", runtime.bus.depth)
        gauge("bus_capacity", runtime.bus.capacity)
        gauge("bus_refused_total", runtime.bus.stats.refused)
    if runtime.worker is not None:
        stats = runtime.worker.stats
        gauge("ingest_events_total", stats.events)
        gauge("ingest_stored_total", stats.stored)
        gauge("ingest_duplicates_total", stats.duplicates)
        gauge("ingest_handler_errors_total", stats.handler_errors)
        gauge("ingest_store_errors_total", stats.store_errors)
        gauge("ingest_refused_events_total", stats.refused_events)
    if runtime.spool is not None:
        gauge("spool_waiting", runtime.spool.depth())
        gauge("spool_capacity", runtime.spool.capacity)
        gauge("spool_written_total", runtime.spool.written)
        gauge("spool_flushes_total", runtime.spool.flushes)
        gauge("spool_refused_total", runtime.spool.refused)
        gauge("spool_write_failures_total", runtime.spool.write_failures)
    for name, slot in runtime.slots.items():
        health = slot.health()
        gauge("adapter_up", 1 if health.status is HealthStatus.OK else 0, f'platform="{name}"')
        if slot.sender is not None:
            s = slot.sender.stats
            for state, value in (
                ("sent", s.sent),
                ("skipped", s.skipped),
                ("failed", s.failed),
                ("unknown", s.unknown),
                ("expired", s.expired),
            ):
                gauge("actions_total", value, f'platform="{name}",state="{state}"')
    gauge("kill_switch", 1 if runtime.controls and runtime.controls.killed else 0)
    return web.Response(text="\n".join(lines) + "\n", content_type="text/plain")


def add_routes(app: web.Application) -> None:
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
