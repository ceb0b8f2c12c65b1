# HTML fragments read best one element per line, even past the line length.
# ruff: noqa: E501
"""HTML for the dashboard, built from escaped pieces (no template engine, no inline scripts).

Every value from a platform or a person goes through :func:`e`. The live page's panels are in
``panels``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from html import escape

from mhchat.facilitation.views import SessionFigures, SessionRow
from mhchat.ledger import Mode

PLATFORM_NAMES = {"x": "X", "bluesky": "Bluesky", "facebook": "Facebook", "fake": "Test"}
MODE_LABELS = {
    Mode.AUTO: "Automatic",
    Mode.APPROVE_FIRST: "Approve first",
    Mode.DRY_RUN: "Dry run (record only)",
}
STATIC = "/dashboard/static"


def e(value: object) -> str:
    return escape(str(value), quote=True)


def platform_badge(platform: str) -> str:
    name = PLATFORM_NAMES.get(platform, platform)
    return f'<span class="badge platform-{e(platform)}">{e(name)}</span>'


def when(value: datetime) -> str:
    return f'<time datetime="{e(value.isoformat())}">{value:%H:%M} UTC</time>'


def csrf_field(token: str) -> str:
    return f'<input type="hidden" name="csrf_token" value="{e(token)}">'


def button_form(action: str, label: str, token: str, *, cls: str = "", extra: str = "") -> str:
    return (
        f'<form method="post" action="{e(action)}" class="inline js-post">{csrf_field(token)}{extra}'
        f'<button type="submit" class="{e(cls)}">{e(label)}</button></form>'
    )


def page(
    title: str,
    body: str,
    *,
    token: str,
    who: str | None,
    current: str = "",
    scripts: Sequence[str] = (),
    flash: str | None = None,
) -> str:
    nav = ""
    if who is not None:
        links = [
            ("live", "/dashboard/", "Live chat"),
            ("transcripts", "/dashboard/transcripts", "Transcripts"),
        ]
        mark = ' aria-current="page"'
        items = "".join(
            f'<li><a href="{href}"{mark if key == current else ""}>{label}</a></li>'
            for key, href, label in links
        )
        nav = (
            f'<nav aria-label="Dashboard"><ul>{items}</ul></nav>'
            f'<div class="who">Signed in as <strong>{e(who)}</strong>'
            f'<form method="post" action="/dashboard/logout" class="inline">{csrf_field(token)}'
            '<button type="submit" class="link">Sign out</button></form></div>'
        )
    tags = "".join(f'<script src="{STATIC}/{e(s)}" defer></script>' for s in scripts)
    note = f'<p class="flash" role="status">{e(flash)}</p>' if flash else ""
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<meta name="csrf-token" content="{e(token)}">'
        f"<title>{e(title)} · MHChat dashboard</title>"
        f'<link rel="stylesheet" href="{STATIC}/style.css">{tags}</head>'
        '<body><a class="skip" href="#main">Skip to content</a>'
        f'<header class="top"><p class="brand">MHChat dashboard</p>{nav}</header>'
        f'<main id="main" tabindex="-1">{note}<p id="notice" class="flash" role="status" aria-live="polite" tabindex="-1" hidden></p>{body}</main>'
        "</body></html>"
    )


def login_page(token: str, facilitators: Sequence[str], *, error: str | None = None) -> str:
    if len(facilitators) == 1:
        who = (
            f'<input type="hidden" name="facilitator" value="{e(facilitators[0])}">'
            f"<p>Signing in as <strong>{e(facilitators[0])}</strong>.</p>"
        )
    else:
        options = "".join(f'<option value="{e(n)}">{e(n)}</option>' for n in facilitators)
        who = (
            '<label for="facilitator">Facilitator</label>'
            f'<select id="facilitator" name="facilitator" required>{options}</select>'
        )
    alert = f'<p class="error" role="alert">{e(error)}</p>' if error else ""
    body = (
        '<section class="login panel" aria-labelledby="login-h"><h1 id="login-h">Sign in</h1>'
        f'{alert}<form method="post" action="/dashboard/login">{csrf_field(token)}{who}'
        '<label for="password">Password or access token</label>'
        '<input id="password" name="password" type="password" autocomplete="current-password" required>'
        '<button type="submit" class="primary">Sign in</button></form></section>'
    )
    return page("Sign in", body, token=token, who=None)


def live_page(
    panels: dict[str, str], counts: dict[str, int], *, token: str, who: str, flash: str | None
) -> str:
    def section(key: str, title: str, extra_cls: str = "", live: bool = False) -> str:
        count = counts.get(key)
        badge = (
            f' <span class="count" data-count="{key}">{count}</span>' if count is not None else ""
        )
        aria = ' aria-live="polite"' if live else ""
        return (
            f'<section id="{key}" class="panel {extra_cls}" aria-labelledby="{key}-h">'
            f'<h2 id="{key}-h">{title}{badge}</h2>'
            f'<div data-panel="{key}"{aria}>{panels[key]}</div></section>'
        )

    body = (
        section("queue", "Safety queue", "safety", live=True)
        + '<div class="columns"><div class="main-col">'
        '<section id="feed" class="panel" aria-labelledby="feed-h"><h2 id="feed-h">Live chat</h2>'
        '<p id="feed-status" class="muted" role="status">Connecting to the live feed…</p>'
        '<div id="feed-groups" aria-live="polite" aria-relevant="additions"></div></section>'
        '</div><div class="side-col">'
        + section("controls", "Kill switch and modes")
        + section("approvals", "Waiting for approval")
        + section("unknown", "Outcome unknown")
        + section("health", "Platforms and rate budgets")
        + section("decisions", "Recent decisions")
        + "</div></div>"
    )
    return page(
        "Live chat", body, token=token, who=who, current="live", scripts=["app.js"], flash=flash
    )


def transcripts_page(sessions: Sequence[SessionRow], *, token: str, who: str) -> str:
    if not sessions:
        rows = '<p class="empty">No chat sessions yet.</p>'
    else:
        items = []
        for s in sessions:
            sid = e(s.session_id)
            base = f"/dashboard/transcripts/{sid}"
            links = " ".join(
                f'<a href="{base}.{fmt}" download>{label}</a>'
                for fmt, label in (
                    ("md", "Markdown"),
                    ("html", "HTML"),
                    ("json", "JSON"),
                    ("csv", "CSV"),
                )
            )
            options = "".join(
                f'<option value="{fmt}">{label}</option>'
                for fmt, label in (
                    ("md", "Markdown"),
                    ("html", "HTML"),
                    ("json", "JSON"),
                    ("csv", "CSV"),
                )
            )
            items.append(
                f'<li class="session" data-session="{sid}"><h2>Session {sid}</h2>'
                f"<p>{s.starts_at:%a %d %b %Y %H:%M} UTC · {s.posts} posts"
                f'{" · " + e(s.topic) if s.topic else ""} · <a href="/dashboard/sessions/{sid}">Activity charts</a></p>'
                f'<p class="exports">Export: {links}</p>'
                f'<form method="get" action="{base}/export" class="export">'
                f'<label for="fmt-{sid}">Format</label><select id="fmt-{sid}" name="format">{options}</select>'
                f'<input type="checkbox" id="anon-{sid}" name="anonymise" value="1" checked>'
                f'<label for="anon-{sid}" class="check">Anonymise participants</label>'
                '<button type="submit">Download</button></form></li>'
            )
        rows = f'<ul class="sessions">{"".join(items)}</ul>'
    body = f'<section class="panel"><h1>Transcripts</h1>{rows}</section>'
    return page("Transcripts", body, token=token, who=who, current="transcripts")


def session_page(fig: SessionFigures, *, token: str, who: str) -> str:
    sid = e(fig.session_id)
    posts = (
        ", ".join(
            f"{PLATFORM_NAMES.get(p, p)} {n}" for p, n in sorted(fig.posts_by_platform.items())
        )
        or "none"
    )
    flags = ", ".join(f"{k} {v}" for k, v in sorted(fig.flags.items())) or "none"
    facts = [
        ("Participants", str(fig.participants)),
        ("Posts", posts),
        ("Threads", str(fig.threads)),
        ("First-timers", str(fig.first_timers)),
        ("Welcomes", str(fig.welcomes)),
        ("Reposts", str(fig.reposts)),
        ("Flags", flags),
        ("Deletions honoured", str(fig.deletions_honoured)),
    ]
    dl = "".join(f"<div><dt>{e(k)}</dt><dd>{e(v)}</dd></div>" for k, v in facts)
    body = (
        f'<section class="panel" data-session="{sid}" id="session"><h1>Session {sid}</h1>'
        f'<dl class="figures">{dl}</dl>'
        '<h2 id="chart-posts-h">Posts per minute by platform</h2>'
        '<figure class="chart" id="chart-posts" aria-labelledby="chart-posts-h"></figure>'
        '<h2 id="chart-people-h">Participants, first-timers and reposts over time</h2>'
        '<figure class="chart" id="chart-people" aria-labelledby="chart-people-h"></figure>'
        '<details><summary>The same figures as a table</summary><div id="chart-table"></div></details>'
        f'<p><a href="/dashboard/transcripts">Export this session\'s transcript</a></p></section>'
    )
    return page(
        f"Session {fig.session_id}",
        body,
        token=token,
        who=who,
        current="transcripts",
        scripts=["charts.js"],
    )
