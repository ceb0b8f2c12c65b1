"""``python -m mhchat.emulators.bluesky``: a standalone local Bluesky for a demo or a benchmark."""

from __future__ import annotations

import argparse
import asyncio
import contextlib

import orjson

from mhchat.emulators.bluesky.emulator import BlueskyEmulator


async def _serve(host: str, port: int, handles: list[str]) -> None:
    emulator = BlueskyEmulator()
    base_url = await emulator.start(host, port)
    accounts = [
        {"handle": h, "did": emulator.create_account(h), "password": f"{h}-pw"} for h in handles
    ]
    info = {"base_url": base_url, "jetstream_url": emulator.jetstream_url, "accounts": accounts}
    print(orjson.dumps(info).decode(), flush=True)  # noqa: T201 - the runner's only output
    try:
        await asyncio.Event().wait()
    finally:
        await emulator.stop()


def main(argv: list[str] | None = None) -> None:
    """``python -m mhchat.emulators.bluesky``: serve until interrupted, print one JSON line."""
    parser = argparse.ArgumentParser(description="Serve a local Bluesky (XRPC + Jetstream).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--accounts", default="mhchathost.test,alice.test,bob.test")
    args = parser.parse_args(argv)
    handles = [h.strip() for h in args.accounts.split(",") if h.strip()]
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args.host, args.port, handles))
