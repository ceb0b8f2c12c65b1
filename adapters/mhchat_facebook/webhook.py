"""The aiohttp sub-application mounted at ``/webhooks/facebook``.

- ``GET``: Meta's subscription handshake (``hub.mode``, ``hub.verify_token``, ``hub.challenge``).
- ``POST``: page ``feed`` changes, signed with ``X-Hub-Signature-256`` over the raw body.
  With the service's intake spool (the default), answered 200 once the signed body is on disk
  in the spool; the adapter's spool reader parses and stores it. Without one, answered 200 only
  once the events are stored. 503 when the spool (or the bus) is full or storing is slow, so
  Meta delivers again (the store dedupes on the stable Facebook ids).
- ``POST /data-deletion`` and ``GET /data-deletion/status``: Meta's data-deletion callback.

No input yields a 500: every unexpected failure is logged (ids and counts only) and answered
503, which makes Meta retry rather than drop the delivery.
"""

from __future__ import annotations

import asyncio
import hmac
import html
import re
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Protocol
from urllib.parse import parse_qs

from aiohttp import web

from mhchat.adapters import AdapterContext, Checkpoint, IntakeSpool
from mhchat.events import Event, PersonForgetRequested
from mhchat_facebook import json_text
from mhchat_facebook.config import FacebookConfig
from mhchat_facebook.mapping import parse_delivery
from mhchat_facebook.signature import (
    SIGNATURE_HEADER,
    BadSignedRequest,
    confirmation_code,
    parse_signed_request,
    signature_valid,
)

ALIVE_KEY = "facebook:alive_at"
"""Checkpoint: the last time events were stored from this page (catch-up after a restart)."""
DELETION_PREFIX = "facebook:deletion:"
DELETION_PATH = "/data-deletion"
STATUS_PATH = "/data-deletion/status"
_MAX_DELETION_BODY = 8 * 1024
_MAX_CHALLENGE = 512
_CODE = re.compile(r"^[0-9a-f]{20}$")


class IntakeHost(Protocol):
    """What the endpoint needs from the adapter that owns it."""

    @property
    def accepting(self) -> bool: ...

    def note_delivery(self, events: int) -> None:
        """A verified delivery was parsed (webhooks are alive)."""
        ...

    def delivery_spooled(self, at: datetime) -> None:
        """A verified delivery was written to the spool at ``at``, to be parsed soon."""
        ...


class _TooLarge(Exception):
    pass


async def read_limited(request: web.Request, limit: int) -> bytes:
    """Read the raw body, giving up as soon as it exceeds ``limit`` bytes."""
    if request.content_length is not None and request.content_length > limit:
        raise _TooLarge
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = await request.content.read(64 * 1024)
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)


def failure(exc: BaseException) -> dict[str, str]:
    """Where an unexpected error came from, without its message or locals (they hold posts)."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    where = f"{tb.tb_frame.f_code.co_filename.rsplit('/', 1)[-1]}:{tb.tb_lineno}" if tb else "?"
    return {"error": type(exc).__name__, "where": where}


class Malformed(ValueError):
    """The body is not JSON."""


def parse_json(body: bytes) -> object:
    """The parsed body, of storable text only (see ``json_text``)."""
    try:
        return json_text.loads(body)
    except (ValueError, RecursionError) as exc:
        raise Malformed(str(exc)) from None


def well_formed(body: bytes) -> bool:
    """Whether ``body`` is JSON."""
    try:
        parse_json(body)
    except Malformed:
        return False
    return True


def consume_future(fut: asyncio.Future[None]) -> None:
    if not fut.cancelled():
        fut.exception()


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class WebhookEndpoint:
    def __init__(
        self,
        *,
        ctx: AdapterContext,
        config: FacebookConfig,
        host: IntakeHost,
        counters: Counter[str],
    ) -> None:
        self._ctx = ctx
        self._config = config
        self._host = host
        self.counters = counters

    def app(self) -> web.Application:
        sub = web.Application()
        # "" matches the mount point itself (/webhooks/facebook), "/" the trailing-slash form.
        for path in ("", "/"):
            sub.router.add_get(path, self._guard(self.verify))
            sub.router.add_post(path, self._guard(self.receive))
        sub.router.add_post(DELETION_PATH, self._guard(self.data_deletion))
        sub.router.add_get(STATUS_PATH, self._guard(self.deletion_status))
        return sub

    def _guard(self, handler: Handler) -> Handler:
        async def guarded(request: web.Request) -> web.StreamResponse:
            try:
                return await handler(request)
            except Exception as exc:  # noqa: BLE001 - never a 500: Meta retries a 503
                self.counters["webhook_errors"] += 1
                # No traceback locals in the log: they would carry the body, people's posts.
                where = failure(exc)
                self._ctx.log.error("facebook_webhook_failed", path=request.path, **where)
                return web.Response(status=503, text="try again")

        return guarded

    async def verify(self, request: web.Request) -> web.StreamResponse:
        mode = request.query.get("hub.mode")
        token = request.query.get("hub.verify_token")
        challenge = request.query.get("hub.challenge")
        expected = self._config.verify_token.encode()
        if (
            mode == "subscribe"
            and token is not None
            and challenge is not None
            and len(challenge) <= _MAX_CHALLENGE
            and hmac.compare_digest(token.encode("utf-8", "replace"), expected)
        ):
            self._ctx.log.info("facebook_webhook_verified")
            return web.Response(text=challenge, content_type="text/plain")
        self.counters["verify_refused"] += 1
        return web.Response(status=403, text="verification refused")

    async def receive(self, request: web.Request) -> web.StreamResponse:
        if not self._host.accepting:
            self.counters["refused_not_running"] += 1
            return web.Response(status=503, text="not running")
        try:
            body = await read_limited(request, self._config.max_body_bytes)
        except _TooLarge:
            self.counters["too_large"] += 1
            return web.Response(status=413, text="too large")
        if not signature_valid(
            body, request.headers.get(SIGNATURE_HEADER), self._config.app_secret
        ):
            self.counters["bad_signature"] += 1
            return web.Response(status=403, text="bad signature")
        if self._ctx.spool is not None:
            return await self._spool(self._ctx.spool, body)
        return await self._direct(body)

    async def _direct(self, body: bytes) -> web.StreamResponse:
        """Without a spool: parse now and answer once the events are stored."""
        try:
            data = parse_json(body)
        except Malformed:
            self.counters["malformed"] += 1
            return web.Response(status=400, text="malformed JSON")
        events = self.events_of(data, self._ctx.clock.now())
        if not events:
            return web.Response(text="EVENT_RECEIVED")
        return await self._store(events, "events")

    async def _spool(self, spool: IntakeSpool, body: bytes) -> web.StreamResponse:
        # Signed and well-formed: on disk, then answered. Parsing, storing and deciding happen
        # in the adapter's spool reader, in large batches, off the request path.
        if not well_formed(body):
            self.counters["malformed"] += 1
            return web.Response(status=400, text="malformed JSON")
        now = self._ctx.clock.now()
        if not await spool.put(body, now):
            self.counters["spool_full"] += 1
            return web.Response(status=503, text="busy")
        self.counters["spooled"] += 1
        self._host.delivery_spooled(now)
        return web.Response(text="EVENT_RECEIVED")

    def events_of(self, data: object, received_at: datetime) -> list[Event]:
        """The events of one parsed delivery; what is ignored is counted."""
        parsed = parse_delivery(
            data,
            platform=self._ctx.platform,
            page_id=self._config.page_id,
            received_at=received_at,
        )
        for reason, count in parsed.ignored.items():
            self.counters[f"ignored:{reason}"] += count
        self._host.note_delivery(len(parsed.events))
        return list(parsed.events)

    async def _store(
        self, events: Sequence[Event], counter: str, ok: web.StreamResponse | None = None
    ) -> web.StreamResponse:
        checkpoint = Checkpoint(key=ALIVE_KEY, value=self._ctx.clock.now().isoformat())
        fut = self._ctx.sink.offer(events, checkpoint=checkpoint)
        if fut is None:
            self.counters["bus_full"] += 1
            return web.Response(status=503, text="busy")
        fut.add_done_callback(consume_future)
        try:
            await asyncio.wait_for(asyncio.shield(fut), self._config.ack_timeout)
        except TimeoutError:
            self.counters["store_timeout"] += 1
            return web.Response(status=503, text="busy")
        self.counters[counter] += len(events)
        self._ctx.log.info("facebook_webhook_stored", count=len(events))
        return ok or web.Response(text="EVENT_RECEIVED")

    def _status_url(self, request: web.Request, code: str) -> str:
        origin = self._config.public_url or f"{request.scheme}://{request.host}"
        mount = request.path[: -len(DELETION_PATH)] if request.path.endswith(DELETION_PATH) else ""
        return f"{origin}{mount}{STATUS_PATH}?code={code}"

    async def data_deletion(self, request: web.Request) -> web.StreamResponse:
        if not self._host.accepting:
            return web.Response(status=503, text="not running")
        try:
            body = await read_limited(request, _MAX_DELETION_BODY)
        except _TooLarge:
            return web.Response(status=413, text="too large")
        try:
            form = parse_qs(body.decode("ascii", "replace"), max_num_fields=10)
        except ValueError:  # more fields than any real callback sends
            form = {}
        signed = form.get("signed_request", [""])[0]
        if not signed:
            self.counters["deletion_malformed"] += 1
            return web.Response(status=400, text="signed_request missing")
        try:
            deletion = parse_signed_request(signed, self._config.app_secret)
        except BadSignedRequest:
            self.counters["deletion_refused"] += 1
            return web.Response(status=403, text="invalid signed_request")
        code = confirmation_code(deletion, self._config.app_secret)
        now = self._ctx.clock.now()
        # Only the code and the time are kept here: the person's id goes to the core.
        await self._ctx.state.set(DELETION_PREFIX + code, now.isoformat())
        event = PersonForgetRequested(
            platform=self._ctx.platform,
            author_id=deletion.user_id,
            requested_at=now,
            confirmation_code=code,
        )
        answer = web.json_response(
            {"url": self._status_url(request, code), "confirmation_code": code}
        )
        return await self._store([event], "deletion_requests", answer)

    async def deletion_status(self, request: web.Request) -> web.StreamResponse:
        code = request.query.get("code", "")
        received = await self._ctx.state.get(DELETION_PREFIX + code) if _CODE.match(code) else None
        if received is None:
            return web.Response(
                status=404,
                text="No data-deletion request with this confirmation code is known here.",
            )
        page = (
            "<!doctype html><title>Data deletion request</title>"
            f"<h1>Data deletion request {html.escape(code)}</h1>"
            f"<p>Your request was received on {html.escape(received[:19].replace('T', ' '))} "
            "UTC. The posts, comments and profile details this chat service stored from the "
            "Facebook page under your account are being deleted; nothing is kept.</p>"
        )
        return web.Response(text=page, content_type="text/html")
