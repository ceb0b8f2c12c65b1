"""Server processes for the webhook benchmark: ``python -m bench.serve service|bare PORT [DB]``.

``service`` runs the real service (``build_service``: core, facilitation, the Facebook adapter
with its signed-webhook endpoint) as ``mhchat serve`` does, logging configured the same way.
``bare`` is the floor: an aiohttp handler that reads the body and answers 200.
"""

from __future__ import annotations

import os
import sys

from aiohttp import web

import bench  # noqa: F401 - puts the adapters on the import path
from bench.payloads import APP_SECRET, PAGE_ID


def service_settings(port: int, db: str) -> object:
    from mhchat.config import parse_settings  # noqa: PLC0415

    doc = {
        "chat": {"hashtag": "MHChat"},
        "database": {"url": f"sqlite:///{db}"},
        "web": {"host": "127.0.0.1", "port": port},
        # Decisions are made and written to the ledger; nothing is sent to a platform.
        "modes": {"welcome": "dry_run", "repost": "dry_run", "undo_repost": "dry_run"},
        "adapters": {
            # Graph calls (token check, backfill) go to a closed local port and fail fast.
            "facebook": {"page_id": PAGE_ID, "graph_url": "http://127.0.0.1:9"},
        },
    }
    env = {
        "MHCHAT_FACEBOOK_APP_SECRET": APP_SECRET,
        "MHCHAT_FACEBOOK_VERIFY_TOKEN": "bench-verify",
        "MHCHAT_FACEBOOK_PAGE_ACCESS_TOKEN": "bench-token",
    }
    return parse_settings(doc, env)


def main() -> int:
    kind, port = sys.argv[1], int(sys.argv[2])
    if kind == "bare":

        async def ok(request: web.Request) -> web.Response:
            await request.read()
            return web.Response(text="EVENT_RECEIVED")

        app = web.Application()
        app.router.add_post("/webhooks/facebook", ok)
        app.router.add_get("/healthz", lambda _r: ok_get())
        web.run_app(app, host="127.0.0.1", port=port, print=None)
        return 0

    from mhchat.config import Settings  # noqa: PLC0415
    from mhchat.logs import configure_logging  # noqa: PLC0415
    from mhchat.service import build_service, freeze_heap_after_start  # noqa: PLC0415

    settings = service_settings(port, sys.argv[3])
    assert isinstance(settings, Settings)
    configure_logging(level=settings.logging.level, json=settings.logging.json)

    async def service() -> web.Application:
        # As `mhchat serve` does.
        app = await build_service(settings)
        freeze_heap_after_start(app)
        return app

    web.run_app(service(), host="127.0.0.1", port=port, print=None)
    return 0


async def ok_get() -> web.Response:
    return web.Response(text="ok")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    raise SystemExit(main())
