"""Live intake from Jetstream: JSON commits over a websocket, cursor in unix microseconds.

The whole network's post rate is far above one chat's, so each frame first meets a cheap
substring test (the tag, the host's DID, a delete) and only the few that pass are parsed. The
position (``time_us``) is checkpointed with the events it covers, and at least every
``checkpoint_interval_seconds`` even when nothing passes, so a restart does not replay hours.
Reconnects resume a few seconds early (the overlap) with capped exponential backoff and jitter.
"""

from __future__ import annotations

import re
import secrets
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime

import aiohttp
import orjson
import structlog

from mhchat.clock import Clock

from .config import BlueskyConfig
from .intake import Intake, Item
from .mapping import POST, REPOST, Commit, is_relevant

_TIME_US = re.compile(r'"time_us"\s*:\s*(\d+)')
_OPERATIONS = frozenset({"create", "update", "delete"})


def backoff_delay(attempt: int, initial: float, cap: float) -> float:
    """Capped exponential backoff with jitter: uniform in [d/2, d] for d = initial * 2^attempt."""
    delay = min(cap, initial * float(2 ** min(attempt, 30)))
    return delay / 2 + float(secrets.SystemRandom().uniform(0, delay / 2))


def micros_to_time(value: int) -> datetime:
    return datetime.fromtimestamp(value / 1_000_000, tz=UTC)


class FrameParser:
    """Pre-filter and parse one Jetstream frame into an intake item (or nothing)."""

    def __init__(
        self,
        *,
        tag: str,
        host_did: Callable[[], str | None],
        authors: Callable[[], set[str]],
        note_author: Callable[[str], None],
        counters: Counter[str],
    ) -> None:
        self.tag = tag
        self._tag_lower = tag.lower()
        self.host_did = host_did
        self._authors = authors
        self._note_author = note_author
        self._counters = counters

    def wanted(self, frame: str) -> bool:
        """The cheap test every frame meets. ``lower()`` then ``in`` measured about five times
        faster than a case-insensitive regex, and three times faster than parsing the JSON."""
        host = self.host_did()
        if (host and host in frame) or '"delete"' in frame:
            return True
        return self._tag_lower in frame.lower()

    def parse(  # noqa: PLR0911 - each early return is one way a frame can be unusable
        self, frame: str
    ) -> tuple[int | None, Item | None]:
        """(time_us, item to publish) of a frame that passed ``wanted``."""
        try:
            data = orjson.loads(frame)
            time_us = int(data["time_us"])
            did = str(data["did"])
            seen_at = micros_to_time(time_us)
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, OverflowError, OSError):
            self._counters["malformed_frames"] += 1
            return None, None
        if data.get("kind") != "commit":
            return time_us, None
        commit = data.get("commit")
        operation = commit.get("operation") if isinstance(commit, dict) else None
        if (
            not isinstance(commit, dict)
            or not isinstance(operation, str)
            or (operation not in _OPERATIONS)
        ):
            self._counters["malformed_frames"] += 1
            return time_us, None
        collection, rkey = commit.get("collection"), commit.get("rkey")
        record = commit.get("record")
        if not isinstance(collection, str) or not isinstance(rkey, str) or not rkey:
            self._counters["malformed_frames"] += 1
            return time_us, None
        if commit["operation"] != "delete" and not isinstance(record, dict):
            self._counters["malformed_frames"] += 1
            return time_us, None
        if not self.concerns_chat(did, collection, commit["operation"], record):
            return time_us, None
        cid = commit.get("cid")
        parsed = Commit(
            did=did,
            collection=collection,
            rkey=rkey,
            operation=commit["operation"],
            record=record if isinstance(record, dict) else None,
            cid=cid if isinstance(cid, str) else None,
            cursor=str(time_us),
            time=seen_at,
        )
        return time_us, Item(commit=parsed, cursor=str(time_us))

    def concerns_chat(self, did: str, collection: str, operation: str, record: object) -> bool:
        host = self.host_did()
        if operation == "delete":
            return collection == POST and (did == host or did in self._authors())
        if not isinstance(record, dict):
            return False
        if collection == POST:
            if is_relevant(record, did, self.tag, host):
                # Known at once, so a delete right behind the post is not filtered out.
                self._note_author(did)
                return True
            return False
        if collection == REPOST and operation == "create" and host:
            subject = record.get("subject")
            uri = subject.get("uri") if isinstance(subject, dict) else None
            return isinstance(uri, str) and uri.startswith(f"at://{host}/")
        return False


class JetstreamSource:
    """Connects, reads, reconnects; hands relevant commits and cursors to the intake."""

    def __init__(
        self,
        *,
        config: BlueskyConfig,
        http: aiohttp.ClientSession,
        clock: Clock,
        intake: Intake,
        parser: FrameParser,
        counters: Counter[str],
        log: structlog.typing.FilteringBoundLogger,
    ) -> None:
        self._config = config
        self._http = http
        self._clock = clock
        self._intake = intake
        self._parser = parser
        self._counters = counters
        self._log = log
        self.connected = False
        self.down_since: datetime | None = None
        self.last_time_us: int | None = None

    def _params(self) -> list[tuple[str, str]]:
        params = [("wantedCollections", POST), ("wantedCollections", REPOST)]
        if self.last_time_us is not None:
            overlap = int(self._config.cursor_overlap_seconds * 1_000_000)
            params.append(("cursor", str(max(1, self.last_time_us - overlap))))
        return params

    async def run(self, cursor: int | None) -> None:
        """Read forever (until cancelled), starting at ``cursor`` less the overlap."""
        self.last_time_us = cursor
        attempt = 0
        self.down_since = self._clock.now()
        while True:
            try:
                delivered = await self._session()
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                delivered = False
                self._log.info("bluesky.jetstream_error", error=type(exc).__name__)
            except Exception as exc:  # noqa: BLE001 - a surprise must not end intake for good
                delivered = False
                self._counters["stream_errors"] += 1
                self._log.error("bluesky.jetstream_failed", error=type(exc).__name__)
            if self.connected or self.down_since is None:
                self.down_since = self._clock.now()
            self.connected = False
            self._counters["reconnects"] += 1
            attempt = 0 if delivered else attempt + 1
            await self._clock.sleep(
                backoff_delay(
                    attempt,
                    self._config.reconnect_initial_seconds,
                    self._config.reconnect_max_seconds,
                )
            )

    async def _session(self) -> bool:
        """One connection; returns whether it delivered anything."""
        delivered = False
        interval = self._config.checkpoint_interval_seconds
        last_checkpoint = time.monotonic()
        last_frame: str | None = None
        async with self._http.ws_connect(
            self._config.jetstream_url,
            params=self._params(),
            heartbeat=30.0,
            max_msg_size=8 * 1024 * 1024,
        ) as ws:
            self.connected = True
            self.down_since = None
            self._log.info("bluesky.jetstream_connected", resumed=self.last_time_us is not None)
            while True:
                msg = await ws.receive(timeout=self._config.idle_timeout_seconds)
                if msg.type is aiohttp.WSMsgType.BINARY:
                    self._counters["malformed_frames"] += 1
                    continue
                if msg.type is not aiohttp.WSMsgType.TEXT:
                    return delivered
                delivered = True
                frame: str = msg.data
                self._counters["frames"] += 1
                if self._parser.wanted(frame):
                    time_us, item = self._parser.parse(frame)
                    if item is not None:
                        self._counters["matched"] += 1
                        await self._intake.put(item)
                        last_checkpoint = time.monotonic()
                    if time_us is not None:
                        # Never rewind on an odd frame: only a later time moves the position.
                        self.last_time_us = max(time_us, self.last_time_us or 0)
                        last_frame = None
                else:
                    last_frame = frame  # its time is read only when a checkpoint is due
                if time.monotonic() - last_checkpoint >= interval:
                    seen = self._time_of(last_frame)
                    if seen is not None:
                        self.last_time_us = max(seen, self.last_time_us or 0)
                    if self.last_time_us is not None:
                        await self._intake.put(Item(cursor=str(self.last_time_us)))
                    last_checkpoint, last_frame = time.monotonic(), None

    @staticmethod
    def _time_of(frame: str | None) -> int | None:
        found = _TIME_US.search(frame or "")
        return int(found.group(1)) if found else None
