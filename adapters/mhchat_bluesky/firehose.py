"""Live intake from the repo firehose (com.atproto.sync.subscribeRepos) of a relay or a PDS.

Frames are DAG-CBOR with the commit's blocks as a CAR file, decoded by the SDK. The cursor is
the event sequence number. As with Jetstream, a cheap byte test (the tag, the host's DID) runs
before the CAR is decoded, and the position is checkpointed with the events it covers and at
least every ``checkpoint_interval_seconds``.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from datetime import datetime
from typing import Any

import orjson
import structlog
from atproto_core.car import CAR  # type: ignore[import-untyped]
from atproto_firehose import (  # type: ignore[import-untyped]
    AsyncFirehoseSubscribeReposClient,
    parse_subscribe_repos_message,
)

from mhchat.clock import Clock

from .config import BlueskyConfig
from .intake import Intake, Item
from .jetstream import FrameParser, backoff_delay
from .mapping import POST, REPOST, Commit, parse_time

_WATCHED = (POST, REPOST)


class FirehoseSource:
    def __init__(
        self,
        *,
        config: BlueskyConfig,
        clock: Clock,
        intake: Intake,
        parser: FrameParser,
        counters: Counter[str],
        log: structlog.typing.FilteringBoundLogger,
    ) -> None:
        self._config = config
        self._clock = clock
        self._intake = intake
        self._parser = parser
        self._counters = counters
        self._log = log
        self._tag = re.compile(re.escape(parser.tag.encode()), re.IGNORECASE)
        self._client: Any = None
        self.connected = False
        self.down_since: datetime | None = None
        self.last_seq: int | None = None
        self._last_checkpoint = time.monotonic()

    async def run(self, cursor: int | None) -> None:
        self.last_seq = cursor
        self.down_since = self._clock.now()
        attempt = 0
        while True:
            params = {"cursor": self.last_seq} if self.last_seq is not None else None
            self._client = AsyncFirehoseSubscribeReposClient(
                params,
                base_uri=self._config.firehose_url,
                recv_timeout=self._config.idle_timeout_seconds,
            )
            before = self.last_seq
            try:
                await self._client.start(self._on_message, self._on_callback_error)
            except Exception as exc:  # noqa: BLE001 - the SDK wraps any transport failure
                self._log.info("bluesky.firehose_error", error=type(exc).__name__)
            finally:
                await self._client.stop()
            self._mark_down()
            self._counters["reconnects"] += 1
            attempt = 0 if self.last_seq != before else attempt + 1
            await self._clock.sleep(
                backoff_delay(
                    attempt,
                    self._config.reconnect_initial_seconds,
                    self._config.reconnect_max_seconds,
                )
            )

    def _mark_down(self) -> None:
        self.connected = False
        if self.down_since is None:
            self.down_since = self._clock.now()

    async def _on_callback_error(self, exc: BaseException) -> None:
        self._counters["malformed_frames"] += 1
        self._log.info("bluesky.firehose_frame_skipped", error=type(exc).__name__)

    async def _on_message(self, message: Any) -> None:
        self.connected, self.down_since = True, None
        self._counters["frames"] += 1
        event = parse_subscribe_repos_message(message)
        seq = getattr(event, "seq", None)
        if not isinstance(seq, int):
            return
        self.last_seq = seq
        # Keep the SDK's own reconnects from rewinding to the first cursor.
        self._client.update_params({"cursor": seq})
        for commit in self._commits(event, seq):
            self._counters["matched"] += 1
            await self._intake.put(Item(commit=commit, cursor=str(seq)))
            self._last_checkpoint = time.monotonic()
        interval = self._config.checkpoint_interval_seconds
        if time.monotonic() - self._last_checkpoint >= interval:
            await self._intake.put(Item(cursor=str(seq)))
            self._last_checkpoint = time.monotonic()

    def _commits(self, event: Any, seq: int) -> list[Commit]:
        ops = getattr(event, "ops", None)
        blocks = getattr(event, "blocks", None)
        if not ops or not isinstance(blocks, bytes):
            return []
        watched = [op for op in ops if str(op.path).split("/", 1)[0] in _WATCHED]
        if not watched:
            return []
        did = str(event.repo)
        host = self._parser.host_did()
        creates = any(op.action != "delete" for op in watched)
        if creates and not (self._tag.search(blocks) or (host and host.encode() in blocks)):
            watched = [op for op in watched if op.action == "delete"]
        if not watched:
            return []
        records: dict[Any, Any] = CAR.from_bytes(blocks).blocks if creates else {}
        when = parse_time(event.time, self._clock.now())
        out = []
        for op in watched:
            collection, _, rkey = str(op.path).partition("/")
            record = records.get(op.cid) if op.cid is not None else None
            if op.action != "delete" and not isinstance(record, dict):
                self._counters["malformed_frames"] += 1
                continue
            if record is not None:
                # CID links (blobs) are objects; make the record plain JSON.
                record = orjson.loads(orjson.dumps(record, default=str))
            if not self._parser.concerns_chat(did, collection, str(op.action), record):
                continue
            out.append(
                Commit(
                    did=did,
                    collection=collection,
                    rkey=rkey,
                    operation=str(op.action),
                    record=record,
                    cid=str(op.cid) if op.cid is not None else None,
                    cursor=str(seq),
                    time=when,
                )
            )
        return out
