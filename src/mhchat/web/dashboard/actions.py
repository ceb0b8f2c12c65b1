"""The facilitator's actions: the kill switch and modes, the safety queue, approvals and
unknown outcomes.

Every action is a POST behind sign-in and the CSRF check, and is written to the audit table with
the facilitator's name (ids and states only, never post text). A form posted by the page's script
(``Accept: application/json``) gets a JSON answer; a plain form gets a redirect back.
"""

from __future__ import annotations

from typing import Any

import structlog
from aiohttp import web

from mhchat import ledger
from mhchat.actions import Purpose, Reply
from mhchat.codec import action_to_json
from mhchat.facilitation import views
from mhchat.facilitation.formatting import limit_for
from mhchat.ledger import Mode, State
from mhchat.store.db import Tx
from mhchat.web.dashboard import render
from mhchat.web.dashboard.security import WHO
from mhchat.web.dashboard.state import ActionRefused, DashboardState, actor, audit

log = structlog.get_logger("mhchat.dashboard")


class Actions(DashboardState):
    async def kill(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        value = form.get("value")
        if value not in {"on", "off"}:
            raise web.HTTPBadRequest(text="value must be on or off.")
        controls = self.runtime.controls
        if controls is None:
            raise web.HTTPServiceUnavailable(text="The service is still starting.")
        await controls.set_killed(
            value == "on", now=self.runtime.clock.now(), actor=actor(request)
        )
        log.warning("kill_switch", on=value == "on", by=request[WHO])
        msg = "Every sender is stopped." if value == "on" else "Senders are running again."
        return await self._done(request, msg, "controls")

    async def mode(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        try:
            purpose = Purpose(str(form.get("purpose")))
            mode = Mode(str(form.get("mode")))
        except ValueError:
            raise web.HTTPBadRequest(text="Unknown purpose or mode.") from None
        controls = self.runtime.controls
        if controls is None:
            raise web.HTTPServiceUnavailable(text="The service is still starting.")
        try:
            await controls.set_mode(
                purpose, mode, now=self.runtime.clock.now(), actor=actor(request)
            )
        except ValueError as exc:
            return self._refused(request, str(exc).capitalize() + ".")
        return await self._done(
            request, f"{purpose.value} actions now: {render.MODE_LABELS[mode]}.", "controls"
        )

    async def flag_action(self, request: web.Request) -> web.StreamResponse:
        flag_id = int(request.match_info["flag"])
        verb = request.match_info["verb"]
        who = request[WHO]
        now = self.runtime.clock.now()
        form = await request.post()
        try:
            async with self.runtime.require_db().write() as tx:
                flag = await tx.fetchone(
                    "SELECT platform, remote_id, signpost_key, state FROM safety_flags"
                    " WHERE chat_id = ? AND id = ?",
                    (self.chat_id, flag_id),
                )
                if flag is None:
                    raise web.HTTPNotFound(text="No such flag.")
                platform, remote_id, signpost_key = str(flag[0]), str(flag[1]), flag[2]
                if verb == "approve":
                    message = await self._approve_signpost(
                        tx, signpost_key, str(form.get("text", "")), who, now
                    )
                    await views.set_flag_state(tx, self.chat_id, flag_id, "handled", now)
                elif verb in {"dismiss", "handled"}:
                    state = "dismissed" if verb == "dismiss" else "handled"
                    await views.set_flag_state(tx, self.chat_id, flag_id, state, now)
                    if signpost_key is not None:
                        await _drop_waiting(
                            tx,
                            self.chat_id,
                            str(signpost_key),
                            now,
                            f"flag {state} by {who} without sending",
                        )
                    message = "Flag dismissed." if verb == "dismiss" else "Flag marked handled."
                elif verb == "block":
                    author = await tx.fetchone(
                        "SELECT author_id FROM posts"
                        " WHERE chat_id = ? AND platform = ? AND remote_id = ?",
                        (self.chat_id, platform, remote_id),
                    )
                    if author is None:
                        raise ActionRefused(  # noqa: TRY301 - refused inside the transaction
                            "The post is gone, so its author is not known any more."
                        )
                    await tx.execute(
                        "UPDATE participants SET blocked = 1"
                        " WHERE chat_id = ? AND platform = ? AND author_id = ?",
                        (self.chat_id, platform, str(author[0])),
                    )
                    await views.set_flag_state(tx, self.chat_id, flag_id, "handled", now)
                    await audit(
                        tx,
                        self.chat_id,
                        self.runtime,
                        who,
                        "blocked author",
                        f"{platform}:{author[0]}",
                    )
                    message = "Author blocked: they will not be reposted or welcomed."
                else:
                    raise web.HTTPNotFound()
                await audit(
                    tx,
                    self.chat_id,
                    self.runtime,
                    who,
                    f"flag {verb}",
                    f"flag {flag_id} {platform}:{remote_id}",
                )
        except ActionRefused as exc:
            return self._refused(request, str(exc))
        return await self._done(request, message, "queue")

    async def _approve_signpost(self, tx: Tx, key: object, text: str, who: str, now: Any) -> str:
        if key is None:
            raise ActionRefused("This flag has no prepared reply.")
        row = await tx.fetchone(
            "SELECT id FROM actions WHERE chat_id = ? AND key = ?", (self.chat_id, str(key))
        )
        found = await ledger.get(tx, int(row[0])) if row else None
        if found is None or found.state is not State.AWAITING_APPROVAL:
            raise ActionRefused("The reply is no longer waiting for approval.")
        action = found.action
        text = text.replace("\r\n", "\n").strip()
        if not text:
            raise ActionRefused("The reply is empty: write the reply, or dismiss the flag.")
        if isinstance(action, Reply) and text and text != action.text:
            limit = limit_for(action.platform)
            if limit.measure(text) > limit.maximum:
                raise ActionRefused(
                    f"The reply is too long for {limit.name}:"
                    f" at most {limit.maximum} {limit.unit}."
                )
            edited = Reply(
                key=action.key,
                platform=action.platform,
                purpose=action.purpose,
                text=text,
                parent=action.parent,
                root=action.root,
                parent_author_id=action.parent_author_id,
                parent_mentions_host=action.parent_mentions_host,
                not_after=action.not_after,
            )
            await tx.execute(
                "UPDATE actions SET payload = ? WHERE id = ?", (action_to_json(edited), found.id)
            )
            detail = f"approved with edited text by {who}"
        else:
            detail = f"approved by {who}"
        moved = await ledger.transition(
            tx,
            found.id,
            to=State.PENDING,
            now=now,
            detail=detail,
            expect=[State.AWAITING_APPROVAL],
        )
        if not moved:
            raise ActionRefused("The reply is no longer waiting for approval.")
        return "Reply approved: it is being sent."

    async def action(self, request: web.Request) -> web.StreamResponse:
        action_id = int(request.match_info["action"])
        verb = request.match_info["verb"]
        who = request[WHO]
        now = self.runtime.clock.now()
        rules: dict[str, tuple[list[State], State, str, str]] = {
            "approve": (
                [State.AWAITING_APPROVAL],
                State.PENDING,
                f"approved by {who}",
                "Approved: it is being sent.",
            ),
            "drop": (
                [State.AWAITING_APPROVAL, State.UNKNOWN],
                State.DROPPED,
                f"dropped by {who}",
                "Dropped.",
            ),
            "confirm": (
                [State.UNKNOWN],
                State.SENT,
                f"{who} confirmed it reached the platform",
                "Marked as sent.",
            ),
            "retry": (
                [State.UNKNOWN],
                State.PENDING,
                f"{who} asked to send it again",
                "It will be sent again.",
            ),
        }
        if verb not in rules:
            raise web.HTTPNotFound()
        expect, to, detail, message = rules[verb]
        async with self.runtime.require_db().write() as tx:
            row = await ledger.get(tx, action_id)
            if row is None or row.chat_id != self.chat_id:
                raise web.HTTPNotFound(text="No such action.")
            moved = await ledger.transition(
                tx, action_id, to=to, now=now, detail=detail, expect=expect
            )
            if moved:
                await audit(
                    tx,
                    self.chat_id,
                    self.runtime,
                    who,
                    f"action {verb}",
                    f"{row.key} {row.state.value}->{to.value}",
                )
        if not moved:
            return self._refused(
                request,
                f"That action is {row.state.value.replace('_', ' ')} now; nothing was changed.",
            )
        return await self._done(
            request, message, "approvals" if verb in {"approve", "drop"} else "unknown"
        )


async def _drop_waiting(tx: Tx, chat_id: str, key: str, now: Any, detail: str) -> None:
    row = await tx.fetchone("SELECT id FROM actions WHERE chat_id = ? AND key = ?", (chat_id, key))
    if row is not None:
        await ledger.transition(
            tx,
            int(row[0]),
            to=State.DROPPED,
            now=now,
            detail=detail,
            expect=[State.AWAITING_APPROVAL],
        )
