# HTML fragments read best one element per line, even past the line length.
# ruff: noqa: E501
"""The live page's panels as HTML fragments: safety queue, approvals, unknown outcomes, kill
switch and modes, platform health, recent decisions.

The page fetches them again whenever the live feed says something changed and swaps them in, so
each is a self-contained fragment; every value from a platform or a person goes through ``e``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from mhchat.actions import Purpose
from mhchat.facilitation.views import FlagView
from mhchat.ledger import LedgerRow, Mode
from mhchat.web.dashboard.queries import action_summary
from mhchat.web.dashboard.render import (
    MODE_LABELS,
    button_form,
    csrf_field,
    e,
    platform_badge,
    when,
)


def safety_panel(flags: Sequence[FlagView], token: str) -> str:
    if not flags:
        return '<p class="empty">Nothing needs a person right now.</p>'
    items = []
    for f in flags:
        post = (
            f'<blockquote class="post-text">{e(f.text)}</blockquote>'
            if f.text is not None
            else '<p class="muted">The post is no longer stored (deleted by its author).</p>'
        )
        link = (
            f' <a href="{e(f.url)}" rel="noreferrer noopener" target="_blank">Open post</a>'
            if f.url
            else ""
        )
        reply = ""
        if f.signpost_key and f.signpost_state == "awaiting_approval":
            reply = (
                f'<form method="post" action="/dashboard/flags/{f.id}/approve" class="signpost js-post">'
                f"{csrf_field(token)}"
                f'<label for="reply-{f.id}">Signposting reply (edit before sending if needed)</label>'
                f'<textarea id="reply-{f.id}" name="text" rows="4" required data-keep="{f.id}">{e(f.signpost_text or "")}</textarea>'
                '<button type="submit" class="primary">Approve and send reply</button></form>'
            )
        elif f.signpost_key:
            reply = (
                f'<p class="muted">Signposting reply: {e(f.signpost_state or "not recorded")}.</p>'
            )
        buttons = "".join(
            [
                button_form(f"/dashboard/flags/{f.id}/handled", "Mark handled", token),
                button_form(f"/dashboard/flags/{f.id}/dismiss", "Dismiss", token),
                button_form(f"/dashboard/flags/{f.id}/block", "Block author", token, cls="danger"),
            ]
        )
        items.append(
            f'<li class="flag flag-{e(f.category)}" data-flag="{f.id}">'
            f'<p class="flag-head"><span class="badge cat-{e(f.category)}">{e(f.category)}</span>'
            f" {platform_badge(f.platform)} <strong>{e(f.author_handle or 'unknown')}</strong>"
            f" {when(f.created_at)}{link}</p>{post}"
            f'<p class="reason"><span class="label">Why:</span> {e(f.reason)}</p>{reply}'
            f'<div class="buttons">{buttons}</div></li>'
        )
    return f'<ul class="flags">{"".join(items)}</ul>'


def _row_head(s: dict[str, Any]) -> str:
    return (
        f'{platform_badge(s["platform"])} <span class="badge">{e(s["purpose"])}</span>'
        f' <span class="kind">{e(s["kind"])}</span>'
    )


About = Mapping[tuple[str, str], dict[str, Any]]
"""(platform, remote id) -> the stored post an action is about (author, text)."""


def _about(s: dict[str, Any], posts: About) -> str:
    if not s["about"]:
        return ""
    post = posts.get((s["platform"], s["about"]))
    if post is None:
        return f'<p class="muted">About post {e(s["about"])} (no longer stored).</p>'
    verb = "Replying to" if s["kind"] == "reply" else "Post by"
    return (
        f'<p class="about">{verb} <strong>{e(post["author"])}</strong>:</p>'
        f'<blockquote class="post-text about-text">{e(post["text"])}</blockquote>'
    )


def approvals_panel(rows: Iterable[LedgerRow], posts: About, token: str) -> str:
    items = []
    for row in rows:
        s = action_summary(row)
        text = f'<blockquote class="post-text">{e(s["text"])}</blockquote>' if s["text"] else ""
        about = _about(s, posts)
        items.append(
            f'<li class="action" data-action="{row.id}"><p>{_row_head(s)}</p>{text}{about}'
            f'<p class="reason"><span class="label">Why:</span> {e(row.reason)}</p>'
            '<div class="buttons">'
            + button_form(f"/dashboard/actions/{row.id}/approve", "Approve", token, cls="primary")
            + button_form(f"/dashboard/actions/{row.id}/drop", "Drop", token)
            + "</div></li>"
        )
    if not items:
        return '<p class="empty">No actions are waiting for approval.</p>'
    return f'<ul class="actions">{"".join(items)}</ul>'


def unknown_panel(rows: Iterable[LedgerRow], posts: About, token: str) -> str:
    items = []
    for row in rows:
        s = action_summary(row)
        text = f'<blockquote class="post-text">{e(s["text"])}</blockquote>' if s["text"] else ""
        text += _about(s, posts)
        items.append(
            f'<li class="action" data-action="{row.id}"><p>{_row_head(s)}</p>{text}'
            f'<p class="reason"><span class="label">What happened:</span> {e(row.detail or "no answer from the platform")}.'
            " Check the platform, then say what to do.</p>"
            '<div class="buttons">'
            + button_form(f"/dashboard/actions/{row.id}/confirm", "It was sent", token)
            + button_form(f"/dashboard/actions/{row.id}/retry", "Send again", token)
            + button_form(f"/dashboard/actions/{row.id}/drop", "Drop", token)
            + "</div></li>"
        )
    if not items:
        return '<p class="empty">No actions with an unknown outcome.</p>'
    return f'<ul class="actions">{"".join(items)}</ul>'


def controls_panel(killed: bool, modes: dict[Purpose, Mode], token: str) -> str:
    if killed:
        kill = (
            '<p class="kill-state stopped" id="kill-state"><strong>Senders are stopped.</strong>'
            " Nothing is posted until you start them again.</p>"
            + button_form(
                "/dashboard/controls/kill",
                "Start senders again",
                token,
                cls="primary",
                extra='<input type="hidden" name="value" value="off">',
            )
        )
    else:
        kill = (
            '<p class="kill-state running" id="kill-state">Senders are running.</p>'
            + button_form(
                "/dashboard/controls/kill",
                "Stop all senders (kill switch)",
                token,
                cls="danger big",
                extra='<input type="hidden" name="value" value="on">',
            )
        )
    rows = []
    for purpose in Purpose:
        current = modes.get(purpose, Mode.AUTO)
        choices = [m for m in Mode if not (purpose is Purpose.SIGNPOSTING and m is Mode.AUTO)]
        options = "".join(
            f'<option value="{m.value}"{" selected" if m is current else ""}>{e(MODE_LABELS[m])}</option>'
            for m in choices
        )
        rows.append(
            f'<form method="post" action="/dashboard/controls/mode" class="mode js-post">{csrf_field(token)}'
            f'<input type="hidden" name="purpose" value="{purpose.value}">'
            f'<label for="mode-{purpose.value}">{e(purpose.value.replace("_", " ").capitalize())}</label>'
            f'<select id="mode-{purpose.value}" name="mode">{options}</select>'
            '<button type="submit">Set</button></form>'
        )
    summary = ", ".join(
        f"{p.value.replace('_', ' ')}: {MODE_LABELS[modes.get(p, Mode.AUTO)].lower()}"
        for p in Purpose
        if modes.get(p, Mode.AUTO) is not Mode.AUTO
    )
    return (
        f'<div class="kill">{kill}</div><details class="modes-box"><summary>Modes per action'
        f"{' (' + e(summary) + ')' if summary else ''}</summary>"
        f'<div class="modes">{"".join(rows)}</div></details>'
    )


def health_panel(items: Sequence[dict[str, Any]]) -> str:
    if not items:
        return '<p class="empty">No platform is enabled.</p>'
    cards = []
    for h in items:
        budgets = (
            "".join(
                f"<li>{e(b['name'])}: <strong>{e('?' if b['remaining'] is None else b['remaining'])}</strong>"
                f" of {e('?' if b['limit'] is None else b['limit'])} left"
                + (f", resets {e(b['resets_at'][11:16])} UTC" if b["resets_at"] else "")
                + "</li>"
                for b in h["budgets"]
            )
            or "<li>No rate budget reported yet.</li>"
        )
        counters = "".join(f"<li>{e(c['name'])}: {e(c['value'])}</li>" for c in h["counters"])
        sender = h["sender"]
        sent = (
            f"<li>Sent {sender['sent']}, skipped {sender['skipped']}, failed {sender['failed']},"
            f" unknown {sender['unknown']}</li>"
            if sender
            else "<li>No sender running.</li>"
        )
        detail = f' <span class="muted">{e(h["detail"])}</span>' if h["detail"] else ""
        cards.append(
            f'<li class="health" data-platform="{e(h["platform"])}"><p>{platform_badge(h["platform"])}'
            f' <span class="status status-{e(h["status"])}">{e(h["status"].replace("_", " "))}</span>{detail}</p>'
            f'<ul class="budgets">{budgets}{counters}{sent}</ul></li>'
        )
    return f'<ul class="healths">{"".join(cards)}</ul>'


def decisions_panel(rows: Iterable[LedgerRow]) -> str:
    items = []
    for row in rows:
        s = action_summary(row)
        detail = (
            f' <span class="muted">({e(row.detail)})</span>'
            if row.detail and row.detail != row.reason
            else ""
        )
        items.append(
            f'<li>{platform_badge(s["platform"])} <span class="badge">{e(s["purpose"])}</span>'
            f' <span class="state state-{e(row.state.value)}">{e(row.state.value.replace("_", " "))}</span>'
            f" {e(row.reason)}{detail}</li>"
        )
    if not items:
        return '<p class="empty">No decisions yet.</p>'
    return (
        '<ul class="decisions" tabindex="0" aria-label="Recent decisions, newest first">'
        f"{''.join(items)}</ul>"
    )
