"""The Graph API a page calls: ``/me``, ``/{page-id}/feed``, ``/{object-id}/comments`` and
``/{object-id}``, with token checks, usage headers and cursor paging."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from mhchat.emulators.facebook.faults import FacebookFaults
from mhchat.emulators.facebook.model import (
    GraphFailure,
    Node,
    Person,
    SentRecord,
    _cursor,
    _offset,
    graph_time,
)


class FacebookGraph(FacebookFaults):
    """Graph requests: who is calling, what they may do, and the answer."""

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
