"""Returning participants' history: an archive of an earlier chat, imported with ``replay``.

A returning participant is someone the service has seen before, weeks ago. The demo writes
their earlier posts as each platform's own payloads (an X recent-search page, Jetstream commit
events, Facebook page webhook bodies) and imports them with ``mhchat.replay`` on a clock set
to that earlier day, exactly as a host imports an archive. Tonight they are then known people,
not first-timers.
"""

from __future__ import annotations

import hashlib
import itertools
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from mhchat.config import Settings
from mhchat.demo.clock import SpeedClock
from mhchat.demo.script import HASHTAG, Script, Step
from mhchat.demo.world import World
from mhchat.replay import replay

HISTORY_DAYS = 28
"""How long before tonight's chat the returning participants' earlier posts were made."""
TWEPOCH_MS = 1288834974657
_TID = "234567abcdefghijklmnopqrstuvwxyz"


def history_start(starts_at: datetime) -> datetime:
    return starts_at - timedelta(days=HISTORY_DAYS)


def _when(step: Step, starts_at: datetime) -> datetime:
    # Keep the minutes of the script's offset, moved back to that earlier day.
    return history_start(starts_at) + timedelta(minutes=step.at)


def _iso_ms(when: datetime) -> str:
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _snowflake(when: datetime, seq: int) -> str:
    return str(((int(when.timestamp() * 1000) - TWEPOCH_MS) << 22) | (seq & 0xFFF))


def _tid(micros: int) -> str:
    value = (micros << 10) | 7
    return "".join(_TID[(value >> (5 * i)) & 31] for i in reversed(range(13)))


def _cid(value: object) -> str:
    return "bafyrei" + hashlib.sha256(orjson.dumps(value)).hexdigest()[:52]


def x_page(steps: list[Step], world: World, starts_at: datetime) -> dict[str, Any]:
    """A recent-search response page (``data``, ``includes.users``, ``meta``)."""
    data: list[dict[str, Any]] = []
    users: dict[str, dict[str, str]] = {}
    for seq, step in enumerate(steps):
        person = world.script.person(step.author)
        user_id = world.x.user_id(person.handle)
        when = _when(step, starts_at)
        tweet_id = _snowflake(when, seq)
        world.remote[step.id] = tweet_id
        tag = f"#{HASHTAG}"
        start = step.text.index(tag)
        data.append(
            {
                "id": tweet_id,
                "text": step.text,
                "author_id": user_id,
                "created_at": _iso_ms(when),
                "conversation_id": tweet_id,
                "edit_history_tweet_ids": [tweet_id],
                "lang": "en",
                "entities": {
                    "hashtags": [{"start": start, "end": start + len(tag), "tag": HASHTAG}]
                },
            }
        )
        users[user_id] = {"id": user_id, "username": person.handle, "name": person.name}
    newest = max((d["id"] for d in data), key=int, default=None)
    oldest = min((d["id"] for d in data), key=int, default=None)
    return {
        "data": data,
        "includes": {"users": list(users.values())},
        "meta": {"newest_id": newest, "oldest_id": oldest, "result_count": len(data)},
    }


def jetstream_events(steps: list[Step], world: World, starts_at: datetime) -> list[dict[str, Any]]:
    """Jetstream commit events, one per post, in time order."""
    events: list[dict[str, Any]] = []
    last = 0
    for step in steps:
        person = world.script.person(step.author)
        did = world.dids[person.key]
        micros = max(last + 1, int(_when(step, starts_at).timestamp() * 1_000_000))
        last = micros
        rkey = _tid(micros)
        record = {
            "$type": "app.bsky.feed.post",
            "text": step.text,
            "createdAt": _iso_ms(_when(step, starts_at)),
            "langs": ["en"],
            "facets": world.bluesky.detect_facets(step.text),
        }
        world.remote[step.id] = f"at://{did}/app.bsky.feed.post/{rkey}"
        events.append(
            {
                "did": did,
                "time_us": micros,
                "kind": "commit",
                "commit": {
                    "rev": rkey,
                    "operation": "create",
                    "collection": "app.bsky.feed.post",
                    "rkey": rkey,
                    "record": record,
                    "cid": _cid(record),
                },
            }
        )
    return events


def facebook_bodies(steps: list[Step], world: World, starts_at: datetime) -> list[dict[str, Any]]:
    """Page webhook bodies: the page's post of that day, then the comments on it."""
    page = world.facebook.page
    ids = itertools.count(120000000000001)
    post_id = f"{page.id}_{next(ids)}"
    first = history_start(starts_at) - timedelta(minutes=10)
    opening = {"item": "status", "post_id": post_id, "published": 1, "message": "Tonight's chat!"}
    bodies = [_fb_body(page.id, page.id, page.name, first, opening)]
    for step in steps:
        person = world.script.person(step.author)
        comment_id = f"{post_id.split('_')[1]}_{next(ids)}"
        world.remote[step.id] = comment_id
        value = {
            "item": "comment",
            "comment_id": comment_id,
            "post_id": post_id,
            "parent_id": post_id,
            "message": step.text,
        }
        bodies.append(_fb_body(page.id, person.handle, person.name, _when(step, starts_at), value))
    return bodies


def _fb_body(
    page_id: str, sender: str, name: str, when: datetime, value: dict[str, Any]
) -> dict[str, Any]:
    change = {
        "from": {"id": sender, "name": name},
        **value,
        "verb": "add",
        "created_time": int(when.timestamp()),
    }
    return {
        "object": "page",
        "entry": [
            {
                "id": page_id,
                "time": int(when.timestamp() * 1000),
                "changes": [{"field": "feed", "value": change}],
            }
        ],
    }


def write_history(script: Script, world: World, starts_at: datetime, folder: Path) -> list[Path]:
    """Write the archive files (one per platform) and return their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    steps = [s for s in script.steps if s.history]
    by = {p: [s for s in steps if s.platform == p] for p in ("x", "bluesky", "facebook")}
    x = folder / "x-search-page.json"
    x.write_bytes(orjson.dumps(x_page(by["x"], world, starts_at), option=orjson.OPT_INDENT_2))
    bluesky = folder / "bluesky-jetstream.jsonl"
    bluesky.write_bytes(
        b"".join(
            orjson.dumps(e) + b"\n" for e in jetstream_events(by["bluesky"], world, starts_at)
        )
    )
    facebook = folder / "facebook-webhooks.jsonl"
    facebook.write_bytes(
        b"".join(
            orjson.dumps(b) + b"\n" for b in facebook_bodies(by["facebook"], world, starts_at)
        )
    )
    return [x, bluesky, facebook]


async def import_history(
    settings: Settings, script: Script, world: World, starts_at: datetime, folder: Path
) -> int:
    """Import the returning participants' earlier posts; returns how many were stored."""
    files = write_history(script, world, starts_at, folder)
    clock = SpeedClock(history_start(starts_at), speed=1.0)
    report = await replay(settings, files, clock=clock, progress=False)
    problems = [f"{f.path.name}: {f.problem}" for f in report.files if f.problem]
    if problems:
        raise RuntimeError(
            "the demo's history archive could not be imported: " + "; ".join(problems)
        )
    return report.stored
