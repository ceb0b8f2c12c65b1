"""The facilitator's actions: kill switch, modes, the safety queue, approvals, unknown outcomes."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from mhchat.actions import Purpose, Reply
from mhchat.errors import OutcomeUnknown
from mhchat.ledger import Mode

from .conftest import Rig
from .conftest import now_post as make_post

CRISIS = "I want to end my life tonight #MHChat"


async def until(check: Callable[[], Awaitable[bool]], within: float = 5.0) -> None:
    async with asyncio.timeout(within):
        while not await check():  # noqa: ASYNC110 - polls the database other tasks write
            await asyncio.sleep(0.02)


async def state_of(rig: Rig, key: str) -> str | None:
    rows = await rig.rows("SELECT state FROM actions WHERE key = ?", (key,))
    return str(rows[0][0]) if rows else None


async def post_form(rig: Rig, path: str, csrf: str, **data: Any) -> Any:
    resp = await rig.client.post(
        path, data={"csrf_token": csrf, **data}, headers={"Accept": "application/json"}
    )
    return resp.status, await resp.json()


class TestKillSwitch:
    async def test_kill_switch_is_audited_and_stops_every_sender(self, rig: Rig) -> None:
        csrf = await rig.sign_in()
        status, body = await post_form(rig, "/dashboard/controls/kill", csrf, value="on")
        assert (status, body["ok"]) == (200, True)
        assert rig.runtime.controls is not None
        assert rig.runtime.controls.killed
        audit = await rig.rows(
            "SELECT actor, what, detail FROM audit WHERE what = 'set kill_switch'"
        )
        assert audit == [("dashboard:Sam", "set kill_switch", "on")]

        await rig.inject(make_post("k1", author="kim", text="A1 hi all #MHChat"))
        await asyncio.sleep(0.3)  # several sender polls
        assert rig.fake.performed == []
        assert await state_of(rig, "repost:fake:k1") == "pending"

        status, _ = await post_form(rig, "/dashboard/controls/kill", csrf, value="off")
        assert status == 200
        await until(lambda: _is(state_of(rig, "repost:fake:k1"), "sent"))
        assert "repost:fake:k1" in [a.key for a in rig.fake.performed]
        audit = await rig.rows(
            "SELECT detail FROM audit WHERE what = 'set kill_switch' ORDER BY id"
        )
        assert audit == [("on",), ("off",)]

    async def test_modes_are_set_and_signposting_never_automatic(self, rig: Rig) -> None:
        csrf = await rig.sign_in()
        status, _ = await post_form(
            rig, "/dashboard/controls/mode", csrf, purpose="repost", mode="dry_run"
        )
        assert status == 200
        assert rig.runtime.modes[Purpose.REPOST] is Mode.DRY_RUN
        status, body = await post_form(
            rig, "/dashboard/controls/mode", csrf, purpose="signposting", mode="auto"
        )
        assert status == 409
        assert "approval" in body["message"]
        assert rig.runtime.modes[Purpose.SIGNPOSTING] is Mode.APPROVE_FIRST
        audit = await rig.rows("SELECT what, detail FROM audit WHERE what LIKE 'set mode:%'")
        assert audit == [("set mode:repost", "dry_run")]


async def _is(value: Awaitable[str | None], wanted: str) -> bool:
    return await value == wanted


class TestSafetyQueue:
    async def test_approving_the_edited_signposting_reply_sends_it(self, rig: Rig) -> None:
        csrf = await rig.sign_in()
        await rig.inject(make_post("c1", author="cal", text=CRISIS))
        key = "signpost:fake:c1"
        assert await state_of(rig, key) == "awaiting_approval"
        page = await (await rig.client.get("/dashboard/api/panels")).json()
        assert "Approve and send reply" in page["panels"]["queue"]
        assert page["counts"]["queue"] == 1
        flag_id = (await rig.rows("SELECT id FROM safety_flags"))[0][0]
        assert rig.fake.performed == [] or all(a.key != key for a in rig.fake.performed)

        edited = "@cal we hear you. Samaritans: call 116 123, any time. #MHChat"
        status, body = await post_form(
            rig, f"/dashboard/flags/{flag_id}/approve", csrf, text=edited
        )
        assert (status, body["ok"]) == (200, True)
        moves = await rig.rows(
            "SELECT t.from_state, t.to_state, t.detail FROM action_transitions t"
            " JOIN actions a ON a.id = t.action_id WHERE a.key = ? ORDER BY t.id",
            (key,),
        )
        assert moves[1] == ("awaiting_approval", "pending", "approved with edited text by Sam")
        await until(lambda: _is(state_of(rig, key), "sent"))
        sent = [a for a in rig.fake.performed if a.key == key]
        assert len(sent) == 1
        assert isinstance(sent[0], Reply)
        assert sent[0].text == edited
        assert sent[0].parent.remote_id == "c1"
        flag = await rig.rows("SELECT state FROM safety_flags WHERE id = ?", (flag_id,))
        assert flag == [("handled",)]
        audit = await rig.rows("SELECT actor, what FROM audit WHERE what = 'flag approve'")
        assert audit == [("dashboard:Sam", "flag approve")]
        # A second approval is refused: the reply is not waiting any more.
        status, body = await post_form(rig, f"/dashboard/flags/{flag_id}/approve", csrf, text="x")
        assert status == 409

    async def test_too_long_reply_is_refused_for_the_platform(self, make_rig: Any) -> None:
        rig = await make_rig()
        csrf = await rig.sign_in()
        await rig.inject(make_post("c2", author="cy", text=CRISIS))
        flag_id = (await rig.rows("SELECT id FROM safety_flags"))[0][0]
        status, body = await post_form(
            rig, f"/dashboard/flags/{flag_id}/approve", csrf, text="x" * 400
        )
        assert status == 409
        assert "too long" in body["message"]
        assert await state_of(rig, "signpost:fake:c2") == "awaiting_approval"

    async def test_dismiss_drops_the_prepared_reply(self, rig: Rig) -> None:
        csrf = await rig.sign_in()
        await rig.inject(make_post("c3", author="dee", text=CRISIS))
        flag_id = (await rig.rows("SELECT id FROM safety_flags"))[0][0]
        status, _ = await post_form(rig, f"/dashboard/flags/{flag_id}/dismiss", csrf)
        assert status == 200
        assert await state_of(rig, "signpost:fake:c3") == "dropped"
        assert await rig.rows("SELECT state FROM safety_flags") == [("dismissed",)]
        panels = await (await rig.client.get("/dashboard/api/panels")).json()
        assert panels["counts"]["queue"] == 0

    async def test_block_author_and_mark_handled(self, rig: Rig) -> None:
        csrf = await rig.sign_in()
        await rig.inject(
            make_post(
                "a1", author="rude", text="you are all idiots, shut up you stupid morons #MHChat"
            )
        )
        flag_id = (await rig.rows("SELECT id FROM safety_flags"))[0][0]
        status, _ = await post_form(rig, f"/dashboard/flags/{flag_id}/block", csrf)
        assert status == 200
        assert await rig.rows("SELECT blocked FROM participants WHERE author_id = 'id-rude'") == [
            (1,)
        ]
        assert await rig.rows("SELECT state FROM safety_flags") == [("handled",)]
        await rig.inject(make_post("a2", author="rude", text="A1 fine answer #MHChat"))
        note = await rig.rows("SELECT note FROM posts WHERE remote_id = 'a2'")
        assert "blocklist" in note[0][0]
        await rig.inject(make_post("c4", author="eve", text=CRISIS))
        flag2 = (await rig.rows("SELECT id FROM safety_flags WHERE remote_id = 'c4'"))[0][0]
        status, _ = await post_form(rig, f"/dashboard/flags/{flag2}/handled", csrf)
        assert status == 200
        assert await rig.rows("SELECT state FROM safety_flags WHERE id = ?", (flag2,)) == [
            ("handled",)
        ]


class TestLedgerDecisions:
    async def test_approve_first_actions_are_approved_or_dropped(self, rig: Rig) -> None:
        csrf = await rig.sign_in()
        await post_form(
            rig, "/dashboard/controls/mode", csrf, purpose="welcome", mode="approve_first"
        )
        await post_form(rig, "/dashboard/controls/mode", csrf, purpose="repost", mode="dry_run")
        await rig.inject(
            make_post("w1", author="new1", text="A1 first time here #MHChat"),
            make_post("w2", author="new2", text="A1 me too #MHChat"),
        )
        keys = [
            str(r[0])
            for r in await rig.rows(
                "SELECT key FROM actions WHERE purpose = 'welcome' ORDER BY id"
            )
        ]
        assert len(keys) == 2
        ids = {
            k: (await rig.rows("SELECT id FROM actions WHERE key = ?", (k,)))[0][0] for k in keys
        }
        panels = await (await rig.client.get("/dashboard/api/panels")).json()
        assert panels["counts"]["approvals"] == 2
        assert f"/dashboard/actions/{ids[keys[0]]}/approve" in panels["panels"]["approvals"]
        assert "Replying to <strong>new1</strong>" in panels["panels"]["approvals"]
        assert "A1 first time here" in panels["panels"]["approvals"]

        status, _ = await post_form(rig, f"/dashboard/actions/{ids[keys[0]]}/approve", csrf)
        assert status == 200
        status, _ = await post_form(rig, f"/dashboard/actions/{ids[keys[1]]}/drop", csrf)
        assert status == 200
        await until(lambda: _is(state_of(rig, keys[0]), "sent"))
        assert await state_of(rig, keys[1]) == "dropped"
        assert [a.key for a in rig.fake.performed] == [keys[0]]
        status, body = await post_form(rig, f"/dashboard/actions/{ids[keys[1]]}/approve", csrf)
        assert status == 409
        assert "dropped" in body["message"]
        audit = await rig.rows("SELECT what FROM audit WHERE what LIKE 'action %' ORDER BY id")
        assert audit == [("action approve",), ("action drop",)]

    async def test_unknown_outcomes_need_a_person(self, rig: Rig) -> None:
        csrf = await rig.sign_in()
        for _ in range(3):
            rig.fake.fail_next(OutcomeUnknown("no answer in time"))
        await rig.inject(
            make_post("u1", author="p1", text="A1 one #MHChat"),
            make_post("u2", author="p2", text="A1 two #MHChat"),
            make_post("u3", author="p3", text="A1 three #MHChat"),
        )

        async def three_unknown() -> bool:
            rows = await rig.rows("SELECT COUNT(*) FROM actions WHERE state = 'unknown'")
            return int(rows[0][0]) == 3

        await until(three_unknown)
        rows = await rig.rows("SELECT id, key FROM actions WHERE state = 'unknown' ORDER BY id")
        (confirm_id, confirm_key), (retry_id, retry_key), (drop_id, drop_key) = rows
        panels = await (await rig.client.get("/dashboard/api/panels")).json()
        assert panels["counts"]["unknown"] == 3
        assert "It was sent" in panels["panels"]["unknown"]

        assert (await post_form(rig, f"/dashboard/actions/{confirm_id}/confirm", csrf))[0] == 200
        assert (await post_form(rig, f"/dashboard/actions/{retry_id}/retry", csrf))[0] == 200
        assert (await post_form(rig, f"/dashboard/actions/{drop_id}/drop", csrf))[0] == 200
        assert await state_of(rig, confirm_key) == "sent"
        assert await state_of(rig, drop_key) == "dropped"
        await until(lambda: _is(state_of(rig, retry_key), "sent"))
        performed = [a.key for a in rig.fake.performed]
        assert retry_key in performed
        assert confirm_key not in performed
        assert drop_key not in performed


async def test_plain_forms_work_without_the_page_script(rig: Rig) -> None:
    """A browser without JavaScript posts the form and is sent back with a message."""
    csrf = await rig.sign_in()
    resp = await rig.client.post(
        "/dashboard/controls/kill", data={"csrf_token": csrf, "value": "on"}, allow_redirects=False
    )
    assert resp.status == 303
    assert resp.headers["Location"] == "/dashboard/#controls"
    page = await (await rig.client.get("/dashboard/")).text()
    assert "Every sender is stopped." in page
    assert "Start senders again" in page
    again = await (await rig.client.get("/dashboard/")).text()
    assert "Every sender is stopped." not in again  # the message is shown once


async def test_an_empty_reply_is_refused(rig: Rig) -> None:
    csrf = await rig.sign_in()
    await rig.inject(make_post("c9", author="fay", text=CRISIS))
    flag_id = (await rig.rows("SELECT id FROM safety_flags"))[0][0]
    status, body = await post_form(rig, f"/dashboard/flags/{flag_id}/approve", csrf, text="  ")
    assert status == 409
    assert "empty" in body["message"]
    assert await state_of(rig, "signpost:fake:c9") == "awaiting_approval"
