"""Small helpers shared by the real-network tests."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import structlog
from atproto import client_utils, models  # type: ignore[import-untyped]

from mhchat.adapters import AdapterContext, ChatInfo
from mhchat.clock import SystemClock
from mhchat.events import PlatformName, Post, PostDeleted
from mhchat.testing import RecordingSink

RECORDED_JETSTREAM = "jetstream-derived.jsonl"
BLUESKY = PlatformName("bluesky")

T = TypeVar("T")


def payloads_dir() -> Path:
    """The recorded payloads: the repository's copy, else shared/ beside the checkout."""
    here = Path(__file__).resolve()
    for folder in (
        here.parents[1] / "bluesky" / "payloads",
        here.parents[4] / "shared" / "payloads" / "bluesky",
    ):
        if (folder / RECORDED_JETSTREAM).is_file():
            return folder
    raise FileNotFoundError(f"{RECORDED_JETSTREAM} not found in the repository or shared/")


def recorded_jetstream() -> list[dict[str, Any]]:
    lines = (payloads_dir() / RECORDED_JETSTREAM).read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def rkey(uri: str) -> str:
    return uri.rsplit("/", 1)[-1]


def tagged(prefix: str, tag: str = "MHChat", suffix: str = "") -> Any:
    """Text with a real tag facet, built by the SDK's TextBuilder."""
    builder = client_utils.TextBuilder().text(prefix).tag(f"#{tag}", tag)
    if suffix:
        builder.text(suffix)
    return builder


def strong_ref(uri: str, cid: str) -> Any:
    return models.ComAtprotoRepoStrongRef.Main(uri=uri, cid=cid)


def reply_ref(root: Any, parent: Any) -> Any:
    return models.AppBskyFeedPost.ReplyRef(root=root, parent=parent)


async def get_record(pds_url: str, uri: str) -> dict[str, Any]:
    """The stored record as the PDS returns it (plain JSON, no SDK models)."""
    _, _, rest = uri.partition("at://")
    repo, collection, key = rest.split("/")
    async with (
        aiohttp.ClientSession() as http,
        http.get(
            f"{pds_url}/xrpc/com.atproto.repo.getRecord",
            params={"repo": repo, "collection": collection, "rkey": key},
        ) as resp,
    ):
        body: dict[str, Any] = await resp.json()
        assert resp.status == 200, body
        return body


def indexed_chain(thread: Any, length: int) -> bool:
    """Whether a getPostThread answer shows ``length`` posts up the parent chain (a parent the
    appview has not indexed yet comes back as a NotFoundPost, which has no ``post``)."""
    for _ in range(length):
        if thread is None or not hasattr(thread, "post"):
            return False
        thread = getattr(thread, "parent", None)
    return True


async def eventually(
    probe: Callable[[], Awaitable[T | None]], *, within: float = 20.0, every: float = 0.1
) -> T:
    """Call ``probe`` until it returns something other than None/False (appview indexing)."""
    async with asyncio.timeout(within):
        while True:
            value = await probe()
            if value:
                return value
            await asyncio.sleep(every)


def adapter_context(
    *,
    pds_url: str,
    jetstream_url: str,
    handle: str,
    app_password: str,
    sink: RecordingSink,
    http: aiohttp.ClientSession,
    **settings: Any,
) -> AdapterContext:
    """An AdapterContext as the core builds one (cf. mhchat.testing.make_context)."""
    base: dict[str, Any] = {
        "handle": handle,
        "service_url": pds_url,
        "source": "jetstream",
        "jetstream_url": jetstream_url,
        # Short waits so reconnects happen within a test's time.
        "reconnect_initial_seconds": 0.05,
        "reconnect_max_seconds": 0.5,
        "batch_linger_seconds": 0.01,
        "checkpoint_interval_seconds": 0.5,
    }
    base.update(settings)
    return AdapterContext(
        platform=BLUESKY,
        chat=ChatInfo(chat_id="default", hashtag="MHChat"),
        sink=sink,
        http=http,
        clock=SystemClock(),
        log=structlog.get_logger("bluesky-network-test").bind(platform=BLUESKY),
        state=sink.state,
        settings=base,
        secrets={"APP_PASSWORD": app_password},
    )


def posts_with(sink: RecordingSink, uri: str) -> list[Post]:
    return [p for p in sink.posts() if p.remote_id == uri]


def deleted(sink: RecordingSink) -> list[PostDeleted]:
    return [e for e in sink.events if isinstance(e, PostDeleted)]
