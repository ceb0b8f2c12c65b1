"""``mhchat replay`` over the real recorded payloads: detection, stored counts, idempotence."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from mhchat.config import Settings, parse_settings
from mhchat.replay import FACEBOOK, JETSTREAM, UNKNOWN, X_PAGES, X_STREAM, detect, read_objects
from mhchat.replay import replay as run_replay
from mhchat.store.open import open_database

# The recorded payloads, as the adapters' tests keep them (sources in each folder's README).
PAYLOADS = Path(__file__).resolve().parents[1] / "adapters"

X_FILES = [
    PAYLOADS / "x/payloads/brexit.jsonl",
    PAYLOADS / "x/payloads/kpop.jsonl",
    PAYLOADS / "x/payloads/streaming_output_with_error.jsonl",
]
JETSTREAM_FILE = PAYLOADS / "bluesky/payloads/jetstream-derived.jsonl"
FACEBOOK_FILES = sorted(
    [
        *(PAYLOADS / "facebook/payloads").glob("feed-change-*.json"),
        *(PAYLOADS / "facebook/payloads").glob("envelope-*.json"),
    ]
)


def settings(tmp_path: Path) -> Settings:
    doc: dict[str, Any] = {
        "chat": {"hashtag": "MHChat"},
        "database": {"url": f"sqlite:///{tmp_path / 'replay.db'}"},
        # The recorded Bluesky chat took place on Wednesday 2026-11-25 around 04:03 UTC: a
        # session then makes the facilitation decide (in dry-run) on those posts.
        "schedule": {"zone": "UTC", "weekday": "wednesday", "time": "04:00"},
    }
    return parse_settings(doc, {})


def lines(path: Path) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            found.append(json.loads(line))
        except ValueError:
            continue
    return found


def expected_x() -> set[str]:
    """Ids of the original posts (not retweets) the X files carry in ``data``."""
    ids: set[str] = set()
    for path in X_FILES:
        for page in lines(path):
            data = page["data"]
            tweets: list[dict[str, Any]] = data if isinstance(data, list) else [data]
            for tweet in tweets:
                refs = {r["type"] for r in tweet.get("referenced_tweets", [])}
                if "retweeted" not in refs:
                    ids.add(tweet["id"])
    return ids


def expected_bluesky() -> tuple[set[str], set[str]]:
    """(kept, deleted) at:// URIs of posts carrying the chat's hashtag in the Jetstream file."""
    created, deleted = set(), set()
    for event in lines(JETSTREAM_FILE):
        commit = event.get("commit") or {}
        if commit.get("collection") != "app.bsky.feed.post":
            continue
        uri = f"at://{event['did']}/app.bsky.feed.post/{commit['rkey']}"
        if commit["operation"] == "delete":
            deleted.add(uri)
        elif "#mhchat" in commit["record"]["text"].lower():
            created.add(uri)
    return created - deleted, created & deleted


def expected_facebook() -> set[str]:
    """Comment and post ids added or edited (with their text) and not removed.

    An edit of a post never seen carries the whole post, so it is stored like an addition.
    """
    added, removed = set(), set()
    for path in FACEBOOK_FILES:
        body = json.loads(path.read_text(encoding="utf-8"))
        changes = (
            [c for e in body["entry"] for c in e.get("changes", [])] if "entry" in body else [body]
        )
        for change in changes:
            value = change["value"]
            if value.get("item") not in ("comment", "status", "post"):
                continue
            remote = value.get("comment_id") or value.get("post_id")
            if value.get("verb") in ("add", "edited") and value.get("message"):
                added.add(remote)
            elif value.get("verb") == "remove":
                removed.add(remote)
    return added - removed


async def stored(s: Settings) -> dict[str, set[str]]:
    db = await open_database(s.database)
    try:
        async with db.read() as tx:
            rows = await tx.fetchall("SELECT platform, remote_id FROM posts")
    finally:
        await db.close()
    found: dict[str, set[str]] = {}
    for platform, remote_id in rows:
        found.setdefault(str(platform), set()).add(str(remote_id))
    return found


async def scalar(s: Settings, sql: str) -> list[tuple[Any, ...]]:
    db = await open_database(s.database)
    try:
        async with db.read() as tx:
            return [tuple(r) for r in await tx.fetchall(sql)]
    finally:
        await db.close()


class TestDetection:
    @pytest.mark.parametrize(
        ("path", "fmt"),
        [
            ("x/payloads/brexit.jsonl", X_PAGES),
            ("x/payloads/two_tweets.jsonl", X_PAGES),
            ("x/payloads/streaming_output_with_error.jsonl", X_STREAM),
            ("bluesky/payloads/jetstream-derived.jsonl", JETSTREAM),
            ("facebook/payloads/envelope-batched-two-pages-comment-add.json", FACEBOOK),
            ("facebook/payloads/feed-change-comment-add.json", FACEBOOK),
            ("x/payloads/counts.jsonl", UNKNOWN),
            ("facebook/payloads/error.json", UNKNOWN),
        ],
    )
    def test_format_from_content(self, path: str, fmt: str) -> None:
        objects, _ = read_objects(PAYLOADS / path)
        assert detect(objects) == fmt

    def test_a_truncated_stream_line_is_counted_not_fatal(self) -> None:
        objects, bad = read_objects(PAYLOADS / "x/payloads/streaming_output_with_error.jsonl")
        assert (len(objects), bad) == (7, 1)


class TestReplay:
    async def test_stores_what_the_recordings_hold_and_nothing_new_the_second_time(
        self, tmp_path: Path
    ) -> None:
        s = settings(tmp_path)
        files = [*X_FILES, JETSTREAM_FILE, *FACEBOOK_FILES]
        console = Console(file=io.StringIO())
        first = await run_replay(s, files, console=console, progress=False)

        kept, deleted = expected_bluesky()
        found = await stored(s)
        assert found["x"] == expected_x()
        assert len(found["x"]) > 30
        assert found["bluesky"] == kept
        assert found["facebook"] == expected_facebook()
        tombstones = await scalar(s, "SELECT remote_id FROM tombstones WHERE platform = 'bluesky'")
        assert {str(r[0]) for r in tombstones} == deleted
        assert first.stored >= len(found["x"]) + len(kept)
        assert all(f.problem is None for f in first.files)

        # Decisions about posts inside the recorded session were made, and only as dry runs.
        modes = await scalar(s, "SELECT DISTINCT mode FROM actions")
        assert modes == [("dry_run",)]
        actions = await scalar(s, "SELECT COUNT(*) FROM actions")

        second = await run_replay(s, files, console=console, progress=False)
        assert second.stored == 0
        assert await stored(s) == found
        assert await scalar(s, "SELECT COUNT(*) FROM actions") == actions

    async def test_a_later_bluesky_deletion_removes_the_post(self, tmp_path: Path) -> None:
        """A deletion names no hashtag; in a later import it must still find its post."""
        s = settings(tmp_path)
        creates, deletes = tmp_path / "creates.jsonl", tmp_path / "deletes.jsonl"
        with creates.open("w") as c, deletes.open("w") as d:
            for line in JETSTREAM_FILE.read_text(encoding="utf-8").splitlines():
                is_delete = '"operation":"delete"' in line.replace(" ", "")
                (d if is_delete else c).write(line + "\n")
        console = Console(file=io.StringIO())
        await run_replay(s, [creates], console=console, progress=False)
        kept, deleted = expected_bluesky()
        assert deleted
        assert (await stored(s))["bluesky"] == kept | deleted
        await run_replay(s, [deletes], console=console, progress=False)
        assert (await stored(s))["bluesky"] == kept
        tombstones = await scalar(s, "SELECT remote_id FROM tombstones WHERE platform = 'bluesky'")
        assert {str(r[0]) for r in tombstones} == deleted

    async def test_an_unknown_file_is_reported_and_the_rest_imported(self, tmp_path: Path) -> None:
        s = settings(tmp_path)
        junk = tmp_path / "notes.json"
        junk.write_text('{"hello": "world"}', encoding="utf-8")
        report = await run_replay(
            s, [junk, JETSTREAM_FILE], console=Console(file=io.StringIO()), progress=False
        )
        assert report.files[0].problem == "not a recognised platform format"
        assert report.files[1].format == JETSTREAM
        assert report.files[1].stored > 0
