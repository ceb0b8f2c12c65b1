"""Serialising actions to and from the ledger's JSON payload column."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson

from mhchat.actions import Action, ActionKind, Publish, Purpose, Reply, Repost, Unrepost
from mhchat.events import PlatformName, PostRef, RemoteId


def _ref(ref: PostRef) -> dict[str, Any]:
    return {"remote_id": ref.remote_id, "version": ref.version}


def _unref(data: dict[str, Any]) -> PostRef:
    return PostRef(remote_id=RemoteId(data["remote_id"]), version=data.get("version"))


def _time(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _untime(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def action_to_json(action: Action) -> str:
    data: dict[str, Any] = {
        "kind": action.kind.value,
        "key": action.key,
        "platform": action.platform,
        "purpose": action.purpose.value,
        "not_after": _time(action.not_after),
    }
    if isinstance(action, Publish):
        data["text"] = action.text
    elif isinstance(action, Reply):
        data.update(
            text=action.text,
            parent=_ref(action.parent),
            root=_ref(action.root),
            parent_author_id=action.parent_author_id,
            parent_mentions_host=action.parent_mentions_host,
        )
    elif isinstance(action, Repost):
        data["target"] = _ref(action.target)
    else:
        data.update(target=_ref(action.target), repost_id=action.repost_id)
    return orjson.dumps(data).decode()


def action_from_json(text: str) -> Action:
    data = orjson.loads(text)
    kind = ActionKind(data["kind"])
    common: dict[str, Any] = {
        "key": data["key"],
        "platform": PlatformName(data["platform"]),
        "purpose": Purpose(data["purpose"]),
        "not_after": _untime(data.get("not_after")),
    }
    if kind is ActionKind.PUBLISH:
        return Publish(text=data["text"], **common)
    if kind is ActionKind.REPLY:
        return Reply(
            text=data["text"],
            parent=_unref(data["parent"]),
            root=_unref(data["root"]),
            parent_author_id=data.get("parent_author_id"),
            parent_mentions_host=bool(data.get("parent_mentions_host")),
            **common,
        )
    if kind is ActionKind.REPOST:
        return Repost(target=_unref(data["target"]), **common)
    return Unrepost(target=_unref(data["target"]), repost_id=data.get("repost_id"), **common)


def action_target(action: Action) -> str | None:
    """The remote id an action is about, for finding it again (e.g. to undo a repost)."""
    if isinstance(action, Reply):
        return action.parent.remote_id
    if isinstance(action, Repost | Unrepost):
        return action.target.remote_id
    return None
