"""The webhook endpoint, through a real aiohttp app with the sub-app at /webhooks/facebook."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence

import pytest
from structlog.testing import capture_logs

from mhchat.actions import Publish, Purpose
from mhchat.adapters import Checkpoint
from mhchat.emulators.facebook import sign
from mhchat.errors import OutcomeUnknown, TransientFailure
from mhchat.events import Event, PostDeleted, PostEdited, PostReceived
from mhchat.testing import RecordingSink

from .conftest import (
    ALICE,
    FACEBOOK,
    RECORDED_PAGE,
    Rig,
    RigFactory,
    content,
    envelope,
    load,
    load_text,
)

RECORDED_CHANGES = [
    "feed-change-status-add.json",
    "feed-change-comment-add.json",
    "feed-change-comment-edited.json",
    "feed-change-comment-remove.json",
    "feed-change-post-remove.json",
    "feed-change-reaction-add.json",
    "feed-change-like-add-on-comment.json",
    "feed-change-page-like-add.json",
]


def comment_body() -> bytes:
    return envelope([load("feed-change-comment-add.json")], RECORDED_PAGE)


class TestVerification:
    """Meta's subscription handshake."""

    async def test_documented_handshake_echoes_the_challenge(self, rig: Rig) -> None:
        query = load("verification-request.query.json")
        for path in ("/webhooks/facebook", "/webhooks/facebook/"):
            resp = await rig.client.get(path, params=query)
            assert resp.status == 200
            assert resp.content_type == "text/plain"
            assert await resp.text() == query["hub.challenge"]

    async def test_wrong_token_mode_or_missing_challenge_is_refused(self, rig: Rig) -> None:
        good = load("verification-request.query.json")
        for bad in (
            {**good, "hub.verify_token": "meatyhamhocks"},
            {**good, "hub.mode": "unsubscribe"},
            {k: v for k, v in good.items() if k != "hub.challenge"},
            {k: v for k, v in good.items() if k != "hub.verify_token"},
        ):
            resp = await rig.client.get("/webhooks/facebook", params=bad)
            assert resp.status == 403
            assert good["hub.challenge"] not in await resp.text()


class TestDelivery:
    """Signed page ``feed`` changes become events, acknowledged once stored."""

    async def test_signed_recorded_changes_become_events(self, make_rig: RigFactory) -> None:
        rig = await make_rig(page_id=RECORDED_PAGE)
        resp = await rig.deliver(envelope([load(n) for n in RECORDED_CHANGES], RECORDED_PAGE))
        assert resp.status == 200
        events = content(rig.sink)
        kinds = [type(e).__name__ for e in events]
        assert kinds == [
            "PostReceived",
            "PostReceived",
            "PostEdited",
            "PostDeleted",
            "PostDeleted",
        ]
        status, comment = (e.post for e in events[:2] if isinstance(e, PostReceived))
        assert status.remote_id == "137542570280222_139610053406744"
        assert status.text == "test"
        assert status.reply_parent is None
        assert status.author.author_id == "139560936744123"
        assert comment.remote_id == "139560936744456_139620233405726"
        assert comment.text == "Good"
        assert comment.reply_parent is not None
        assert comment.reply_root is not None
        assert comment.reply_parent.remote_id == "139560936744456_139562213411528"
        assert comment.reply_root.remote_id == "137542570280222_139560936744456"
        assert comment.created_at.timestamp() == 1511951015
        assert comment.created_at.tzinfo is not None
        edited = events[2]
        assert isinstance(edited, PostEdited)
        assert edited.post.text == "Great"
        deleted = [e.remote_id for e in events if isinstance(e, PostDeleted)]
        assert deleted == ["139560936744456_139597043408045", "137542570280222_139610053406744"]
        counters = dict(rig.adapter.health().counters)
        assert counters["ignored:item:reaction"] == 1
        assert counters["ignored:item:like"] == 2
        assert counters["events"] == 5

    async def test_only_our_page_is_taken_from_a_batched_envelope(
        self, make_rig: RigFactory
    ) -> None:
        rig = await make_rig(page_id=RECORDED_PAGE)
        raw = load_text("envelope-batched-two-pages-comment-add.json")
        raw = raw.replace("<PAGE_ID>", RECORDED_PAGE).replace("<OTHER_PAGE_ID>", "999")
        assert (await rig.deliver(raw.encode())).status == 200
        assert rig.sink.remote_ids() == ["139560936744456_139620233405726"]
        assert dict(rig.adapter.health().counters)["ignored:other_page"] == 1

    async def test_the_page_own_comment_is_recognised_as_ours(self, make_rig: RigFactory) -> None:
        own_page = "137542570280111"
        rig = await make_rig(page_id=own_page)
        body = envelope([load("feed-change-comment-add-by-page-itself.json")], own_page)
        assert (await rig.deliver(body)).status == 200
        (post,) = rig.sink.posts()
        assert post.is_own
        assert post.text == "Public reply!"

    async def test_signature_is_over_the_raw_escaped_bytes(self, make_rig: RigFactory) -> None:
        rig = await make_rig(page_id=RECORDED_PAGE)
        change = load("feed-change-comment-add.original-2017-nonascii.json")
        body = envelope([change], RECORDED_PAGE)
        assert b"\\u53ef\\u4ee5" in body  # Meta's escaping of the non-ASCII text
        # A digest of the re-serialised (unescaped) JSON is what naive verifiers compute.
        reserialised = json.dumps(json.loads(body), ensure_ascii=False).encode()
        wrong = sign(reserialised, rig.emulator.app_secret)
        assert (await rig.deliver(body, signature=wrong)).status == 403
        assert content(rig.sink) == []
        assert (await rig.deliver(body)).status == 200
        assert rig.sink.posts()[0].text == "可以"

    async def test_a_redelivered_batch_keeps_its_remote_ids(self, make_rig: RigFactory) -> None:
        """Meta retries; the ids are stable so the store's unique key keeps one copy."""
        rig = await make_rig(page_id=RECORDED_PAGE)
        body = envelope([load(n) for n in RECORDED_CHANGES[:3]], RECORDED_PAGE)
        assert (await rig.deliver(body)).status == 200
        first = list(content(rig.sink))
        assert (await rig.deliver(body)).status == 200
        second = content(rig.sink)[len(first) :]
        assert second == first


class TestRefusals:
    """What is refused, with which status, and that nothing is stored then."""

    async def test_missing_or_wrong_signature_is_403(self, make_rig: RigFactory) -> None:
        rig = await make_rig(page_id=RECORDED_PAGE)
        body = comment_body()
        for signature in (
            None,
            "",
            "sha256=",
            "sha256=" + "0" * 64,
            sign(body, "another-secret"),
            sign(body, rig.emulator.app_secret).replace("sha256=", "sha1="),
            sign(body + b" ", rig.emulator.app_secret),
            "sha256=\u00e9\u00e9",
        ):
            resp = await rig.deliver(body, signature=signature)
            assert resp.status == 403, signature
        assert content(rig.sink) == []
        assert dict(rig.adapter.health().counters)["bad_signature"] == 8

    async def test_oversize_body_is_413(self, make_rig: RigFactory) -> None:
        rig = await make_rig(page_id=RECORDED_PAGE, settings={"max_body_bytes": 2048})
        body = envelope([load("feed-change-comment-add.json")] * 20, RECORDED_PAGE)
        assert len(body) > 2048
        assert (await rig.deliver(body)).status == 413

        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(100):
                yield b" " * 1024  # no Content-Length: the limit applies while reading

        resp = await rig.client.post(
            "/webhooks/facebook",
            data=chunks(),
            headers={"X-Hub-Signature-256": sign(b"", rig.emulator.app_secret)},
        )
        assert resp.status == 413
        assert content(rig.sink) == []
        assert dict(rig.adapter.health().counters)["too_large"] == 2

    async def test_malformed_json_is_400(self, make_rig: RigFactory) -> None:
        rig = await make_rig(page_id=RECORDED_PAGE)
        for body in (b"{", b"", b"\xff\xfe", b"[" * 5000, comment_body()[:-3]):
            resp = await rig.deliver(body)
            assert resp.status == 400, body[:20]
        assert content(rig.sink) == []

    async def test_text_no_database_can_hold_is_400(self, make_rig: RigFactory) -> None:
        # A lone surrogate escape parses (the standard parser takes it) but is not text: the
        # store would refuse the row, and with it every other post of its batch.
        rig = await make_rig(page_id=RECORDED_PAGE)
        change = load("feed-change-comment-add.json")
        for field in ("message", "comment_id"):
            bad = json.loads(json.dumps(change))
            bad["value"][field] = "bad \ud800 x"
            body = envelope([bad], RECORDED_PAGE)
            assert b"\\ud800" in body
            resp = await rig.deliver(body)
            assert resp.status == 400, field
        assert content(rig.sink) == []
        # What the standard parser alone takes and is text is still accepted: an emoji as an
        # escaped surrogate pair, beside a number orjson refuses.
        good = json.loads(json.dumps(change))
        good["value"]["message"] = "hello \U0001f600"
        body = envelope([good], RECORDED_PAGE).replace(b'"time":', b'"big":1e400,"time":', 1)
        assert (await rig.deliver(body)).status == 200
        [received] = content(rig.sink)
        assert isinstance(received, PostReceived)
        assert received.post.text == "hello \U0001f600"

    async def test_full_bus_is_503_and_stores_nothing(self, make_rig: RigFactory) -> None:
        rig = await make_rig(page_id=RECORDED_PAGE, sink=RecordingSink(capacity=0))
        resp = await rig.deliver(comment_body())
        assert resp.status == 503
        assert content(rig.sink) == []
        assert dict(rig.adapter.health().counters)["bus_full"] == 1

    async def test_not_acknowledged_before_stored(self, make_rig: RigFactory) -> None:
        """Enqueued but never stored within ack_timeout: 503, so Meta delivers again."""

        class NeverStores(RecordingSink):
            def offer(
                self, events: Sequence[Event], *, checkpoint: Checkpoint | None = None
            ) -> asyncio.Future[None] | None:
                return asyncio.get_running_loop().create_future()

        rig = await make_rig(
            page_id=RECORDED_PAGE, sink=NeverStores(), settings={"ack_timeout": 0.1}
        )
        assert (await rig.deliver(comment_body())).status == 503
        assert dict(rig.adapter.health().counters)["store_timeout"] == 1

    async def test_stopped_adapter_answers_503(self, make_rig: RigFactory) -> None:
        rig = await make_rig(page_id=RECORDED_PAGE, start=False)
        assert (await rig.deliver(comment_body())).status == 503
        assert content(rig.sink) == []

    async def test_other_objects_and_fields_are_acknowledged_and_counted(
        self, make_rig: RigFactory
    ) -> None:
        rig = await make_rig(page_id=RECORDED_PAGE)
        bodies = [
            json.dumps({"object": "user", "entry": []}).encode(),
            json.dumps(
                {
                    "object": "page",
                    "entry": [
                        {"id": RECORDED_PAGE, "time": 1, "changed_fields": ["feed"]},
                        {
                            "id": RECORDED_PAGE,
                            "time": 1,
                            "changes": [{"field": "mention", "value": {"post_id": "1_2"}}],
                        },
                    ],
                }
            ).encode(),
        ]
        for body in bodies:
            assert (await rig.deliver(body)).status == 200
        counters = dict(rig.adapter.health().counters)
        assert counters["ignored:object"] == 1
        assert counters["ignored:no_values"] == 1
        assert counters["ignored:field:mention"] == 1
        assert content(rig.sink) == []


class TestUnexpectedFailures:
    async def test_a_failing_sink_is_503_and_the_log_holds_no_post_text(
        self, make_rig: RigFactory
    ) -> None:
        class Broken(RecordingSink):
            def offer(
                self, events: Sequence[Event], *, checkpoint: Checkpoint | None = None
            ) -> asyncio.Future[None] | None:
                raise RuntimeError("Good")  # an error message that repeats the post text

        with capture_logs() as logs:
            rig = await make_rig(page_id=RECORDED_PAGE, sink=Broken())
            assert (await rig.deliver(comment_body())).status == 503
        assert dict(rig.adapter.health().counters)["webhook_errors"] == 1
        (failed,) = [entry for entry in logs if entry["event"] == "facebook_webhook_failed"]
        assert failed["error"] == "RuntimeError"
        assert "Good" not in repr(logs)


class TestMetaRetries:
    async def test_deliveries_refused_while_stopped_land_on_meta_retry(
        self, make_rig: RigFactory
    ) -> None:
        rig = await make_rig(start=False)
        emu = rig.emulator
        question = await emu.page_post("Q1 #MHChat")
        comment = await emu.comment(ALICE, "A1 still here #MHChat", on_post=question)
        await emu.drain()
        assert all(d.attempts == [503, 503, 503] for d in emu.deliveries)  # bounded retries
        assert not any(d.delivered for d in emu.deliveries)
        await rig.adapter.start()
        await rig.adapter.settled()  # no catch-up poll: nothing was ever stored
        await emu.redeliver_failed()  # Meta's later retries
        assert all(d.delivered for d in emu.deliveries)
        assert rig.sink.remote_ids() == [question, comment]
        await emu.redeliver_failed()  # nothing left to send
        assert [d.attempts[-1] for d in emu.deliveries] == [200, 200]


class TestParticipants:
    async def test_edits_and_removals_arrive_as_events(self, rig: Rig) -> None:
        emu = rig.emulator
        question = await emu.page_post("Q1 #MHChat")
        comment = await emu.comment(ALICE, "A1 first try", on_post=question)
        reply = await emu.comment(ALICE, "and more", on_post=question, parent=comment)
        await emu.edit(comment, "A1 second try #MHChat")
        await emu.remove(reply)
        await emu.drain()
        events = content(rig.sink)
        edited = [e for e in events if isinstance(e, PostEdited)]
        assert [(e.post.remote_id, e.post.text) for e in edited] == [
            (comment, "A1 second try #MHChat")
        ]
        assert edited[0].post.hashtags == ("mhchat",)
        deleted = [e for e in events if isinstance(e, PostDeleted)]
        assert [(e.remote_id, e.author_id) for e in deleted] == [(reply, ALICE.id)]

    async def test_slow_graph_reads_are_transient_and_writes_unknown(
        self, make_rig: RigFactory
    ) -> None:
        rig = await make_rig(settings={"request_timeout": 0.2})
        rig.emulator.slow_seconds = 0.5
        with pytest.raises(TransientFailure):
            await rig.adapter.backfill(60)
        action = Publish(key="q", platform=FACEBOOK, purpose=Purpose.QUESTION, text="Q1 #MHChat")
        with pytest.raises(OutcomeUnknown):
            await rig.adapter.perform(action)
