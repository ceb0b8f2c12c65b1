"""The intake spool: on disk before the answer, bounded, group-committed, intake first."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest

from mhchat.config import parse_settings
from mhchat.spool import Spool, SpoolError, SpoolPort
from mhchat.web.app import build_app
from mhchat.web.keys import RUNTIME

NOW = datetime(2026, 11, 25, 20, 5, tzinfo=UTC)


@contextlib.asynccontextmanager
async def flooding(spool: Spool, source: str) -> AsyncIterator[None]:
    """Deliveries arriving every 5 ms for as long as the block runs."""
    stop = asyncio.Event()

    async def flood() -> None:
        while not stop.is_set():
            await spool.put(source, b"x", NOW)
            await asyncio.sleep(0.005)

    task = asyncio.create_task(flood())
    try:
        yield
    finally:
        stop.set()
        await task


async def test_a_delivery_is_on_disk_when_put_returns(tmp_path: Path) -> None:
    spool = await Spool(tmp_path / "intake.spool").open()
    assert await spool.put("default:facebook", b'{"object": "page"}', NOW)
    # Another connection (another process after a crash) sees it at once.
    rows = sqlite3.connect(tmp_path / "intake.spool").execute("SELECT body FROM spool").fetchall()
    assert rows == [(b'{"object": "page"}',)]
    await spool.close()


async def test_what_is_not_done_survives_a_restart_and_done_removes_it(tmp_path: Path) -> None:
    path = tmp_path / "intake.spool"
    spool = await Spool(path).open()
    for i in range(3):
        assert await spool.put("default:facebook", f"body {i}".encode(), NOW)
    await spool.close()

    again = await Spool(path).open()
    assert again.depth() == 3
    taken = await again.take("default:facebook", 2)
    assert [t.body for t in taken] == [b"body 0", b"body 1"]
    assert all(t.received_at == NOW for t in taken)
    await again.done("default:facebook", [t.id for t in taken])
    assert again.depth("default:facebook") == 1
    rest = await again.take("default:facebook", 10)
    assert [t.body for t in rest] == [b"body 2"]
    await again.close()


async def test_sources_are_kept_apart(tmp_path: Path) -> None:
    spool = await Spool(tmp_path / "intake.spool").open()
    one, two = SpoolPort(spool, "chat-a:facebook"), SpoolPort(spool, "chat-b:facebook")
    assert await one.put(b"a", NOW)
    assert await two.put(b"b", NOW)
    assert [t.body for t in await one.take(10)] == [b"a"]
    assert [t.body for t in await two.take(10)] == [b"b"]
    assert (one.depth(), two.depth(), spool.depth()) == (1, 1, 2)
    await spool.close()


async def test_concurrent_deliveries_share_one_transaction(tmp_path: Path) -> None:
    spool = await Spool(tmp_path / "intake.spool").open()
    results = await asyncio.gather(
        *(spool.put("default:facebook", f"{i}".encode(), NOW) for i in range(50))
    )
    assert all(results)
    assert spool.written == 50
    assert spool.flushes == 1
    await spool.close()


async def test_a_full_spool_refuses_and_counts(tmp_path: Path) -> None:
    spool = await Spool(tmp_path / "intake.spool", capacity=3).open()
    accepted = [await spool.put("default:facebook", b"x", NOW) for _ in range(5)]
    assert accepted == [True, True, True, False, False]
    assert spool.refused == 2
    taken = await spool.take("default:facebook", 1)
    await spool.done("default:facebook", [taken[0].id])
    assert await spool.put("default:facebook", b"x", NOW)
    await spool.close()


async def test_a_failed_write_is_an_error_not_an_acknowledgement(tmp_path: Path) -> None:
    path = tmp_path / "intake.spool"
    spool = await Spool(path).open()
    other = sqlite3.connect(path)
    other.execute("DROP TABLE spool")  # the file is broken under the service
    other.commit()
    other.close()
    with pytest.raises(SpoolError):
        await spool.put("default:facebook", b"x", NOW)
    assert spool.write_failures == 1
    assert spool.depth() == 0
    await spool.close()


async def test_readers_wait_while_deliveries_keep_arriving(tmp_path: Path) -> None:
    spool = await Spool(tmp_path / "intake.spool", quiet=0.05, max_wait=30.0).open()
    source = "default:facebook"
    async with flooding(spool, source):
        await asyncio.sleep(0.02)
        reader = asyncio.create_task(spool.wait(source))
        await asyncio.sleep(0.3)
        assert not reader.done(), "the reader went ahead of a flood of deliveries"
    await asyncio.wait_for(reader, 1.0)  # the intake paused: the reader's turn
    await spool.close()


async def test_a_backlog_older_than_max_wait_is_read_even_in_a_flood(tmp_path: Path) -> None:
    spool = await Spool(tmp_path / "intake.spool", quiet=0.05, max_wait=0.2).open()
    source = "default:facebook"
    async with flooding(spool, source):
        await asyncio.wait_for(spool.wait(source), 2.0)
    await spool.close()


async def test_a_half_full_spool_is_read_even_in_a_flood(tmp_path: Path) -> None:
    spool = await Spool(tmp_path / "intake.spool", capacity=20, quiet=10.0).open()
    source = "default:facebook"
    for _ in range(9):
        await spool.put(source, b"x", NOW)
    reader = asyncio.create_task(spool.wait(source))
    await asyncio.sleep(0.1)
    assert not reader.done()
    await spool.put(source, b"x", NOW)  # 10 of 20
    await asyncio.wait_for(reader, 1.0)
    await spool.close()


async def test_a_backlog_left_by_a_crash_is_read_at_once_even_in_a_flood(
    tmp_path: Path,
) -> None:
    path = tmp_path / "intake.spool"
    spool = await Spool(path).open()
    await spool.put("default:facebook", b"left over", NOW)
    await spool.close()
    again = await Spool(path, quiet=0.05, max_wait=30.0).open()
    async with flooding(again, "default:facebook"):
        await asyncio.sleep(0.02)
        await asyncio.wait_for(again.wait("default:facebook"), 1.0)
    assert (await again.take("default:facebook", 1))[0].body == b"left over"
    await again.close()


async def test_checkpoints_wait_for_the_reader_not_the_intake(tmp_path: Path) -> None:
    path = tmp_path / "intake.spool"
    spool = await Spool(path).open()
    source = "default:facebook"
    for _ in range(600):
        await spool.put(source, b"x" * 4000, NOW)
    wal = Path(f"{path}-wal")
    # 600 deliveries of 4 KB: far past SQLite's automatic checkpoint (1,000 pages), and none
    # ran inside the intake's flushes: the rows are still only in the WAL.
    assert size(wal) > 1_000 * 4096
    assert size(path) < 100_000
    taken = await spool.take(source, 10)
    await spool.done(source, [t.id for t in taken])
    assert size(path) > 2_000_000  # the reader's checkpoint copied them over
    await spool.close()


def size(path: Path) -> int:
    return path.stat().st_size


async def test_the_spool_takes_its_settings_from_the_database_table(tmp_path: Path) -> None:
    settings = parse_settings(
        {
            "database": {
                "url": f"sqlite:///{tmp_path / 'app.db'}",
                "spool_capacity": 500,
                "spool_max_wait_seconds": 5,
            }
        },
        {},
    )
    async with aiohttp.ClientSession() as http:
        runtime = (await build_app(settings, http=http))[RUNTIME]
    assert runtime.spool is not None
    assert runtime.spool.path == f"{tmp_path / 'app.db'}.spool"
    assert (runtime.spool.capacity, runtime.spool.max_wait) == (500, 5.0)
