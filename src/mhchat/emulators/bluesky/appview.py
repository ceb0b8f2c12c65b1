"""The appview reads a PDS proxies: profiles, post views, threads and search."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiohttp import web

from mhchat.emulators.bluesky.auth import BlueskyAuth
from mhchat.emulators.bluesky.model import (
    POST,
    PROFILE,
    REPOST,
    Account,
    StoredRecord,
    XrpcError,
    _iso,
)


class BlueskyAppview(BlueskyAuth):
    """``app.bsky.actor.*`` and ``app.bsky.feed.*`` reads, built from the stored records."""

    def _profile_view(self, account: Account) -> dict[str, Any]:
        view: dict[str, Any] = {"did": account.did, "handle": account.handle, "labels": []}
        if account.display_name:
            view["displayName"] = account.display_name
        profile = self._records.get(f"at://{account.did}/{PROFILE}/self")
        values = (profile.value.get("labels") or {}).get("values", []) if profile else []
        for label in values:
            view["labels"].append(
                {
                    "src": account.did,
                    "uri": f"at://{account.did}/{PROFILE}/self",
                    "val": label["val"],
                    "cts": _iso(profile.indexed_at if profile else self.clock.now()),
                }
            )
        return view

    async def _get_profile(
        self, request: web.Request, body: dict[str, Any], _did: str | None
    ) -> dict[str, Any]:
        account = self._account(request.query.get("actor", ""))
        if account is None:
            raise XrpcError(400, "InvalidRequest", "Profile not found")
        return self._profile_view(account)

    async def _get_profiles(
        self, request: web.Request, body: dict[str, Any], _did: str | None
    ) -> dict[str, Any]:
        actors = request.query.getall("actors", [])
        if len(actors) > 25:
            raise XrpcError(400, "InvalidRequest", "Array too long: maximum 25 actors")
        found = (self._account(a) for a in actors)
        return {"profiles": [self._profile_view(a) for a in found if a is not None]}

    def _bot_profile(self, did: str) -> dict[str, Any]:
        return {
            "$type": PROFILE,
            "labels": {"$type": "com.atproto.label.defs#selfLabels", "values": [{"val": "bot"}]},
        }

    def _post_view(self, stored: StoredRecord, viewer: str | None) -> dict[str, Any]:
        author = self.accounts.get(stored.did)
        reposts = [
            r
            for r in self._records.values()
            if r.collection == REPOST and r.value["subject"]["uri"] == stored.uri
        ]
        replies = [
            r
            for r in self._records.values()
            if r.collection == POST
            and (r.value.get("reply") or {}).get("parent", {}).get("uri") == stored.uri
        ]
        view_state: dict[str, Any] = {}
        mine = next((r for r in reposts if r.did == viewer), None)
        if mine is not None:
            view_state["repost"] = mine.uri
        return {
            "uri": stored.uri,
            "cid": stored.cid,
            "author": self._profile_view(author)
            if author
            else {"did": stored.did, "handle": "handle.invalid"},
            "record": stored.value,
            "replyCount": len(replies),
            "repostCount": len(reposts),
            "likeCount": 0,
            "quoteCount": 0,
            "indexedAt": _iso(stored.indexed_at),
            "viewer": view_state,
            "labels": [],
        }

    async def _get_posts(
        self, request: web.Request, body: dict[str, Any], did: str | None
    ) -> dict[str, Any]:
        uris = request.query.getall("uris", [])
        if len(uris) > 25:
            raise XrpcError(400, "InvalidRequest", "Array too long: maximum 25 uris")
        found = (self._records.get(u) for u in uris)
        return {"posts": [self._post_view(r, did) for r in found if r is not None]}

    async def _get_post_thread(
        self, request: web.Request, body: dict[str, Any], did: str | None
    ) -> dict[str, Any]:
        uri = request.query.get("uri", "")
        stored = self._records.get(uri)
        if stored is None:
            raise XrpcError(400, "NotFound", f"Post not found: {uri}")
        replies = [
            {
                "$type": "app.bsky.feed.defs#threadViewPost",
                "post": self._post_view(r, did),
                "replies": [],
            }
            for r in self.records_all(POST)
            if (r.value.get("reply") or {}).get("parent", {}).get("uri") == uri
        ]
        return {
            "thread": {
                "$type": "app.bsky.feed.defs#threadViewPost",
                "post": self._post_view(stored, did),
                "replies": replies,
            }
        }

    async def _search_posts(
        self, request: web.Request, body: dict[str, Any], did: str | None
    ) -> dict[str, Any]:
        q = request.query
        query = q.get("q", "").strip()
        if not query:
            raise XrpcError(400, "InvalidRequest", 'Params must have the property "q"')
        tags = [t.lower().lstrip("#") for t in q.getall("tag", [])]
        words = [w.lower() for w in query.split()]
        since = datetime.fromisoformat(q["since"].replace("Z", "+00:00")) if "since" in q else None
        until = datetime.fromisoformat(q["until"].replace("Z", "+00:00")) if "until" in q else None
        cutoff = self.clock.now().timestamp() - self.search_lag
        hits = []
        for stored in reversed(self.records_all(POST)):
            if stored.indexed_at.timestamp() > cutoff:
                continue
            text = str(stored.value.get("text", "")).lower()
            post_tags = {
                str(f.get("tag", "")).lower()
                for facet in stored.value.get("facets") or []
                for f in facet.get("features", [])
                if f.get("$type") == "app.bsky.richtext.facet#tag"
            }
            if tags and not all(t in post_tags for t in tags):
                continue
            if not all(
                (w.lstrip("#") in post_tags) if w.startswith("#") else (w in text) for w in words
            ):
                continue
            created = datetime.fromisoformat(str(stored.value["createdAt"]).replace("Z", "+00:00"))
            if (since and created < since) or (until and created >= until):
                continue
            hits.append(stored)
        offset = int(q.get("cursor", "0") or 0)
        limit = min(100, max(1, int(q.get("limit", "25"))))
        page = hits[offset : offset + limit]
        out: dict[str, Any] = {
            "posts": [self._post_view(r, did) for r in page],
            "hitsTotal": len(hits),
        }
        if offset + limit < len(hits):
            out["cursor"] = str(offset + limit)
        return out
