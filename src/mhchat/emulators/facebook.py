"""A local Facebook page: the Graph API calls a page makes and Meta's signed page webhooks.

Graph side (``/{version}/...`` on 127.0.0.1): ``/me``, ``/{page-id}/feed`` (GET with nested
comments and paging, POST to publish), ``/{object-id}/comments`` (GET with cursors, POST to
comment or reply) and ``/{object-id}``. Shapes follow the recorded responses in the project's
Facebook payload notes: ``{"id": ...}`` for writes, ``+0000`` times, ``paging.next`` URLs that
carry ``access_token`` like Graph's do, ``{"error": {"message", "type", "code",
"error_subcode", "fbtrace_id"}}`` errors, and ``x-app-usage`` / ``x-business-use-case-usage``
headers. The Page token is enforced (header ``Authorization: Bearer|OAuth`` or an
``access_token`` parameter); a user token is recognised as a person.

Webhook side: participants act through :meth:`FacebookEmulator.comment`, :meth:`edit`,
:meth:`remove` (and the page's own Graph writes echo back), which append to the feed and POST a
``feed`` change to :attr:`webhook_url` signed like Meta (HMAC-SHA256 of the raw bytes with the
app secret; JSON with non-ASCII and ``/`` escaped), retried a bounded number of times on
non-2xx. :meth:`lapse_subscription` keeps recording activity without delivering it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import itertools
import json
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import aiohttp
from aiohttp import web

from mhchat.clock import Clock, SystemClock
from mhchat.emulators.common import serve

RATE_LIMIT_MESSAGES = {
    4: "(#4) Application request limit reached",
    17: "(#17) User request limit reached",
    32: "(#32) Page request limit reached",
    613: "(#613) Calls to this api have exceeded the rate limit.",
    80001: "(#80001) There have been too many calls to this Page account. Wait a bit and try "
    "again. For more info, please refer to "
    "https://developers.facebook.com/docs/graph-api/overview/rate-limiting.",
}


@dataclass(frozen=True, slots=True)
class Person:
    id: str
    name: str


@dataclass(slots=True)
class Node:
    """A post or a comment on the page."""

    id: str
    author: Person
    message: str
    created: datetime
    post_id: str | None = None
    """For comments: the post they belong to."""
    parent_id: str | None = None
    """For comments: the post (top level) or the comment replied to."""
    removed: bool = False


@dataclass(frozen=True, slots=True)
class SentRecord:
    """A write the page made through Graph."""

    kind: str
    target: str
    message: str
    remote_id: str


@dataclass(slots=True)
class Delivery:
    body: bytes
    attempts: list[int] = field(default_factory=list)
    delivered: bool = False


@dataclass(slots=True)
class _Fault:
    methods: frozenset[str]
    mode: str
    status: int = 400
    body: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)


def graph_time(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S+0000")


def meta_json(payload: object) -> bytes:
    """Serialise like Meta: compact, non-ASCII as ``\\uXXXX``, ``/`` as ``\\/``."""
    text = json.dumps(payload, ensure_ascii=True, separators=(",", ":"))
    return text.replace("/", "\\/").encode("ascii")


def sign(body: bytes, app_secret: str) -> str:
    return "sha256=" + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()


def _cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(str(offset).encode()).decode().rstrip("=")


def _offset(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        return max(0, int(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))) + 1)
    except ValueError:
        return 0


class GraphFailure(Exception):
    def __init__(self, status: int, code: int, message: str, subcode: int | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.subcode = status, code, message, subcode

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"message": self.message, "type": "OAuthException"}
        error["code"] = self.code
        if self.subcode is not None:
            error["error_subcode"] = self.subcode
        error["fbtrace_id"] = "A" + secrets.token_urlsafe(16)
        return {"error": error}


class FacebookEmulator:
    """One page, its Graph API and its webhook deliveries. See the module docstring."""

    def __init__(
        self,
        *,
        page_id: str = "104729300000001",
        page_name: str = "MHChat",
        page_token: str = "EAAGpage-emulator-token",  # noqa: S107 - emulator credentials
        user_token: str = "EAAGuser-emulator-token",  # noqa: S107 - emulator credentials
        user: Person | None = None,
        app_secret: str = "emulator-app-secret",  # noqa: S107 - emulator credentials
        clock: Clock | None = None,
        retry_delays: Sequence[float] = (0.0, 0.05, 0.2),
        call_budget: int = 4800,
    ) -> None:
        self.page = Person(page_id, page_name)
        self.page_token = page_token
        self.user_token = user_token
        self.user = user or Person("100000000000077", "Host Person")
        self.app_secret = app_secret
        self.clock: Clock = clock or SystemClock()
        self.retry_delays = tuple(retry_delays)
        self.call_budget = call_budget
        self.base_url = ""
        self.webhook_url: str | None = None
        self.subscription_active = True
        self.token_expired = False
        self.slow_seconds = 0.0
        self.nodes: dict[str, Node] = {}
        self.sent: list[SentRecord] = []
        self.deliveries: list[Delivery] = []
        self.undelivered: list[bytes] = []
        """Changes recorded while the subscription was lapsed."""
        self.requests: list[tuple[str, str]] = []
        """(method, path with query) of every Graph request."""
        self.calls = 0
        self._faults: list[_Fault] = []
        self._ids = itertools.count(139560936744001)
        self._runner: web.AppRunner | None = None
        self._http: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._release = asyncio.Event()

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        app = web.Application()
        app.router.add_route("*", r"/{version:v\d+\.\d+}/{path:.*}", self._graph)
        self._runner, self.base_url = await serve(app, host, port, access_log=True)
        self._http = aiohttp.ClientSession()
        self._release.clear()
        return self.base_url

    async def stop(self) -> None:
        self._release.set()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._http is not None:
            await self._http.close()
            self._http = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -- fault injection ---------------------------------------------------------------------

    def fail_next(
        self,
        code: int,
        *,
        status: int = 400,
        subcode: int | None = None,
        message: str | None = None,
        headers: dict[str, str] | None = None,
        methods: Iterable[str] = ("POST",),
    ) -> None:
        """The next matching request answers this Graph error (before any effect)."""
        text = message or RATE_LIMIT_MESSAGES.get(code, f"(#{code}) Emulated error")
        body = GraphFailure(status, code, text, subcode).body()
        self._faults.append(_Fault(frozenset(methods), "error", status, body, dict(headers or {})))

    def rate_limit_next(
        self, code: int = 80001, *, minutes: int = 5, methods: Iterable[str] = ("POST", "GET")
    ) -> None:
        """A rate-limit error with usage headers saying when access comes back."""
        usage = {"type": "pages", "call_count": 100, "total_cputime": 20, "total_time": 20}
        usage["estimated_time_to_regain_access"] = minutes
        headers = {
            "x-business-use-case-usage": json.dumps({self.page.id: [usage]}),
            "x-app-usage": json.dumps({"call_count": 100, "total_cputime": 20, "total_time": 20}),
        }
        self.fail_next(
            code, subcode=2446079 if code >= 80000 else None, headers=headers, methods=methods
        )

    def server_error_next(self, status: int = 500, *, graph_body: bool = True) -> None:
        """A 5xx: with Graph's code 2 body, or a bare gateway error without one."""
        body = GraphFailure(status, 2, "Service temporarily unavailable").body()
        self._faults.append(
            _Fault(frozenset({"GET", "POST"}), "error", status, body if graph_body else None)
        )

    def timeout_next(self, *, after_effect: bool) -> None:
        """The next write hangs, before or after it takes effect."""
        mode = "hang_after" if after_effect else "hang_before"
        self._faults.append(_Fault(frozenset({"POST"}), mode))

    def reset_next(self, *, after_effect: bool = False) -> None:
        mode = "reset_after" if after_effect else "reset_before"
        self._faults.append(_Fault(frozenset({"GET", "POST"}), mode))

    def expire_token(self) -> None:
        self.token_expired = True

    def lapse_subscription(self) -> None:
        """Activity keeps landing in the feed, but no webhook is sent."""
        self.subscription_active = False

    def restore_subscription(self) -> None:
        self.subscription_active = True

    # -- Graph -------------------------------------------------------------------------------

    def _usage_headers(self) -> dict[str, str]:
        pct = min(100, self.calls * 100 // max(1, self.call_budget))
        usage = {"call_count": pct, "total_cputime": pct // 2, "total_time": pct // 2}
        buc = [{"type": "pages", **usage, "estimated_time_to_regain_access": 0}]
        return {
            "x-app-usage": json.dumps(usage),
            "x-business-use-case-usage": json.dumps({self.page.id: buc}),
        }

    def _caller(self, request: web.Request, params: dict[str, str]) -> Person:
        header = request.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        token = value.strip() if scheme.lower() in ("bearer", "oauth") else ""
        token = token or params.get("access_token", "")
        if not token:
            raise GraphFailure(
                400,
                2500,
                "An active access token must be used to query information about the current user.",
            )
        if token == self.page_token:
            if self.token_expired:
                raise GraphFailure(
                    400, 190, "Error validating access token: Session has expired.", subcode=463
                )
            caller = self.page
        elif token == self.user_token:
            caller = self.user
        else:
            raise GraphFailure(400, 190, "Invalid OAuth access token - Cannot parse access token")
        proof = params.get("appsecret_proof")
        if proof is not None:
            expected = hmac.new(self.app_secret.encode(), token.encode(), hashlib.sha256)
            if not hmac.compare_digest(proof, expected.hexdigest()):
                raise GraphFailure(
                    400, 100, "Invalid appsecret_proof provided in the API argument"
                )
        return caller

    async def _graph(self, request: web.Request) -> web.StreamResponse:
        self.calls += 1
        self.requests.append((request.method, request.path_qs))
        if self.slow_seconds:
            await asyncio.sleep(self.slow_seconds)
        params = dict(request.query)
        headers = self._usage_headers()
        try:
            if request.method == "POST":
                params.update(await self._form(request))
            caller = self._caller(request, params)
            fault = self._take_fault(request.method)
            if fault is not None and fault.mode == "error":
                return web.json_response(
                    fault.body, status=fault.status, headers={**headers, **fault.headers}
                )
            if fault is not None and fault.mode.endswith("_before"):
                return await self._misbehave(request, fault)
            body = self._route(request, request.match_info["path"], params, caller)
            if fault is not None:
                return await self._misbehave(request, fault)
            return web.json_response(body, headers=headers)
        except GraphFailure as failure:
            return web.json_response(failure.body(), status=failure.status, headers=headers)

    async def _form(self, request: web.Request) -> dict[str, str]:
        try:
            if request.content_type == "application/json":
                loaded = await request.json()
                return {str(k): str(v) for k, v in dict(loaded).items()}
            return {k: str(v) for k, v in (await request.post()).items()}
        except (ValueError, TypeError) as exc:
            raise GraphFailure(400, 100, "(#100) Could not parse the request body") from exc

    def _take_fault(self, method: str) -> _Fault | None:
        for index, fault in enumerate(self._faults):
            if method in fault.methods:
                return self._faults.pop(index)
        return None

    async def _misbehave(self, request: web.Request, fault: _Fault) -> web.StreamResponse:
        if fault.mode.startswith("hang"):
            await self._release.wait()
        elif request.transport is not None:
            request.transport.abort()
        return web.Response(status=504)

    def _route(  # noqa: PLR0911 - one return per Graph route
        self, request: web.Request, path: str, params: dict[str, str], caller: Person
    ) -> dict[str, Any]:
        parts = [p for p in path.split("/") if p]
        method = request.method
        if parts == ["me"] and method == "GET":
            return {"id": caller.id, "name": caller.name}
        if len(parts) == 2 and parts[1] == "feed" and parts[0] == self.page.id:
            if method == "GET":
                return self._feed(params)
            return {"id": self._page_write(caller, "publish", self.page.id, params)}
        if len(parts) == 2 and parts[1] == "comments" and parts[0] in self.nodes:
            if method == "GET":
                return self._comments_edge(parts[0], params, nested=False)
            return {"id": self._page_write(caller, "comment", parts[0], params)}
        if len(parts) == 1 and method == "GET":
            if parts[0] == self.page.id:
                return {"id": self.page.id, "name": self.page.name}
            node = self.nodes.get(parts[0])
            if node is not None and not node.removed:
                return self._node_json(node)
        raise GraphFailure(
            400,
            100,
            f"Unsupported {method.lower()} request. Object with ID '{parts[0] if parts else ''}' "
            "does not exist, cannot be loaded due to missing permissions, or does not support "
            "this operation.",
            subcode=33,
        )

    def _page_write(self, caller: Person, kind: str, target: str, params: dict[str, str]) -> str:
        if caller != self.page:
            raise GraphFailure(
                403,
                200,
                "(#200) If posting to a page, requires both pages_read_engagement and "
                "pages_manage_posts as an admin with sufficient administrative permission",
            )
        message = params.get("message", "")
        if not message:
            raise GraphFailure(400, 100, "(#100) Missing message or attachment.")
        if kind == "publish":
            node = self._add_post(self.page, message)
        else:
            node = self._add_comment(self.page, message, target)
        self.sent.append(SentRecord(kind=kind, target=target, message=message, remote_id=node.id))
        return node.id

    def _node_json(self, node: Node) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": node.id,
            "message": node.message,
            "created_time": graph_time(node.created),
            "from": {"id": node.author.id, "name": node.author.name},
            "permalink_url": self._permalink(node),
        }
        if node.post_id is not None and node.parent_id != node.post_id:
            data["parent"] = {"id": node.parent_id}
        if node.post_id is None:
            data["updated_time"] = data["created_time"]
            data["is_published"] = True
        return data

    def _permalink(self, node: Node) -> str:
        if node.post_id is None:
            return f"https://www.facebook.com/{self.page.id}/posts/{node.id.split('_')[-1]}"
        post = node.post_id.split("_")[-1]
        return f"https://www.facebook.com/{self.page.id}/posts/{post}/?comment_id={node.id}"

    def _next_url(self, path: str, params: dict[str, str], extra: dict[str, str]) -> str:
        query = {k: v for k, v in params.items() if k not in ("appsecret_proof", "after")}
        query = {"access_token": self.page_token, **query, **extra}
        return f"{self.base_url}/v26.0/{path}?{urlencode(query)}"

    def _feed(self, params: dict[str, str]) -> dict[str, Any]:
        posts = sorted(
            (n for n in self.nodes.values() if n.post_id is None and not n.removed),
            key=lambda n: n.created,
            reverse=True,
        )
        limit = min(100, int(params.get("limit", "25") or 25))
        start = _offset(params.get("__paging_token"))
        window = posts[start : start + limit]
        fields = params.get("fields", "")
        data = []
        for node in window:
            item = self._node_json(node)
            if "comments" in fields:
                stream = "filter(stream)" in fields
                item["comments"] = self._comments_edge(
                    node.id, {"filter": "stream" if stream else "toplevel"}, nested=True
                )
            data.append(item)
        body: dict[str, Any] = {"data": data, "paging": {}}
        if start + limit < len(posts) and window:
            until = str(int(window[-1].created.timestamp()))
            body["paging"]["next"] = self._next_url(
                f"{self.page.id}/feed",
                params,
                {"until": until, "__paging_token": _cursor(start + limit - 1)},
            )
        if not body["paging"]:
            del body["paging"]
        return body

    def _comments_edge(
        self, object_id: str, params: dict[str, str], *, nested: bool
    ) -> dict[str, Any]:
        stream = params.get("filter") == "stream"
        found = [
            n
            for n in self.nodes.values()
            if not n.removed
            and n.post_id is not None
            and (n.post_id == object_id if stream else n.parent_id == object_id)
        ]
        found.sort(key=lambda n: n.created, reverse=params.get("order") == "reverse_chronological")
        limit = min(100, int(params.get("limit", "100" if nested else "25") or 25))
        start = _offset(params.get("after"))
        window = found[start : start + limit]
        body: dict[str, Any] = {"data": [self._node_json(n) for n in window]}
        if window:
            paging: dict[str, Any] = {
                "cursors": {
                    "before": _cursor(start - 1),
                    "after": _cursor(start + len(window) - 1),
                }
            }
            if start + limit < len(found):
                paging["next"] = self._next_url(
                    f"{object_id}/comments", params, {"after": paging["cursors"]["after"]}
                )
            body["paging"] = paging
        body["summary"] = {
            "order": params.get("order", "chronological"),
            "total_count": len(found),
            "can_comment": True,
        }
        return body

    # -- the page's content ------------------------------------------------------------------

    def _new_id(self) -> str:
        return str(next(self._ids))

    def _add_post(self, author: Person, message: str) -> Node:
        node = Node(f"{self.page.id}_{self._new_id()}", author, message, self.clock.now())
        self.nodes[node.id] = node
        self._emit(
            {
                "item": "status",
                "post_id": node.id,
                "verb": "add",
                "published": 1,
                "message": message,
            },
            node,
        )
        return node

    def _add_comment(self, author: Person, message: str, on: str) -> Node:
        target = self.nodes.get(on)
        if target is None or target.removed:
            raise GraphFailure(
                400,
                100,
                f"Unsupported post request. Object with ID '{on}' does not exist.",
                subcode=33,
            )
        if target.post_id is None:
            post_id, parent_id = target.id, target.id
        else:
            # Facebook threads are two levels deep: a reply to a reply joins the thread.
            post_id = target.post_id
            top = target if target.parent_id == post_id else self.nodes[target.parent_id or ""]
            parent_id = top.id
        node = Node(
            f"{post_id.split('_')[-1]}_{self._new_id()}",
            author,
            message,
            self.clock.now(),
            post_id=post_id,
            parent_id=parent_id,
        )
        self.nodes[node.id] = node
        self._emit(
            {
                "item": "comment",
                "comment_id": node.id,
                "post_id": post_id,
                "parent_id": parent_id,
                "verb": "add",
                "message": message,
            },
            node,
        )
        return node

    def _emit(self, value: dict[str, Any], node: Node, *, verb: str | None = None) -> None:
        change = {"from": {"id": node.author.id, "name": node.author.name}, **value}
        if verb is not None:
            change["verb"] = verb
        change["created_time"] = int(node.created.timestamp())
        self.deliver_changes([{"field": "feed", "value": change}])

    # -- participants ------------------------------------------------------------------------

    async def page_post(self, message: str) -> str:
        """The page posts directly (as from the page's own interface)."""
        return self._add_post(self.page, message).id

    async def visitor_post(self, author: Person, message: str) -> str:
        return self._add_post(author, message).id

    async def comment(
        self, author: Person, message: str, on_post: str, parent: str | None = None
    ) -> str:
        """``author`` comments on ``on_post`` (or replies to the comment ``parent``)."""
        return self._add_comment(author, message, parent or on_post).id

    async def edit(self, object_id: str, message: str) -> None:
        node = self.nodes[object_id]
        node.message = message
        self._emit(self._change_value(node, "edited") | {"message": message}, node)

    async def remove(self, object_id: str) -> None:
        node = self.nodes[object_id]
        node.removed = True
        value = self._change_value(node, "remove")
        self._emit(value, node)

    def _change_value(self, node: Node, verb: str) -> dict[str, Any]:
        if node.post_id is None:
            return {
                "item": "status" if verb == "edited" else "post",
                "post_id": node.id,
                "verb": verb,
                "published": 1,
            }
        return {
            "item": "comment",
            "comment_id": node.id,
            "post_id": node.post_id,
            "parent_id": node.parent_id,
            "verb": verb,
        }

    # -- webhook delivery --------------------------------------------------------------------

    def deliver_changes(self, changes: list[dict[str, Any]]) -> None:
        """Send one envelope of ``feed`` changes for the page (in the background)."""
        envelope = {
            "object": "page",
            "entry": [
                {"id": self.page.id, "time": int(self.clock.now().timestamp()), "changes": changes}
            ],
        }
        body = meta_json(envelope)
        if not self.subscription_active or self.webhook_url is None:
            self.undelivered.append(body)
            return
        delivery = Delivery(body)
        self.deliveries.append(delivery)
        task = asyncio.get_running_loop().create_task(self._send(delivery))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, delivery: Delivery) -> None:
        assert self._http is not None, "start() the emulator first"
        headers = {
            "Content-Type": "application/json",
            "X-Hub-Signature-256": sign(delivery.body, self.app_secret),
            "X-Hub-Signature": "sha1="
            + hmac.new(self.app_secret.encode(), delivery.body, hashlib.sha1).hexdigest(),
        }
        for delay in self.retry_delays:
            await asyncio.sleep(delay)
            url = self.webhook_url
            if url is None:
                break
            try:
                async with self._http.post(url, data=delivery.body, headers=headers) as resp:
                    delivery.attempts.append(resp.status)
                    if 200 <= resp.status < 300:
                        delivery.delivered = True
                        return
            except aiohttp.ClientError:
                delivery.attempts.append(0)

    async def redeliver_failed(self) -> None:
        """Meta's later retries: send every failed delivery again, in order."""
        for delivery in [d for d in self.deliveries if not d.delivered]:
            await self._send(delivery)

    async def drain(self) -> None:
        """Wait until every delivery in flight has succeeded or used up its retries."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    # -- data deletion -----------------------------------------------------------------------

    def signed_request(self, user_id: str, *, app_secret: str | None = None) -> str:
        payload = {
            "algorithm": "HMAC-SHA256",
            "expires": int(self.clock.now().timestamp()) + 3600,
            "issued_at": int(self.clock.now().timestamp()),
            "user_id": user_id,
        }
        encoded = base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")
        key = (app_secret or self.app_secret).encode()
        digest = hmac.new(key, encoded.encode(), hashlib.sha256).digest()
        signature = base64.urlsafe_b64encode(digest).decode().rstrip("=")
        return f"{signature}.{encoded}"

    async def request_data_deletion(self, url: str, user_id: str) -> tuple[int, Any]:
        """POST Meta's data-deletion callback for ``user_id``: (status, JSON or text)."""
        assert self._http is not None, "start() the emulator first"
        form = {"signed_request": self.signed_request(user_id)}
        async with self._http.post(url, data=form) as resp:
            text = await resp.text()
            try:
                return resp.status, json.loads(text)
            except ValueError:
                return resp.status, text
