"""``mhchat replay FILE...``: import recorded platform payloads into the store.

Each file's format is detected from its content, not its name:

- X API v2 pages: a recent-search (or lookup) response ``{"data": [...], "includes", "meta"}``,
  as one JSON document or as twarc's JSON Lines (one page a line, with twarc's ``__twarc`` key);
- X filtered-stream lines: ``{"data": {...}, "includes", "matching_rules"}`` a line;
- Jetstream events: ``{"did", "time_us", "kind", "commit" | "identity" | "account"}`` a line;
- Facebook page webhook bodies: ``{"object": "page", "entry": [...]}`` (JSON or JSON Lines), or
  a bare ``{"field": "feed", "value": {...}}`` change as Meta's documentation prints them.

Every payload goes through the real adapters' own parsers (``mhchat_x.mapping.Normaliser``,
``mhchat_bluesky.jetstream.FrameParser`` and ``events_from_commit``,
``mhchat_facebook.mapping.parse_delivery``), then through the real ``IngestWorker`` with the
facilitation handler, so posts are deduplicated, threaded and triaged exactly as in the live
service. Every action purpose runs in dry-run: a replay records what the service would have done
and never posts anything. Replaying the same files again stores nothing new.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from mhchat.actions import Purpose
from mhchat.bus import BusSink, EventBus
from mhchat.clock import Clock, SystemClock
from mhchat.config import Settings
from mhchat.events import Event, PlatformName, PostDeleted
from mhchat.ingest import IngestWorker
from mhchat.ledger import Mode
from mhchat.store.chats import ensure_chat
from mhchat.store.migrate import migrate
from mhchat.store.open import open_database

X_PAGES = "x-pages"
X_STREAM = "x-stream"
JETSTREAM = "jetstream"
FACEBOOK = "facebook-webhooks"
UNKNOWN = "unknown"

PLATFORM_OF = {X_PAGES: "x", X_STREAM: "x", JETSTREAM: "bluesky", FACEBOOK: "facebook"}


@dataclass(slots=True)
class FileReport:
    path: Path
    format: str = UNKNOWN
    objects: int = 0
    """Pages, lines or webhook bodies read."""
    unreadable: int = 0
    """Lines that are not JSON (a truncated stream line, a broken record)."""
    events: int = 0
    stored: int = 0
    duplicates: int = 0
    deletions: int = 0
    problem: str | None = None


@dataclass(slots=True)
class ReplayReport:
    files: list[FileReport] = field(default_factory=list)

    @property
    def stored(self) -> int:
        return sum(f.stored for f in self.files)

    @property
    def events(self) -> int:
        return sum(f.events for f in self.files)

    def table(self) -> Table:
        table = Table(title="mhchat replay")
        table.add_column("file", overflow="fold")
        table.add_column("format", overflow="fold")
        for name in ("read", "unreadable", "events", "stored", "duplicates"):
            table.add_column(name, justify="right")
        for f in self.files:
            table.add_row(
                f.path.name,
                f.format if f.problem is None else f"{f.format}: {f.problem}",
                str(f.objects),
                str(f.unreadable),
                str(f.events),
                str(f.stored),
                str(f.duplicates),
            )
        return table


# -- reading and detecting -------------------------------------------------------------------


def read_objects(path: Path) -> tuple[list[Any], int]:
    """The JSON values of a file (one document, or JSON Lines) and the unreadable lines."""
    data = path.read_bytes()
    with contextlib.suppress(orjson.JSONDecodeError):
        whole = orjson.loads(data)
        return (whole if isinstance(whole, list) else [whole]), 0
    found: list[Any] = []
    bad = 0
    for line in data.splitlines():
        if not line.strip():
            continue
        try:
            found.append(orjson.loads(line))
        except orjson.JSONDecodeError:
            bad += 1
    return found, bad


def detect(objects: list[Any]) -> str:
    """The format of a file from its first recognisable object."""
    for obj in objects:
        if not isinstance(obj, Mapping):
            continue
        if obj.get("object") == "page" and isinstance(obj.get("entry"), list):
            return FACEBOOK
        if obj.get("field") == "feed" and isinstance(obj.get("value"), Mapping):
            return FACEBOOK
        if "time_us" in obj and "did" in obj and "kind" in obj:
            return JETSTREAM
        data = obj.get("data")
        if isinstance(data, Mapping) and "id" in data:
            return X_STREAM if "matching_rules" in obj else X_PAGES
        if isinstance(data, list) and all(
            isinstance(t, Mapping) and "id" in t and "text" in t for t in data
        ):
            return X_PAGES
    return UNKNOWN


# -- the adapters' parsers ---------------------------------------------------------------------


class Parsers:
    """The real adapters' parsing functions, set up for one chat."""

    def __init__(self, settings: Settings) -> None:
        from mhchat_bluesky.jetstream import FrameParser  # noqa: PLC0415 - adapters are optional
        from mhchat_x.mapping import HostIdentity, Normaliser  # noqa: PLC0415

        self.hashtag = settings.chat.hashtag
        options = {a.name: a.options for a in settings.adapters}
        x = options.get("x", {})
        host_name = x.get("host_username")
        self.x = Normaliser(
            PlatformName("x"),
            HostIdentity(user_id=None, username=str(host_name) if host_name else None),
        )
        self.page_id: str | None = (
            str(options["facebook"]["page_id"])
            if "page_id" in options.get("facebook", {})
            else None
        )
        self.bluesky_authors: set[str] = set()
        self.bluesky_handles: dict[str, str] = {}
        self.bluesky_counters: Counter[str] = Counter()
        self.frames = FrameParser(
            tag=self.hashtag,
            host_did=lambda: None,
            authors=lambda: self.bluesky_authors,
            note_author=self.bluesky_authors.add,
            counters=self.bluesky_counters,
        )

    def events(self, fmt: str, obj: Any) -> list[Event]:
        if fmt in (X_PAGES, X_STREAM):
            return list(self.x.parse(obj).events) if isinstance(obj, Mapping) else []
        if fmt == JETSTREAM:
            return self._jetstream(obj)
        if fmt == FACEBOOK:
            return self._facebook(obj)
        return []

    def _jetstream(self, obj: Any) -> list[Event]:
        from mhchat_bluesky.mapping import (  # noqa: PLC0415
            MalformedRecord,
            Profile,
            events_from_commit,
        )

        if not isinstance(obj, Mapping):
            return []
        identity = obj.get("identity")
        if obj.get("kind") == "identity" and isinstance(identity, Mapping):
            if isinstance(identity.get("handle"), str):
                self.bluesky_handles[str(obj.get("did"))] = str(identity["handle"])
            return []
        frame = orjson.dumps(obj).decode()
        if not self.frames.wanted(frame):
            return []
        _, item = self.frames.parse(frame)
        if item is None or item.commit is None:
            return []
        did = item.commit.did
        try:
            return events_from_commit(
                item.commit,
                platform=PlatformName("bluesky"),
                profile=Profile(handle=self.bluesky_handles.get(did, did)),
                host_did=None,
            )
        except MalformedRecord:
            self.bluesky_counters["malformed_frames"] += 1
            return []

    def _facebook(self, obj: Any) -> list[Event]:
        from mhchat_facebook.mapping import parse_delivery  # noqa: PLC0415

        if not isinstance(obj, Mapping):
            return []
        now = datetime.now(UTC)
        body: Mapping[str, Any] = obj
        if obj.get("field") == "feed":
            # A bare change, as the documentation prints them: wrap it as Meta delivers it.
            page = self.page_id or "replay"
            body = {"object": "page", "entry": [{"id": page, "changes": [obj]}]}
        events: list[Event] = []
        entries = body.get("entry")
        for entry in entries if isinstance(entries, list) else []:
            page_id = self.page_id or str(entry.get("id") if isinstance(entry, Mapping) else "")
            envelope = {"object": "page", "entry": [entry]}
            parsed = parse_delivery(
                envelope, platform=PlatformName("facebook"), page_id=page_id, received_at=now
            )
            events += parsed.events
        return events


# -- replay ------------------------------------------------------------------------------------


def dry_run_modes() -> dict[Purpose, Mode]:
    return dict.fromkeys(Purpose, Mode.DRY_RUN)


async def replay(
    settings: Settings,
    paths: list[Path],
    *,
    console: Console | None = None,
    progress: bool = True,
    clock: Clock | None = None,
) -> ReplayReport:
    """Import the files into the configured database; return what was read and stored.

    ``clock`` stamps the import (first-seen times of new participants): an archive of an old
    chat can be imported as of that day.
    """
    from mhchat.facilitation.handler import FacilitationHandler  # noqa: PLC0415
    from mhchat.facilitation.settings import facilitation_settings  # noqa: PLC0415

    console = console or Console()
    report = ReplayReport()
    loaded: list[tuple[FileReport, list[Any]]] = []
    for path in paths:
        file = FileReport(path=path)
        report.files.append(file)
        try:
            objects, file.unreadable = read_objects(path)
        except OSError as exc:
            file.problem = f"cannot be read ({exc.strerror})"
            continue
        file.format = detect(objects)
        if file.format == UNKNOWN:
            file.problem = "not a recognised platform format"
            continue
        loaded.append((file, objects))

    db = await open_database(settings.database)
    try:
        await migrate(db)
        clock = clock or SystemClock()
        await ensure_chat(db, settings.chat.chat_id, settings.chat.hashtag, clock.now())
        handler = FacilitationHandler(facilitation_settings(settings), modes=dry_run_modes())
        bus = EventBus(settings.bus.capacity)
        worker = IngestWorker(
            bus=bus,
            db=db,
            clock=clock,
            chat_id=settings.chat.chat_id,
            handlers=[handler],
            max_batch=settings.bus.max_batch,
            keep_raw=settings.database.keep_raw,
        )
        parsers = Parsers(settings)
        # A Bluesky deletion names no hashtag: the stream filter passes it only for an author
        # it knows, and an earlier import's authors are known by the posts it stored.
        async with db.read() as tx:
            rows = await tx.fetchall(
                "SELECT DISTINCT author_id FROM posts WHERE chat_id = ? AND platform = ?",
                (settings.chat.chat_id, "bluesky"),
            )
        parsers.bluesky_authors.update(str(r[0]) for r in rows)
        task = asyncio.create_task(worker.run(), name="replay-ingest")
        try:
            await _feed(
                loaded=loaded,
                parsers=parsers,
                bus=bus,
                worker=worker,
                console=console,
                progress=progress,
            )
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    finally:
        await db.close()
    return report


async def _feed(
    *,
    loaded: list[tuple[FileReport, list[Any]]],
    parsers: Parsers,
    bus: EventBus,
    worker: IngestWorker,
    console: Console,
    progress: bool,
) -> None:
    total = sum(len(objects) for _, objects in loaded)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, console=console, disable=not progress, transient=True) as bar:
        task = bar.add_task("replaying", total=total)
        for file, objects in loaded:
            sink = BusSink(bus, PlatformName(PLATFORM_OF[file.format]))
            before = (worker.stats.stored, worker.stats.duplicates)
            bar.update(task, description=file.path.name)
            for obj in objects:
                events = parsers.events(file.format, obj)
                file.objects += 1
                file.events += len(events)
                file.deletions += sum(isinstance(e, PostDeleted) for e in events)
                if events:
                    await sink.publish(events)
                bar.advance(task)
            # One file at a time, so its figures are its own.
            await bus.join()
            file.stored = worker.stats.stored - before[0]
            file.duplicates = worker.stats.duplicates - before[1]


def iter_paths(names: list[str]) -> Iterator[Path]:
    for name in names:
        path = Path(name)
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.suffix in (".json", ".jsonl"))
        else:
            yield path


def main(args: argparse.Namespace) -> int:
    """The command: import, print the table, exit 2 if a file could not be used."""
    from mhchat.cli import settings_or_exit  # noqa: PLC0415

    settings = settings_or_exit(args.config)
    console = Console()
    report = asyncio.run(replay(settings, list(iter_paths(args.files)), console=console))
    console.print(report.table())
    # Only a SQLite path is shown: a PostgreSQL URL may carry a password.
    where = settings.database.sqlite_path or "the PostgreSQL database"
    console.print(
        f"{report.events} events read, {report.stored} new posts stored in {where}"
        f" (chat {settings.chat.chat_id}); the facilitation ran in dry-run: nothing was posted."
    )
    return 2 if any(f.problem for f in report.files) else 0
