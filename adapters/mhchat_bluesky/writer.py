"""Actions on Bluesky: posts with facets, threaded replies, reposts, unreposts, outcome checks.

Every write is one createRecord or deleteRecord on the host's repo. Replies and reposts need
strong refs (uri + cid); a ref without its cid is completed by reading the record, and a reply
always reads its parent first, because the PDS accepts a reply to a deleted post.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from typing import Any

from atproto_client import models  # type: ignore[import-untyped]

from mhchat.actions import Action, Publish, Reply, Repost, Sent, Skipped, Unrepost
from mhchat.clock import Clock
from mhchat.errors import PermanentFailure

from .client import BlueskyClient
from .config import BlueskyConfig
from .mapping import POST, REPOST, MalformedRecord, split_uri
from .richtext import build_facets, check_length

_OUTCOME_SCAN = 100


def _iso(clock: Clock) -> str:
    return clock.now().isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Writer:
    def __init__(self, client: BlueskyClient, config: BlueskyConfig, clock: Clock) -> None:
        self._client = client
        self._config = config
        self._clock = clock
        self._handles: dict[str, str | None] = {}

    async def _did(self) -> str:
        return await self._client.ensure_session()

    # ------------------------------------------------------------------ reads

    async def fetch(self, uri: str) -> tuple[str, str, dict[str, Any]]:
        """(uri, cid, record) of a record; PermanentFailure if it no longer exists."""
        try:
            did, collection, rkey = split_uri(uri)
        except MalformedRecord as exc:
            raise PermanentFailure(str(exc)) from exc
        params = models.ComAtprotoRepoGetRecord.Params(repo=did, collection=collection, rkey=rkey)
        try:
            answer = await self._client.call(
                "getRecord", lambda: self._client.sdk.com.atproto.repo.get_record(params)
            )
        except PermanentFailure as exc:
            if "RecordNotFound" in str(exc):
                raise PermanentFailure(f"the post {uri} no longer exists") from exc
            raise
        return str(answer.uri), str(answer.cid), models.get_model_as_dict(answer.value)

    async def _resolve_handle(self, handle: str) -> str | None:
        if handle not in self._handles:
            params = models.ComAtprotoIdentityResolveHandle.Params(handle=handle)
            try:
                answer = await self._client.call(
                    "resolveHandle",
                    lambda: self._client.sdk.com.atproto.identity.resolve_handle(params),
                )
                self._handles[handle] = str(answer.did)
            except PermanentFailure:
                self._handles[handle] = None
        return self._handles[handle]

    async def _list(self, collection: str, pages: int = 1) -> list[dict[str, Any]]:
        """Our most recent records of a collection (newest first)."""
        out: list[dict[str, Any]] = []
        cursor = None
        for _ in range(pages):
            params = models.ComAtprotoRepoListRecords.Params(
                repo=await self._did(), collection=collection, limit=_OUTCOME_SCAN, cursor=cursor
            )
            answer = await self._client.call(
                "listRecords", partial(self._client.sdk.com.atproto.repo.list_records, params)
            )
            out += [
                {"uri": str(r.uri), "cid": str(r.cid), "value": models.get_model_as_dict(r.value)}
                for r in answer.records
            ]
            cursor = answer.cursor
            if not cursor:
                break
        return out

    # ----------------------------------------------------------------- writes

    async def _create(self, collection: str, record: Mapping[str, Any], what: str) -> str:
        data = models.ComAtprotoRepoCreateRecord.Data(
            repo=await self._did(), collection=collection, record=dict(record)
        )
        answer = await self._client.call(
            what, lambda: self._client.sdk.com.atproto.repo.create_record(data), write="create"
        )
        return str(answer.uri)

    async def _post_record(self, text: str) -> dict[str, Any]:
        check_length(text)
        record: dict[str, Any] = {
            "$type": POST,
            "text": text,
            "createdAt": _iso(self._clock),
            "langs": list(self._config.langs),
        }
        facets = await build_facets(text, self._resolve_handle)
        if facets:
            record["facets"] = [models.get_model_as_dict(f) for f in facets]
        return record

    async def publish(self, action: Publish) -> Sent:
        record = await self._post_record(action.text)
        return Sent(remote_id=await self._create(POST, record, "createRecord(post)"))

    async def reply(self, action: Reply) -> Sent:
        record = await self._post_record(action.text)
        parent_uri, parent_cid, parent = await self.fetch(action.parent.remote_id)
        root = (parent.get("reply") or {}).get("root")
        if not (isinstance(root, Mapping) and root.get("uri") and root.get("cid")):
            root = {"uri": parent_uri, "cid": parent_cid}
        record["reply"] = {
            "root": {"uri": str(root["uri"]), "cid": str(root["cid"])},
            "parent": {"uri": parent_uri, "cid": parent_cid},
        }
        return Sent(remote_id=await self._create(POST, record, "createRecord(reply)"))

    async def repost(self, action: Repost) -> Sent:
        uri: str = action.target.remote_id
        cid = action.target.version
        if not cid:
            uri, cid, _ = await self.fetch(uri)
        record = {
            "$type": REPOST,
            "subject": {"uri": uri, "cid": cid},
            "createdAt": _iso(self._clock),
        }
        return Sent(remote_id=await self._create(REPOST, record, "createRecord(repost)"))

    async def unrepost(self, action: Unrepost) -> Sent | Skipped:
        repost_uri = action.repost_id or await self._find_repost(action.target.remote_id)
        if repost_uri is None:
            return Skipped(reason="no repost of that post by the host account was found")
        try:
            did, collection, rkey = split_uri(repost_uri)
        except MalformedRecord as exc:
            raise PermanentFailure(str(exc)) from exc
        if did != await self._did() or collection != REPOST:
            raise PermanentFailure(f"{repost_uri} is not a repost record of the host account")
        data = models.ComAtprotoRepoDeleteRecord.Data(repo=did, collection=REPOST, rkey=rkey)
        await self._client.call(
            "deleteRecord(repost)",
            lambda: self._client.sdk.com.atproto.repo.delete_record(data),
            write="delete",
        )
        return Sent(remote_id=repost_uri)

    async def _find_repost(self, subject_uri: str) -> str | None:
        for row in await self._list(REPOST, pages=3):
            if (row["value"].get("subject") or {}).get("uri") == subject_uri:
                return str(row["uri"])
        return None

    # --------------------------------------------------------------- outcomes

    async def check_outcome(self, action: Action) -> Sent | None:
        """Whether an action whose answer was lost took effect, judged from our own repo."""
        if isinstance(action, Repost):
            found = await self._find_repost(action.target.remote_id)
            return Sent(remote_id=found) if found else None
        if isinstance(action, Unrepost):
            if await self._find_repost(action.target.remote_id) is None:
                return Sent(remote_id=action.repost_id or "")
            return None
        parent = action.parent.remote_id if isinstance(action, Reply) else None
        for row in await self._list(POST):
            value = row["value"]
            if value.get("text") != action.text:
                continue
            if ((value.get("reply") or {}).get("parent") or {}).get("uri") == parent:
                return Sent(remote_id=str(row["uri"]))
        return None
