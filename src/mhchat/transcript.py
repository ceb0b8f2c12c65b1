"""A chat session's transcript: posts grouped by question and by thread, as Markdown, HTML, JSON
or CSV, with participants optionally replaced by stable pseudonyms.

Deleted posts never appear: deletion removes them from the store and leaves a tombstone, and the
export also skips anything tombstoned. Pseudonyms are numbered in order of each person's first
post in the session ("Participant 1", ...), so re-exporting the same session gives the same
names; the host's own posts are labelled "Host". Anonymised exports also drop post links and
platform ids (both carry handles) and rewrite @mentions.
"""

from __future__ import annotations

import csv
import html
import io
import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

import orjson

from mhchat.facilitation import views
from mhchat.store.db import Database, Tx


class Format(StrEnum):
    MARKDOWN = "md"
    HTML = "html"
    JSON = "json"
    CSV = "csv"


CONTENT_TYPES = {
    Format.MARKDOWN: "text/markdown; charset=utf-8",
    Format.HTML: "text/html; charset=utf-8",
    Format.JSON: "application/json",
    Format.CSV: "text/csv; charset=utf-8",
}

_HANDLE = r"[A-Za-z0-9_][A-Za-z0-9_.\-]*[A-Za-z0-9_]|[A-Za-z0-9_]"


class SessionNotFound(LookupError):
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class TPost:
    platform: str
    post_id: str | None
    author: str
    text: str
    created_at: datetime
    url: str | None
    first_timer: bool
    reply: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class TThread:
    platform: str
    label: str
    posts: tuple[TPost, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class TQuestion:
    n: int | None
    text: str | None
    threads: tuple[TThread, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Transcript:
    session_id: str
    starts_at: datetime
    ends_at: datetime
    topic: str
    hashtag: str
    anonymised: bool
    questions: tuple[TQuestion, ...]

    @property
    def post_count(self) -> int:
        return sum(len(t.posts) for q in self.questions for t in q.threads)


class Pseudonyms:
    """Stable names for people, in order of first appearance."""

    def __init__(self) -> None:
        self._names: dict[tuple[str, str], str] = {}
        self._handles: dict[str, str] = {}
        self._pattern: re.Pattern[str] | None = None

    def name(self, platform: str, author_id: str, handle: str) -> str:
        key = (platform, author_id)
        if key not in self._names:
            self._names[key] = f"Participant {len(self._names) + 1}"
        folded = handle.lstrip("@").casefold()
        if folded not in self._handles and " " in folded:
            self._pattern = None
        self._handles[folded] = self._names[key]
        return self._names[key]

    def scrub(self, text: str) -> str:
        """Rewrite @mentions: a participant's to their pseudonym, anyone else's to @someone."""

        def swap(match: re.Match[str]) -> str:
            found = self._handles.get(match.group(1).casefold())
            return f"@{found.replace(' ', '')}" if found else "@someone"

        return self._mentions().sub(swap, text)

    def _mentions(self) -> re.Pattern[str]:
        # A Facebook name has spaces ("@Tom Moss" in the host's welcome), where the mention
        # pattern would stop at the first name and leave the rest: known names are tried first.
        if self._pattern is None:
            spaced = sorted((h for h in self._handles if " " in h), key=len, reverse=True)
            known = "".join(rf"{re.escape(h)}(?!\w)|" for h in spaced)
            self._pattern = re.compile(rf"(?<![\w@])@({known}{_HANDLE})", re.IGNORECASE)
        return self._pattern


async def _tombstoned(tx: Tx, chat_id: str) -> set[tuple[str, str]]:
    rows = await tx.fetchall(
        "SELECT platform, remote_id FROM tombstones WHERE chat_id = ?", (chat_id,)
    )
    return {(str(r[0]), str(r[1])) for r in rows}


async def build(
    db: Database, chat_id: str, session_id: str, *, anonymise: bool = False
) -> Transcript:
    async with db.read() as tx:
        session = await tx.fetchone(
            "SELECT starts_at, ends_at, topic FROM chat_sessions"
            " WHERE chat_id = ? AND session_id = ?",
            (chat_id, session_id),
        )
        if session is None:
            raise SessionNotFound(session_id)
        chat = await tx.fetchone("SELECT hashtag FROM chats WHERE chat_id = ?", (chat_id,))
        groups = await views.grouped(tx, chat_id, session_id)
        dead = await _tombstoned(tx, chat_id)
    names = Pseudonyms()
    if anonymise:
        # Number people by their first post in the session, whatever question it answered.
        ordered = sorted(
            (p for g in groups for t in g.threads for p in t.posts if not p.is_own),
            key=lambda p: (p.created_at, p.remote_id),
        )
        for p in ordered:
            if (p.platform, p.remote_id) not in dead:
                names.name(p.platform, p.author_id, p.author_handle)
    questions: list[TQuestion] = []
    for group in groups:
        threads: list[TThread] = []
        for i, thread in enumerate(group.threads, start=1):
            posts = []
            for p in thread.posts:
                if (p.platform, p.remote_id) in dead:
                    continue
                author = p.author_handle
                text = p.text
                if anonymise:
                    author = (
                        "Host"
                        if p.is_own
                        else names.name(p.platform, p.author_id, p.author_handle)
                    )
                    text = names.scrub(text)
                elif p.is_own:
                    author = f"{p.author_handle} (host)"
                posts.append(
                    TPost(
                        platform=p.platform,
                        post_id=None if anonymise else p.remote_id,
                        author=author,
                        text=text,
                        created_at=p.created_at,
                        url=None if anonymise else p.url,
                        first_timer=p.first_timer,
                        reply=p.thread_root is not None and p.thread_root != p.remote_id,
                    )
                )
            if posts:
                label = f"Thread {i} on {thread.platform}"
                threads.append(TThread(platform=thread.platform, label=label, posts=tuple(posts)))
        if threads:
            questions.append(TQuestion(n=group.n, text=group.text, threads=tuple(threads)))
    return Transcript(
        session_id=session_id,
        starts_at=datetime.fromisoformat(str(session[0])),
        ends_at=datetime.fromisoformat(str(session[1])),
        topic=str(session[2]),
        hashtag=str(chat[0]) if chat else "",
        anonymised=anonymise,
        questions=tuple(questions),
    )


def _heading(q: TQuestion) -> str:
    if q.n is None:
        return "Other posts"
    label = f"Q{q.n}"
    if not q.text:
        return label
    # The host's questions usually carry their own "Q2:" label already.
    return q.text if q.text.upper().startswith(label) else f"{label}: {q.text}"


def _stamp(when: datetime) -> str:
    return when.strftime("%H:%M UTC")


def to_markdown(t: Transcript) -> str:
    out = [f"# #{t.hashtag} transcript: session {t.session_id}", ""]
    if t.topic:
        out += [f"Topic: {t.topic}", ""]
    out += [
        f"{t.starts_at:%Y-%m-%d %H:%M} to {t.ends_at:%H:%M} UTC, {t.post_count} posts."
        + (" Participants are anonymised." if t.anonymised else ""),
        "",
    ]
    for q in t.questions:
        out += [f"## {_md(_heading(q))}", ""]
        for thread in q.threads:
            out += [f"### {thread.label}", ""]
            for p in thread.posts:
                mark = " (first time)" if p.first_timer else ""
                indent = "  " if p.reply else ""
                body = _md(p.text).replace("\n", f"\n{indent}  ")
                out.append(f"{indent}- **{_md(p.author)}**{mark}, {_stamp(p.created_at)}: {body}")
            out.append("")
    return "\n".join(out).rstrip() + "\n"


def _md(text: str) -> str:
    return re.sub(r"([\\`*_\[\]<>#|])", r"\\\1", text)


def to_html(t: Transcript) -> str:
    e = html.escape
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>#{e(t.hashtag)} transcript {e(t.session_id)}</title>",
        "<style>body{font-family:system-ui,sans-serif;max-width:48rem;margin:auto;padding:1rem;"
        "line-height:1.5;color:#1a1a1a}li{margin:.4rem 0}.reply{margin-left:1.5rem}"
        ".meta{color:#555}</style></head><body>",
        f"<h1>#{e(t.hashtag)} transcript: session {e(t.session_id)}</h1>",
    ]
    if t.topic:
        parts.append(f"<p>Topic: {e(t.topic)}</p>")
    parts.append(
        f'<p class="meta">{t.starts_at:%Y-%m-%d %H:%M} to {t.ends_at:%H:%M} UTC,'
        f" {t.post_count} posts.{' Participants are anonymised.' if t.anonymised else ''}</p>"
    )
    for q in t.questions:
        parts.append(f"<section><h2>{e(_heading(q))}</h2>")
        for thread in q.threads:
            parts.append(f"<h3>{e(thread.label)}</h3><ul>")
            for p in thread.posts:
                cls = ' class="reply"' if p.reply else ""
                mark = " (first time)" if p.first_timer else ""
                text = e(p.text).replace("\n", "<br>")
                link = f' <a href="{e(p.url)}">link</a>' if p.url else ""
                parts.append(
                    f"<li{cls}><strong>{e(p.author)}</strong>{mark}"
                    f' <span class="meta">{_stamp(p.created_at)}</span>: {text}{link}</li>'
                )
            parts.append("</ul>")
        parts.append("</section>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def to_data(t: Transcript) -> dict[str, Any]:
    return {
        "session": t.session_id,
        "hashtag": t.hashtag,
        "topic": t.topic,
        "starts_at": t.starts_at.isoformat(),
        "ends_at": t.ends_at.isoformat(),
        "anonymised": t.anonymised,
        "posts": t.post_count,
        "questions": [
            {
                "n": q.n,
                "text": q.text,
                "threads": [
                    {
                        "platform": th.platform,
                        "label": th.label,
                        "posts": [
                            {
                                "platform": p.platform,
                                "id": p.post_id,
                                "author": p.author,
                                "text": p.text,
                                "created_at": p.created_at.isoformat(),
                                "url": p.url,
                                "first_timer": p.first_timer,
                                "reply": p.reply,
                            }
                            for p in th.posts
                        ],
                    }
                    for th in q.threads
                ],
            }
            for q in t.questions
        ],
    }


def to_json(t: Transcript) -> str:
    return orjson.dumps(to_data(t), option=orjson.OPT_INDENT_2).decode() + "\n"


CSV_COLUMNS = (
    "question",
    "question_text",
    "thread",
    "platform",
    "post_id",
    "author",
    "created_at",
    "first_timer",
    "reply",
    "text",
    "url",
)


def _cell(value: str) -> str:
    # Spreadsheets run cells starting with these as formulas: keep them text.
    return "'" + value if value[:1] in {"=", "+", "-", "@", "\t", "\r"} else value


def to_csv(t: Transcript) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for q in t.questions:
        for th in q.threads:
            for p in th.posts:
                writer.writerow(
                    [
                        "" if q.n is None else f"Q{q.n}",
                        _cell(q.text or ""),
                        _cell(th.label),
                        _cell(p.platform),
                        # Ids and links come from the platform's payload too: any cell can
                        # start a formula.
                        _cell(p.post_id or ""),
                        _cell(p.author),
                        p.created_at.isoformat(),
                        "yes" if p.first_timer else "no",
                        "yes" if p.reply else "no",
                        _cell(p.text),
                        _cell(p.url or ""),
                    ]
                )
    return buf.getvalue()


RENDERERS = {
    Format.MARKDOWN: to_markdown,
    Format.HTML: to_html,
    Format.JSON: to_json,
    Format.CSV: to_csv,
}


async def export(
    db: Database, chat_id: str, session_id: str, fmt: Format, *, anonymise: bool = False
) -> str:
    return RENDERERS[fmt](await build(db, chat_id, session_id, anonymise=anonymise))


def filename(session_id: str, fmt: Format, *, anonymise: bool) -> str:
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", session_id)
    return f"mhchat-{safe}{'-anonymised' if anonymise else ''}.{fmt.value}"
