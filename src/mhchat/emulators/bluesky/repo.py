"""The repository XRPC (``com.atproto.repo.*``): lexicon checks, rate-limit points, and writes
that land on the Jetstream log."""

from __future__ import annotations

from typing import Any

import grapheme
from aiohttp import web

from mhchat.emulators.bluesky.jetstream import BlueskyJetstream
from mhchat.emulators.bluesky.model import (
    _POINTS,
    POST,
    REPOST,
    StoredRecord,
    XrpcError,
    _Window,
    make_cid,
)


def _invalid(collection: str, detail: str) -> XrpcError:
    return XrpcError(400, "InvalidRequest", f"Invalid {collection} record: {detail}")


def _validate_post(record: dict[str, Any]) -> None:
    text = record.get("text")
    if not isinstance(text, str):
        raise _invalid(POST, 'Record must have the property "text"')
    count = grapheme.length(text)
    if count > 300:
        raise _invalid(POST, f"grapheme too big (maximum 300, got {count}) at $.record.text")
    if len(text.encode()) > 3000:
        raise _invalid(POST, "Record/text must not be longer than 3000 characters")
    if not isinstance(record.get("createdAt"), str):
        raise _invalid(POST, 'Record must have the property "createdAt"')
    reply = record.get("reply")
    if reply is not None:
        for part in ("root", "parent"):
            ref = reply.get(part) if isinstance(reply, dict) else None
            if not (isinstance(ref, dict) and ref.get("uri") and ref.get("cid")):
                raise _invalid(POST, f'Record/reply must have the property "{part}"')
    for facet in record.get("facets") or []:
        index = facet.get("index", {})
        if not (isinstance(index.get("byteStart"), int) and isinstance(index.get("byteEnd"), int)):
            raise _invalid(POST, "Record/facets/index must have byteStart and byteEnd")


class BlueskyRepo(BlueskyJetstream):
    """Records: validating, writing and deleting them, and reading them back."""

    def _validate(self, collection: str, record: dict[str, Any]) -> None:
        """Lexicon checks the PDS makes before accepting a record."""
        if record.get("$type") not in (None, collection):
            raise _invalid(collection, "Record/$type must be " + collection)
        if collection == POST:
            _validate_post(record)
        if collection == REPOST:
            subject = record.get("subject")
            if not (isinstance(subject, dict) and subject.get("uri") and subject.get("cid")):
                raise _invalid(collection, 'Record must have the property "subject"')

    def _consume_points(self, did: str, operation: str) -> dict[str, str]:
        hour, day = self._points.setdefault(
            did, (_Window(self.points_per_hour, 3600), _Window(self.points_per_day, 86400))
        )
        now = self.clock.now().timestamp()
        cost = _POINTS[operation]
        for window in (day, hour):
            if not window.consume(now, cost):
                raise XrpcError(429, "RateLimitExceeded", "Rate Limit Exceeded", window.headers())
        return hour.headers()

    def _write(
        self, did: str, collection: str, record: dict[str, Any], *, rkey: str | None = None
    ) -> StoredRecord:
        rkey = rkey or self._tid()
        uri = f"at://{did}/{collection}/{rkey}"
        operation = "update" if uri in self._records else "create"
        stored = StoredRecord(
            uri, make_cid(record), record, self.clock.now(), did, collection, rkey
        )
        self._records[uri] = stored
        now = self._next_time_us()
        commit = {
            "rev": self._tid(),
            "operation": operation,
            "collection": collection,
            "rkey": rkey,
            "record": record,
            "cid": stored.cid,
        }
        self._append(
            did, collection, {"did": did, "time_us": now, "kind": "commit", "commit": commit}, now
        )
        return stored

    def _remove(self, did: str, collection: str, rkey: str) -> bool:
        uri = f"at://{did}/{collection}/{rkey}"
        if self._records.pop(uri, None) is None:
            return False
        self.deleted.append(uri)
        now = self._next_time_us()
        commit = {
            "rev": self._tid(),
            "operation": "delete",
            "collection": collection,
            "rkey": rkey,
        }
        self._append(
            did, collection, {"did": did, "time_us": now, "kind": "commit", "commit": commit}, now
        )
        return True

    def _commit_body(self) -> dict[str, Any]:
        return {"cid": make_cid({"rev": self._tid()}), "rev": self._tid()}

    def _write_answer(self, stored: StoredRecord, headers: dict[str, str]) -> dict[str, Any]:
        """createRecord's and putRecord's output, with the rate-limit headers to send."""
        return {
            "uri": stored.uri,
            "cid": stored.cid,
            "commit": self._commit_body(),
            "validationStatus": "valid",
            "__headers__": headers,
        }

    async def _create_record(
        self, request: web.Request, body: dict[str, Any], did: str | None
    ) -> dict[str, Any]:
        collection, record = self._checked_write(body, did)
        headers = self._consume_points(str(did), "create")
        stored = self._write(str(did), collection, record, rkey=body.get("rkey"))
        return self._write_answer(stored, headers)

    async def _put_record(
        self, request: web.Request, body: dict[str, Any], did: str | None
    ) -> dict[str, Any]:
        collection, record = self._checked_write(body, did)
        rkey = str(body.get("rkey", ""))
        current = self._records.get(f"at://{did}/{collection}/{rkey}")
        swap = body.get("swapRecord")
        if swap is not None and (current is None or current.cid != swap):
            raise XrpcError(
                400, "InvalidSwap", f"Record was at {current.cid if current else None}"
            )
        exists = current is not None
        headers = self._consume_points(str(did), "update" if exists else "create")
        stored = self._write(str(did), collection, record, rkey=rkey)
        return self._write_answer(stored, headers)

    def _checked_write(self, body: dict[str, Any], did: str | None) -> tuple[str, dict[str, Any]]:
        repo, collection, record = body.get("repo"), body.get("collection"), body.get("record")
        account = self._account(str(repo)) if repo else None
        if account is None or account.did != did:
            raise XrpcError(400, "InvalidRequest", "Invalid repo: not the authorized account")
        if not isinstance(collection, str) or not isinstance(record, dict):
            raise XrpcError(400, "InvalidRequest", "Input must have collection and record")
        self._validate(collection, record)
        return collection, record

    async def _delete_record(
        self, request: web.Request, body: dict[str, Any], did: str | None
    ) -> dict[str, Any]:
        repo = self._account(str(body.get("repo", "")))
        if repo is None or repo.did != did:
            raise XrpcError(400, "InvalidRequest", "Invalid repo: not the authorized account")
        headers = self._consume_points(repo.did, "delete")
        self._remove(repo.did, str(body.get("collection")), str(body.get("rkey")))
        return {"commit": self._commit_body(), "__headers__": headers}

    async def _get_record(
        self, request: web.Request, body: dict[str, Any], _did: str | None
    ) -> dict[str, Any]:
        q = request.query
        account = self._account(q.get("repo", ""))
        repo = account.did if account else q.get("repo", "")
        stored = self._require(f"at://{repo}/{q.get('collection')}/{q.get('rkey')}")
        return {"uri": stored.uri, "cid": stored.cid, "value": stored.value}

    async def _list_records(
        self, request: web.Request, body: dict[str, Any], _did: str | None
    ) -> dict[str, Any]:
        q = request.query
        account = self._account(q.get("repo", ""))
        if account is None:
            raise XrpcError(400, "InvalidRequest", f"Could not find repo: {q.get('repo')}")
        limit = min(100, max(1, int(q.get("limit", "50"))))
        reverse = q.get("reverse") == "true"
        rows = self.records(account.did, q.get("collection", ""))
        if not reverse:
            rows.reverse()
        cursor = q.get("cursor")
        if cursor:
            rows = [r for r in rows if (r.rkey > cursor if reverse else r.rkey < cursor)]
        page = rows[:limit]
        out: dict[str, Any] = {
            "records": [{"uri": r.uri, "cid": r.cid, "value": r.value} for r in page]
        }
        if len(rows) > limit:
            out["cursor"] = page[-1].rkey
        return out
