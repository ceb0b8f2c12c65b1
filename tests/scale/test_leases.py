"""Leases on both backends: one holder at a time, take-over after expiry, fencing tokens."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from mhchat.leases import DutyBody, Fence, LeaseManager, LeaseStore
from mhchat.store.db import Database
from mhchat.store.postgres import PostgresDatabase

from .conftest import open_url

pytestmark = pytest.mark.scale

T0 = datetime(2026, 1, 7, 20, 0, tzinfo=UTC)


async def test_one_holder_at_a_time_and_a_new_token_on_take_over(store: Database) -> None:
    leases = LeaseStore(store)
    await leases.ensure()
    a = await leases.acquire("default/scheduler", "a", 15, T0)
    assert a is not None
    assert a.token == 1
    assert await leases.acquire("default/scheduler", "b", 15, T0 + timedelta(seconds=5)) is None
    # Renewing keeps the token; the holder may re-acquire its own lease.
    renewed = await leases.renew(a, 15, T0 + timedelta(seconds=5))
    assert renewed is not None
    assert renewed.token == 1
    # a stops renewing (killed, paused): after the timeout b takes over, with a new token.
    b = await leases.acquire("default/scheduler", "b", 15, T0 + timedelta(seconds=21))
    assert b is not None
    assert b.token == 2
    assert await leases.renew(renewed, 15, T0 + timedelta(seconds=22)) is None
    async with store.write() as tx:
        assert not await leases.fence(tx, renewed, T0 + timedelta(seconds=22))
        assert await leases.fence(tx, b, T0 + timedelta(seconds=22))
    rows = await leases.rows("default/")
    assert [(r.name, r.holder, r.token) for r in rows] == [("default/scheduler", "b", 2)]


async def test_a_released_lease_is_taken_at_once(store: Database) -> None:
    leases = LeaseStore(store)
    await leases.ensure()
    a = await leases.acquire("d", "a", 15, T0)
    assert a is not None
    await leases.release(a, T0 + timedelta(seconds=1))
    b = await leases.acquire("d", "b", 15, T0 + timedelta(seconds=1, microseconds=1))
    assert b is not None
    assert b.token == 2


async def test_a_fenced_write_and_a_take_over_never_both_win(pg_url: str) -> None:
    """PostgreSQL, two processes: the fence holds the lease row until its transaction ends."""
    first, second = await open_url(pg_url), await open_url(pg_url)
    try:
        leases_a, leases_b = LeaseStore(first), LeaseStore(second)
        await leases_a.ensure()
        now = datetime.now(UTC)
        old = await leases_a.acquire("d", "a", 0.5, now)
        assert old is not None
        async with first.write() as tx:
            assert await leases_a.fence(tx, old, datetime.now(UTC))
            await asyncio.sleep(0.7)  # the lease expires while the fenced transaction is open
            # b's take-over must wait for this transaction to end.
            takeover = asyncio.create_task(leases_b.acquire("d", "b", 15, datetime.now(UTC)))
            await asyncio.sleep(0.3)
            assert not takeover.done()
        taken = await asyncio.wait_for(takeover, 5)
        assert taken is not None
        assert taken.token == 2
        async with first.write() as tx:
            assert not await leases_a.fence(tx, old, datetime.now(UTC))
    finally:
        await first.close()
        await second.close()


async def test_managers_run_a_duty_in_one_process_and_move_it_on_loss(store: Database) -> None:
    store_ = LeaseStore(store)
    await store_.ensure()
    running: list[str] = []

    def body(who: str):  # type: ignore[no-untyped-def]
        async def run(fence: Fence) -> None:
            running.append(who)
            try:
                await asyncio.Event().wait()
            finally:
                running.remove(who)

        return run

    a = LeaseManager(store_, ttl=0.6, interval=0.1, holder="a")
    b = LeaseManager(store_, ttl=0.6, interval=0.1, holder="b")
    a.add("d/duty", body("a"))
    task_a = asyncio.create_task(a.run())
    await asyncio.sleep(0.3)
    b.add("d/duty", body("b"))
    task_b = asyncio.create_task(b.run())
    await asyncio.sleep(0.5)
    assert running == ["a"]
    # a freezes (its loop stops renewing) but its body is still running: b takes over after
    # the timeout; a's own loop, when it wakes, gives up the duty.
    task_a.cancel()
    started = asyncio.get_running_loop().time()
    while "b" not in running:  # noqa: ASYNC110 - polls the managers' state
        await asyncio.sleep(0.02)
    took = asyncio.get_running_loop().time() - started
    assert took < 0.6 + 0.1 + 0.3
    await b.stop()
    await a.stop()
    task_b.cancel()
    assert running == []


async def test_a_leader_cut_off_from_the_database_is_replaced(pg_url: str) -> None:
    """The leader's connections are cut: it cannot renew, stops its duty once the lease has
    expired, and the standby takes over."""
    first, second = await open_url(pg_url), await open_url(pg_url)
    assert isinstance(first, PostgresDatabase)
    store_a, store_b = LeaseStore(first), LeaseStore(second)
    await store_a.ensure()
    running: list[str] = []

    def body(who: str) -> DutyBody:
        async def run(fence: Fence) -> None:
            running.append(who)
            try:
                await asyncio.Event().wait()
            finally:
                running.remove(who)

        return run

    a = LeaseManager(store_a, ttl=1.0, interval=0.1, holder="a")
    b = LeaseManager(store_b, ttl=1.0, interval=0.1, holder="b")
    a.add("d/duty", body("a"))
    task_a = asyncio.create_task(a.run())
    await asyncio.sleep(0.3)
    b.add("d/duty", body("b"))
    task_b = asyncio.create_task(b.run())
    try:
        await asyncio.sleep(0.3)
        assert running == ["a"]
        first.terminate()
        cut = asyncio.get_running_loop().time()
        while running != ["b"]:
            await asyncio.sleep(0.02)
            assert asyncio.get_running_loop().time() - cut < 5
        took = asyncio.get_running_loop().time() - cut
        assert took < 1.0 + 0.5
        assert a.held() == {}
    finally:
        task_a.cancel()
        task_b.cancel()
        await b.stop()
        await second.close()
