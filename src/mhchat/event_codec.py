"""Domain events to and from bytes (orjson), for a bus that leaves the process.

The encoding follows the dataclasses of ``mhchat.events`` field by field: each dataclass
becomes an object tagged with its class name, datetimes become ISO 8601 text, enums their value,
tuples lists. Decoding only builds classes of ``mhchat.events`` (a closed list), never anything a
message names.
"""

from __future__ import annotations

import dataclasses
import hashlib
from datetime import datetime
from enum import Enum
from typing import Any

import orjson

from mhchat import events as ev
from mhchat.events import Event, PostReceived

_CLASSES: dict[str, type[Any]] = {
    cls.__name__: cls
    for cls in (
        ev.Author,
        ev.PostRef,
        ev.Post,
        ev.PostReceived,
        ev.PostEdited,
        ev.PostDeleted,
        ev.RepostSeen,
        ev.Budget,
        ev.Health,
        ev.AdapterHealthChanged,
        ev.PersonForgetRequested,
    )
}
_ENUMS: dict[str, type[Enum]] = {"HealthStatus": ev.HealthStatus}


class EventDecodeError(ValueError):
    """A message that is not an encoded mhchat event."""


def _encode(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out: dict[str, Any] = {"$t": type(value).__name__}
        for f in dataclasses.fields(value):
            out[f.name] = _encode(getattr(value, f.name))
        return out
    if isinstance(value, datetime):
        return {"$dt": value.isoformat()}
    if isinstance(value, Enum):
        return {"$e": type(value).__name__, "v": value.value}
    if isinstance(value, tuple | list):
        return [_encode(v) for v in value]
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_decode(v) for v in value)
    if not isinstance(value, dict):
        return value
    if "$dt" in value:
        return datetime.fromisoformat(value["$dt"])
    if "$e" in value:
        enum = _ENUMS.get(value["$e"])
        if enum is None:
            raise EventDecodeError(f"unknown enum {value['$e']!r}")
        return enum(value["v"])
    name = value.get("$t")
    cls = _CLASSES.get(name) if isinstance(name, str) else None
    if cls is None:
        raise EventDecodeError(f"unknown type {name!r}")
    kwargs = {k: _decode(v) for k, v in value.items() if k != "$t"}
    return cls(**kwargs)


def encode_event(event: Event) -> bytes:
    return orjson.dumps(_encode(event))


def decode_event(data: bytes) -> Event:
    try:
        value = _decode(orjson.loads(data))
    except (orjson.JSONDecodeError, TypeError, KeyError) as exc:
        raise EventDecodeError(str(exc)) from exc
    if not isinstance(
        value,
        ev.PostReceived
        | ev.PostEdited
        | ev.PostDeleted
        | ev.RepostSeen
        | ev.AdapterHealthChanged
        | ev.PersonForgetRequested,
    ):
        raise EventDecodeError(f"not an event: {type(value).__name__}")
    return value


def message_id(chat_id: str, event: Event, payload: bytes) -> str:
    """The id the bus dedupes on: the platform's post id for a new post, else a content hash.

    A post published twice (an adapter's overlap after a reconnect, a retried publish) carries
    the same id and is kept once; other events are equal only when their content is.
    """
    if isinstance(event, PostReceived):
        return f"{chat_id}:post:{event.post.platform}:{event.post.remote_id}"
    return f"{chat_id}:sha256:{hashlib.sha256(payload).hexdigest()}"
