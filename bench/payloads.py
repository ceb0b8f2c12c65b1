"""Real-format payloads in bulk, made from recorded payloads (the adapters' test copies).

Each generator copies one recorded payload (an X filtered-stream line, a Jetstream commit, a
Facebook ``feed`` change) and varies only ids, authors, times and text, so the parsers see the
same structure, field names and sizes as on the wire. Posts fall in the live hour of one
session (Wednesday 25 November 2026, 20:00 Europe/London), so the facilitation rules do all
their work (threads, reposts, welcomes) rather than skipping posts as out of hours.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from bench import ROOT
from mhchat_facebook.signature import sign_body

SESSION_START = datetime(2026, 11, 25, 20, 0, tzinfo=UTC)
PAGE_ID = "137542570280222"
PAGE_POST = f"{PAGE_ID}_139560936744456"
APP_SECRET = "bench-app-secret"
HOST_DID = "did:plc:benchhost0000000000000000"

_TEXTS = (
    "A{q} Sleep has been rough but today was kinder. #MHChat",
    "A{q} Walking helps me more than I expected, even ten minutes #MHChat",
    "A{q} I text a friend when it gets heavy, it really helps #MHChat",
    "A{q} Honestly still working this one out, thanks for asking #MHChat",
    "Lovely to be here again tonight #MHChat",
    "A{q} Journalling before bed, and no phone after ten #MHChat",
)


def recorded(platform: str, name: str) -> Path:
    """A recorded payload: the copy the adapter's tests keep in the repository, or the
    shared payloads folder (``MHCHAT_PAYLOADS``) when a checkout lacks it."""
    local = ROOT / "tests" / "adapters" / platform / "payloads" / Path(name).name
    if local.is_file():
        return local
    return Path(os.environ.get("MHCHAT_PAYLOADS", "/work/shared/payloads")) / platform / name


_ENDINGS = (
    "thanks all",
    "so true",
    "same here",
    "little steps",
    "be kind",
    "one day at a time",
    "it helps",
    "not easy",
    "we got this",
    "proud of us",
    "good question",
)


def _text(i: int) -> str:
    # Varied, as real answers are: identical texts from many accounts are what the spam check
    # flags, and a flagged post skips most of the decision work.
    base = _TEXTS[i % len(_TEXTS)].format(q=i % 6 + 1).removesuffix(" #MHChat")
    return f"{base}, {_ENDINGS[(i // 6) % len(_ENDINGS)]} ({i}) #MHChat"


def _at(i: int, n: int) -> datetime:
    """Spread ``n`` posts over the live hour."""
    return SESSION_START + timedelta(seconds=3599 * i / max(n, 1))


# -- X filtered stream -------------------------------------------------------------------------


def _x_template() -> dict[str, Any]:
    path = recorded("x", "twarc-csv/streaming_output_with_error.jsonl")
    first = path.read_text(encoding="utf-8").splitlines()[0]
    line: dict[str, Any] = json.loads(first)
    line.pop("__twarc", None)  # added by the recording tool, not part of X's message
    return line


def x_stream_lines(n: int, *, authors: int = 400, start: int = 0) -> list[bytes]:
    """``n`` filtered-stream lines (one post each, with ``includes`` and ``matching_rules``)."""
    template = _x_template()
    user_t = template["includes"]["users"][0]
    base_id = 1_860_000_000_000_000_000
    lines: list[bytes] = []
    for k in range(n):
        i = start + k
        msg = copy.deepcopy(template)
        tweet_id = str(base_id + i * 4096)
        author = str(9_000_000_000 + i % authors)
        data = msg["data"]
        text = _text(i)
        data.update(
            id=tweet_id,
            author_id=author,
            text=text,
            created_at=_at(k, n).isoformat().replace("+00:00", "Z"),
            conversation_id=tweet_id,
            edit_history_tweet_ids=[tweet_id],
        )
        data["entities"] = {
            "hashtags": [{"start": len(text) - 7, "end": len(text), "tag": "MHChat"}]
        }
        data.pop("referenced_tweets", None)
        if i % 4 and i > 0:
            # Most answers reply to an earlier post: the threads step has work to do.
            parent = str(base_id + (i - 1 - i % 3) * 4096)
            data["referenced_tweets"] = [{"type": "replied_to", "id": parent}]
            data["conversation_id"] = str(base_id + (i - i % 4) * 4096)
        user = dict(user_t, id=author, username=f"xuser{i % authors}", name=f"X user {i}")
        msg["includes"] = {"users": [user]}
        lines.append(orjson.dumps(msg))
    return lines


# -- Jetstream ---------------------------------------------------------------------------------


def _jetstream_post_template() -> dict[str, Any]:
    path = recorded("bluesky", "jetstream-derived.jsonl")
    for raw in path.read_text(encoding="utf-8").splitlines():
        frame = json.loads(raw)
        commit = frame.get("commit") or {}
        if commit.get("collection") == "app.bsky.feed.post" and "reply" not in commit.get(
            "record", {}
        ):
            return frame  # type: ignore[no-any-return]
    raise RuntimeError("no top-level post commit in the recorded Jetstream file")


def _did(i: int) -> str:
    return f"did:plc:{i:024d}"


def _rkey(i: int) -> str:
    return f"3n{i:011d}"


def jetstream_post(i: int, n: int, *, authors: int = 400, tagged: bool = True) -> bytes:
    """One post commit: tagged (the chat's) or an ordinary post from the wider network."""
    frame = copy.deepcopy(_POST_T)
    did = _did(i % authors if tagged else 10_000_000 + i)
    text = _text(i) if tagged else f"Just an ordinary post number {i} about my day"
    record = frame["commit"]["record"]
    record["text"] = text
    record["createdAt"] = _at(i, n).isoformat()
    if tagged:
        start = len(text.encode()) - 7
        record["facets"][0]["index"].update(byteStart=start, byteEnd=start + 7)
    else:
        record.pop("facets", None)
    if tagged and i % 4 and i > 0:
        j = i - 1 - i % 3
        uri = f"at://{_did(j % authors)}/app.bsky.feed.post/{_rkey(j)}"
        ref = {"uri": uri, "cid": "bafyreigzzxmbt6qkxkmx6tlf2vw6cpq7fyz7i2p3ddfb23lyur5j5tno2u"}
        record["reply"] = {"root": ref, "parent": ref}
    frame.update(did=did, time_us=1_795_579_424_605_000 + i * 1000)
    frame["commit"].update(rkey=_rkey(i), rev=f"3n{i:011d}r")
    return orjson.dumps(frame)


_POST_T: dict[str, Any] = {}


def _ensure_templates() -> None:
    if not _POST_T:
        _POST_T.update(_jetstream_post_template())


def jetstream_posts(n: int, *, authors: int = 400) -> list[bytes]:
    _ensure_templates()
    return [jetstream_post(i, n, authors=authors) for i in range(n)]


def _other_commit(i: int, kind: str) -> bytes:
    did = _did(20_000_000 + i % 50_000)
    time_us = 1_795_579_424_605_000 + i * 500
    subject = {
        "uri": f"at://{_did(30_000_000 + i % 9973)}/app.bsky.feed.post/{_rkey(i)}",
        "cid": "bafyreigzzxmbt6qkxkmx6tlf2vw6cpq7fyz7i2p3ddfb23lyur5j5tno2u",
    }
    created = _at(i % 3600, 3600).isoformat()
    frame: dict[str, Any]
    if kind in ("like", "repost"):
        collection = f"app.bsky.feed.{kind}"
        record = {"$type": collection, "subject": subject, "createdAt": created}
        frame = _commit(did, time_us, "create", collection, _rkey(i), record)
    elif kind == "follow":
        record = {
            "$type": "app.bsky.graph.follow",
            "subject": _did(40_000_000 + i % 7919),
            "createdAt": created,
        }
        frame = _commit(did, time_us, "create", "app.bsky.graph.follow", _rkey(i), record)
    elif kind == "delete":
        collection = ("app.bsky.feed.like", "app.bsky.feed.post", "app.bsky.graph.follow")[i % 3]
        frame = {
            "did": did,
            "time_us": time_us,
            "kind": "commit",
            "commit": {
                "rev": f"3m{i:011d}d",
                "operation": "delete",
                "collection": collection,
                "rkey": _rkey(i),
            },
        }
    elif kind == "identity":
        frame = {
            "did": did,
            "time_us": time_us,
            "kind": "identity",
            "identity": {"did": did, "seq": i, "time": created, "handle": f"user{i}.bsky.social"},
        }
    else:
        raise ValueError(kind)
    return orjson.dumps(frame)


def _commit(
    did: str, time_us: int, op: str, collection: str, rkey: str, record: dict[str, Any]
) -> dict[str, Any]:
    return {
        "did": did,
        "time_us": time_us,
        "kind": "commit",
        "commit": {
            "rev": f"3m{time_us % 10**11:011d}",
            "operation": op,
            "collection": collection,
            "rkey": rkey,
            "record": record,
            "cid": "bafyreib2rxk3rybk3aobmv5cjuql3bm2twh4jo5uxgf5ckkm6kqjjx7vpm",
        },
    }


# An estimate of the whole network's mix by kind (likes dominate); the chat's own posts are a
# tiny share. Out of 1000 frames:
NETWORK_MIX = (
    ("like", 560),
    ("post", 120),
    ("follow", 110),
    ("repost", 90),
    ("delete", 80),
    ("identity", 35),
    ("tagged", 5),
)


def jetstream_network(n: int, *, authors: int = 400) -> tuple[list[str], int]:
    """A stream with the network's mix; returns (frames, number of frames tagged for the chat)."""
    _ensure_templates()
    slots: list[str] = []
    for kind, share in NETWORK_MIX:
        slots += [kind] * share
    frames: list[str] = []
    tagged = 0
    for i in range(n):
        kind = slots[(i * 7919) % len(slots)]
        if kind == "tagged":
            frames.append(jetstream_post(tagged, n, authors=authors).decode())
            tagged += 1
        elif kind == "post":
            frames.append(jetstream_post(i, n, tagged=False).decode())
        else:
            frames.append(_other_commit(i, kind).decode())
    return frames, tagged


# -- Facebook page webhooks ------------------------------------------------------------------


def _fb_change_template() -> dict[str, Any]:
    path = recorded("facebook", "webhooks/feed-change-comment-add.json")
    change: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return change


def facebook_changes(n: int, *, authors: int = 400, start: int = 0) -> Iterator[dict[str, Any]]:
    template = _fb_change_template()
    for k in range(n):
        i = start + k
        change = copy.deepcopy(template)
        value = change["value"]
        value["from"] = {"id": str(100_000_000_000_000 + i % authors), "name": f"FB user {i}"}
        value["comment_id"] = f"139560936744456_{200_000_000_000_000 + i}"
        value["post_id"] = PAGE_POST
        # Top-level comments have the post as parent; replies name an earlier comment.
        parent = i - 1 - i % 3
        value["parent_id"] = (
            f"139560936744456_{200_000_000_000_000 + parent}" if i % 4 and i > 0 else PAGE_POST
        )
        value["created_time"] = int(_at(k, n).timestamp())
        value["message"] = _text(i)
        yield change


def facebook_bodies(
    n_changes: int, per_delivery: int, *, authors: int = 400, start: int = 0
) -> list[bytes]:
    """Webhook bodies as Meta sends them: one page entry, ``per_delivery`` feed changes."""
    changes = list(facebook_changes(n_changes, authors=authors, start=start))
    bodies = []
    for offset in range(0, len(changes), per_delivery):
        group = changes[offset : offset + per_delivery]
        body = {
            "object": "page",
            "entry": [
                {
                    "id": PAGE_ID,
                    "time": int(SESSION_START.timestamp() * 1000) + offset,
                    "changes": group,
                }
            ],
        }
        # Meta escapes "/" and non-ASCII; json.dumps' defaults are close enough for size.
        bodies.append(json.dumps(body).encode())
    return bodies


def signed(body: bytes) -> str:
    return sign_body(body, APP_SECRET)
