"""The NATS JetStream bus: the same ``Bus`` as the in-process queue, durable and shared.

Adapters (on any instance) publish each event to ``<prefix>.<chat>.<platform>`` and get the
stream's acknowledgement before ``publish`` returns, so an event is durable before a webhook
answers 200. The message id is the platform's post id for a new post (a content hash for other
events): JetStream drops a second publish of the same id inside its duplicate window, and the
store's UNIQUE key drops it after that.

One durable pull consumer per chat feeds that chat's ingest worker (a leased duty, so one
instance at a time). Each message is acknowledged only after the batch holding it is committed;
a failed store hands the messages back (``nak``) and they are delivered again, as are messages
a killed instance had pulled, once ``ack_wait`` has passed. ``max_ack_pending`` bounds what is
handed out and not yet acknowledged; the stream's ``max_msgs`` (work-queue retention, so
acknowledged events leave it) bounds the backlog, and past it publishing is refused: the
adapters are held back, never silently dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from dataclasses import dataclass

import nats
import nats.errors
import nats.js.errors
import structlog
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    DiscardPolicy,
    PubAck,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)

from mhchat.adapters import Checkpoint
from mhchat.bus import BusClosed, BusFull, BusStats, Envelope
from mhchat.config import BusSettings
from mhchat.event_codec import EventDecodeError, decode_event, encode_event, message_id
from mhchat.events import Event, PlatformName

log = structlog.get_logger("mhchat.bus.nats")

_TOKEN = re.compile(r"^[A-Za-z0-9_-]+$")
KIND = "Mhchat-Kind"
CHECKPOINT_KEY = "Mhchat-Checkpoint-Key"


class _StreamFull(Exception):
    pass


@dataclass(slots=True)
class _MsgSettle:
    msg: Msg

    async def ack(self) -> None:
        await self.msg.ack()

    async def nak(self, delay: float) -> None:
        await self.msg.nak(delay=delay)


def subject_token(value: str, what: str) -> str:
    if not _TOKEN.match(value):
        raise ValueError(f"{what} {value!r} must be letters, digits, _ or - to name a subject")
    return value


class JetStreamBus:
    """One chat's events on a JetStream stream, consumed by one durable pull consumer."""

    def __init__(self, settings: BusSettings, chat_id: str) -> None:
        self.settings = settings
        self.chat_id = subject_token(chat_id, "chat id")
        self.capacity = settings.capacity
        self.stats = BusStats()
        self._closed = False
        self._full = False
        self._pending = 0
        self._inflight: set[asyncio.Task[None]] = set()
        self._nc: NatsClient | None = None
        self._js: JetStreamContext | None = None
        self._sub: JetStreamContext.PullSubscription | None = None
        self.durable = f"ingest_{self.chat_id}"

    # ------------------------------------------------------------------ lifecycle

    async def connect(self) -> None:
        self._nc = await nats.connect(
            self.settings.nats_url,
            name=f"mhchat-{self.chat_id}",
            connect_timeout=5,
            reconnect_time_wait=0.5,
            max_reconnect_attempts=-1,
        )
        self._js = self._nc.jetstream(timeout=10)
        await ensure_stream(self._js, self.settings)

    async def aclose(self) -> None:
        await self.join()
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()
            self._sub = None
        if self._nc is not None:
            with contextlib.suppress(Exception):
                await self._nc.close()
            self._nc = None

    @property
    def js(self) -> JetStreamContext:
        if self._js is None:
            raise RuntimeError("the JetStream bus is not connected")
        return self._js

    # ------------------------------------------------------------------ Bus

    @property
    def depth(self) -> int:
        return self._pending

    @property
    def full(self) -> bool:
        return self._full

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        self._closed = True

    def subject(self, platform: str) -> str:
        return (
            f"{self.settings.subject_prefix}.{self.chat_id}.{subject_token(platform, 'platform')}"
        )

    async def put(self, envelope: Envelope, timeout: float | None = None) -> None:
        if self._closed:
            raise BusClosed("mhchat is shutting down")
        started = time.monotonic()
        delay = 0.05
        while True:
            try:
                await self._publish(envelope)
                break
            except _StreamFull:
                self._full = True
                self.stats.waited += 1
                if timeout is not None and time.monotonic() - started + delay > timeout:
                    self.stats.refused += 1
                    raise BusFull("the event stream stayed full") from None
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)
        self._full = False
        self.stats.enqueued += 1
        if envelope.stored is not None and not envelope.stored.done():
            envelope.stored.set_result(None)

    def put_nowait(self, envelope: Envelope) -> bool:
        if self._closed or len(self._inflight) >= self.capacity or self._full:
            self.stats.refused += 1
            return False
        task = asyncio.create_task(self._publish_settling(envelope), name="bus.publish")
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)
        return True

    async def _publish_settling(self, envelope: Envelope) -> None:
        try:
            await self.put(envelope, timeout=0)
        except Exception as exc:  # noqa: BLE001 - handed to whoever waits on the envelope
            if envelope.stored is not None and not envelope.stored.done():
                envelope.stored.set_exception(exc)

    async def _publish(self, envelope: Envelope) -> None:
        subject = self.subject(envelope.platform)
        try:
            # Pipelined on one connection (the server keeps their order); each returns only
            # once the stream has stored the message.
            acks = await asyncio.gather(
                *[self._publish_event(subject, event) for event in envelope.events]
            )
            if envelope.checkpoint is not None:
                cp = envelope.checkpoint
                # Only after its events are in the stream: the cursor never runs ahead of them.
                headers = {
                    KIND: "checkpoint",
                    CHECKPOINT_KEY: cp.key,
                    "Nats-Msg-Id": f"{self.chat_id}:cp:{envelope.platform}:{cp.key}:{cp.value}",
                }
                await self.js.publish(subject, cp.value.encode(), headers=headers)
        except nats.js.errors.APIError as exc:
            if _is_full(exc):
                raise _StreamFull from exc
            raise
        dupes = sum(1 for a in acks if a.duplicate)
        if dupes:
            self.stats.extra["duplicates"] = self.stats.extra.get("duplicates", 0) + dupes

    async def _publish_event(self, subject: str, event: Event) -> PubAck:
        payload = encode_event(event)
        headers = {"Nats-Msg-Id": message_id(self.chat_id, event, payload)}
        return await self.js.publish(subject, payload, headers=headers)

    async def _subscription(self) -> JetStreamContext.PullSubscription:
        if self._sub is None:
            config = ConsumerConfig(
                durable_name=self.durable,
                ack_policy=AckPolicy.EXPLICIT,
                deliver_policy=DeliverPolicy.ALL,
                ack_wait=self.settings.ack_wait_seconds,
                max_ack_pending=self.settings.max_ack_pending,
                max_deliver=-1,
                filter_subject=f"{self.settings.subject_prefix}.{self.chat_id}.>",
            )
            self._sub = await self.js.pull_subscribe(
                f"{self.settings.subject_prefix}.{self.chat_id}.>",
                durable=self.durable,
                stream=self.settings.stream,
                config=config,
            )
        return self._sub

    async def get_batch(self, max_events: int) -> list[Envelope]:
        while True:
            try:
                sub = await self._subscription()
                msgs = await sub.fetch(batch=max_events, timeout=1.0)
            except (nats.errors.TimeoutError, TimeoutError):
                continue
            except (nats.errors.Error, nats.js.errors.Error) as exc:
                # The connection is reconnecting, or the subscription broke when a fetch was
                # cancelled: subscribe again; nothing is lost, the stream keeps the events.
                log.warning("bus_fetch_failed", error_type=type(exc).__name__)
                await self._reset_subscription()
                await asyncio.sleep(0.5)
                continue
            batch = [env for msg in msgs if (env := await self._envelope(msg)) is not None]
            if batch:
                return batch

    async def _reset_subscription(self) -> None:
        sub, self._sub = self._sub, None
        if sub is not None:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    async def _envelope(self, msg: Msg) -> Envelope | None:
        with contextlib.suppress(Exception):
            self._pending = int(msg.metadata.num_pending)
        platform = PlatformName(msg.subject.rsplit(".", 1)[-1])
        headers = msg.headers or {}
        if headers.get(KIND) == "checkpoint":
            cp = Checkpoint(key=headers.get(CHECKPOINT_KEY, ""), value=msg.data.decode())
            return Envelope(platform, (), cp, settle=_MsgSettle(msg))
        try:
            event = decode_event(msg.data)
        except EventDecodeError as exc:
            # A message no version of mhchat could store: take it out rather than loop on it.
            log.error(  # no traceback: the message text may hold post text
                "bus_message_unreadable", subject=msg.subject, error=str(exc)[:200]
            )
            self.stats.extra["unreadable"] = self.stats.extra.get("unreadable", 0) + 1
            await msg.term()
            return None
        return Envelope(platform, (event,), None, settle=_MsgSettle(msg))

    def task_done(self, n: int) -> None:
        """Nothing to count: acknowledgement is per message (``Envelope.settle``)."""

    async def join(self) -> None:
        """Wait for publishes in flight; pulled events are redelivered if not acknowledged."""
        if self._inflight:
            await asyncio.gather(*list(self._inflight), return_exceptions=True)

    def drain_nowait(self) -> list[Envelope]:
        return []

    async def consumer_pending(self) -> tuple[int, int]:
        """(waiting in the stream for this chat, handed out and not yet acknowledged)."""
        info = await self.js.consumer_info(self.settings.stream, self.durable)
        return int(info.num_pending or 0), int(info.num_ack_pending or 0)


def _is_full(exc: nats.js.errors.APIError) -> bool:
    text = f"{exc.description or ''}".lower()
    return "maximum messages" in text or "maximum bytes" in text or exc.err_code in (10077, 10047)


async def ensure_stream(js: JetStreamContext, settings: BusSettings) -> None:
    """Create the stream, or bring its limits to the configured ones."""
    config = StreamConfig(
        name=settings.stream,
        subjects=[f"{settings.subject_prefix}.>"],
        retention=RetentionPolicy.WORK_QUEUE,
        storage=StorageType.FILE,
        discard=DiscardPolicy.NEW,
        max_msgs=settings.max_stream_messages,
        duplicate_window=settings.duplicate_window_seconds,
    )
    try:
        await js.add_stream(config)
    except nats.js.errors.BadRequestError:
        await js.update_stream(config)
