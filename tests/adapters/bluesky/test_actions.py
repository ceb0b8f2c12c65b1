"""Writes: posts with facets, threaded replies, reposts, limits, errors and outcome checks."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
from tests.adapters.bluesky.conftest import BLUESKY, Runner, World

from mhchat.actions import Publish, Purpose, Reply, Repost, Sent, Skipped, Unrepost
from mhchat.emulators.bluesky import POST, REPOST
from mhchat.errors import OutcomeUnknown, PermanentFailure, RateLimited, TransientFailure
from mhchat.events import PostRef, RemoteId
from mhchat.testing import FakeClock, RecordingSink

PAYLOADS = Path(__file__).parent / "payloads"
_keys = itertools.count(1)


def publish(text: str) -> Publish:
    return Publish(key=f"p{next(_keys)}", platform=BLUESKY, purpose=Purpose.QUESTION, text=text)


def ref(uri: str) -> PostRef:
    return PostRef(remote_id=RemoteId(uri))


def _sliced(text: str, facet: dict[str, object]) -> str:
    index = facet["index"]
    assert isinstance(index, dict)
    return text.encode()[index["byteStart"] : index["byteEnd"]].decode()


class TestPublish:
    async def test_facets_use_utf8_byte_offsets(self, world: World, running: Runner) -> None:
        text = "Q1 Noson dda 💙 ça va? 日本語も #MHChat with @alice.test https://example.org/x"
        async with running() as adapter:
            sent = await adapter.perform(publish(text))
        assert isinstance(sent, Sent)
        stored = world.emulator.record(sent.remote_id)
        assert stored is not None
        facets = stored.value["facets"]
        by_kind = {f["features"][0]["$type"].rsplit("#", 1)[1]: f for f in facets}
        assert _sliced(text, by_kind["tag"]) == "#MHChat"
        assert by_kind["tag"]["features"][0]["tag"] == "MHChat"
        assert _sliced(text, by_kind["mention"]) == "@alice.test"
        assert by_kind["mention"]["features"][0]["did"] == world.alice
        assert _sliced(text, by_kind["link"]) == "https://example.org/x"
        # The character index of the tag is not its byte index once emoji and CJK precede it.
        assert by_kind["tag"]["index"]["byteStart"] != text.index("#MHChat")

    async def test_facets_match_the_recorded_pds_request(
        self, world: World, running: Runner
    ) -> None:
        recorded = json.loads((PAYLOADS / "createRecord-post.json").read_text())["request"]
        text = recorded["record"]["text"]
        async with running(langs=["cy", "fr"]) as adapter:
            sent = await adapter.perform(publish(text))
        assert isinstance(sent, Sent)
        stored = world.emulator.record(sent.remote_id)
        assert stored is not None
        want = recorded["record"]["facets"][0]
        got = stored.value["facets"][0]
        assert got["index"]["byteStart"] == want["index"]["byteStart"] == 32
        assert got["index"]["byteEnd"] == want["index"]["byteEnd"] == 39
        assert got["features"][0]["tag"] == want["features"][0]["tag"]
        assert stored.value["langs"] == ["cy", "fr"]

    async def test_grapheme_limit_is_enforced_before_sending(
        self, world: World, running: Runner
    ) -> None:
        family = "👨‍👩‍👧"  # one grapheme, five code points, eighteen bytes
        async with running() as adapter:
            ok = await adapter.perform(publish(family * 150 + "é" * 150))
            assert isinstance(ok, Sent)
            before = world.emulator.calls("com.atproto.repo.createRecord")
            with pytest.raises(PermanentFailure, match=r"301 graphemes.*at most 300"):
                await adapter.perform(publish("a" * 301))
        assert world.emulator.calls("com.atproto.repo.createRecord") == before


class TestReply:
    async def test_reply_builds_root_and_parent_strong_refs(
        self, world: World, running: Runner
    ) -> None:
        emu = world.emulator
        question = emu.post(world.host, "Q1 How are you? #MHChat")
        answer = emu.post(world.alice, "A1 tired but ok #MHChat", reply_to=question)
        async with running() as adapter:
            sent = await adapter.perform(
                Reply(
                    key="welcome:alice",
                    platform=BLUESKY,
                    purpose=Purpose.WELCOME,
                    text="Welcome to #MHChat, be kind 💙",
                    parent=ref(answer),
                    root=ref(answer),
                )
            )
        assert isinstance(sent, Sent)
        stored = emu.record(sent.remote_id)
        q, a = emu.record(question), emu.record(answer)
        assert stored is not None
        assert q is not None
        assert a is not None
        reply = stored.value["reply"]
        assert (reply["root"]["uri"], reply["root"]["cid"]) == (question, q.cid)
        assert (reply["parent"]["uri"], reply["parent"]["cid"]) == (answer, a.cid)

    async def test_reply_to_a_deleted_post_is_refused(self, world: World, running: Runner) -> None:
        emu = world.emulator
        gone = emu.post(world.alice, "A2 never mind #MHChat")
        emu.delete(gone)
        async with running() as adapter:
            with pytest.raises(PermanentFailure, match="no longer exists"):
                await adapter.perform(
                    Reply(
                        key="r",
                        platform=BLUESKY,
                        purpose=Purpose.WELCOME,
                        text="Welcome!",
                        parent=ref(gone),
                        root=ref(gone),
                    )
                )
        assert emu.records(world.host, POST) == []


class TestRepost:
    async def test_repost_and_unrepost(self, world: World, running: Runner) -> None:
        emu = world.emulator
        answer = emu.post(world.alice, "A3 music #MHChat")
        target = ref(answer)
        async with running() as adapter:
            sent = await adapter.perform(
                Repost(key="rp", platform=BLUESKY, purpose=Purpose.REPOST, target=target)
            )
            assert isinstance(sent, Sent)
            (record,) = emu.records(world.host, REPOST)
            assert record.uri == sent.remote_id
            stored = emu.record(answer)
            assert stored is not None
            subject = record.value["subject"]
            assert (subject["uri"], subject["cid"]) == (answer, stored.cid)
            undo = Unrepost(key="un", platform=BLUESKY, purpose=Purpose.UNDO_REPOST, target=target)
            assert await adapter.perform(undo) == Sent(remote_id=sent.remote_id)
            assert emu.records(world.host, REPOST) == []
            assert isinstance(await adapter.perform(undo), Skipped)
            assert await adapter.check_outcome(undo) == Sent(remote_id="")
            foreign = emu.repost(world.alice, answer)
            with pytest.raises(PermanentFailure, match="not a repost record of the host"):
                await adapter.perform(
                    Unrepost(
                        key="un2",
                        platform=BLUESKY,
                        purpose=Purpose.UNDO_REPOST,
                        target=target,
                        repost_id=foreign,
                    )
                )

    async def test_lost_answer_is_unknown_then_checked(
        self, world: World, running: Runner
    ) -> None:
        emu = world.emulator
        answer = emu.post(world.alice, "A4 a walk #MHChat")
        action = Repost(key="rp2", platform=BLUESKY, purpose=Purpose.REPOST, target=ref(answer))
        question = publish("Q2 What gets you outside? #MHChat")
        async with running() as adapter:
            assert await adapter.check_outcome(action) is None
            emu.hang_next("com.atproto.repo.createRecord", after_write=True)
            with pytest.raises(OutcomeUnknown):
                await adapter.perform(action)
            (record,) = emu.records(world.host, REPOST)
            assert await adapter.check_outcome(action) == Sent(remote_id=record.uri)
            emu.hang_next("com.atproto.repo.createRecord", after_write=False)
            with pytest.raises(OutcomeUnknown):
                await adapter.perform(question)
            assert await adapter.check_outcome(question) is None


class TestErrors:
    async def test_429_backs_off_and_recovers(self, world: World, running: Runner) -> None:
        clock = FakeClock()
        world.emulator.clock = clock
        nsid = "com.atproto.repo.createRecord"
        async with running(RecordingSink(), clock=clock) as adapter:
            world.emulator.rate_limit_next(nsid, reset_in=30)
            with pytest.raises(RateLimited) as limited:
                await adapter.perform(publish("Q1 first try #MHChat"))
            assert limited.value.retry_at is not None
            assert 29 <= (limited.value.retry_at - clock.now()).total_seconds() <= 31
            assert adapter.health().status.value == "rate_limited"
            calls = world.emulator.calls(nsid)
            with pytest.raises(RateLimited):
                await adapter.perform(publish("Q1 second try #MHChat"))
            assert world.emulator.calls(nsid) == calls  # refused locally, not sent
            clock.advance(31)
            assert isinstance(await adapter.perform(publish("Q1 third try #MHChat")), Sent)
            assert adapter.health().status.value != "rate_limited"

    async def test_points_budget_refuses_before_the_pds(
        self, world: World, running: Runner
    ) -> None:
        nsid = "com.atproto.repo.createRecord"
        async with running(points_per_hour=9, points_reserve=0, label_automated=False) as a:
            for i in range(3):
                await a.perform(publish(f"Q{i} #MHChat"))
            with pytest.raises(RateLimited, match="write points"):
                await a.perform(publish("Q4 #MHChat"))
            budgets = dict(a.health().budgets)
        assert world.emulator.calls(nsid) == 3
        assert budgets["points_hour"].remaining == 0
        assert budgets["write"].limit == 5000

    async def test_transport_faults_map_to_typed_errors(
        self, world: World, running: Runner
    ) -> None:
        emu = world.emulator
        nsid = "com.atproto.repo.createRecord"
        async with running() as adapter:
            emu.fail_next(nsid, status=503, error="ServiceUnavailable", message="busy")
            with pytest.raises(TransientFailure):
                await adapter.perform(publish("Q1 #MHChat"))
            emu.fail_next(nsid, status=500)
            with pytest.raises(OutcomeUnknown):
                await adapter.perform(publish("Q1 #MHChat"))
            emu.reset_connection_next(nsid)
            with pytest.raises(OutcomeUnknown):
                await adapter.perform(publish("Q1 #MHChat"))
            emu.slow_next(nsid, 0.1)
            assert isinstance(await adapter.perform(publish("Q1 slow #MHChat")), Sent)
        async with running(service_url="http://127.0.0.1:9") as down:
            with pytest.raises(TransientFailure, match="could not reach"):
                await down.perform(publish("Q1 #MHChat"))
