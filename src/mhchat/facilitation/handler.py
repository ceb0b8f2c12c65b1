"""The facilitation step of ingest: triage, threads, requests, reposts, welcomes, signposting.

Runs inside the ingest write transaction for each stored batch. The work is set-based: one
classifier call, a handful of ``IN`` queries and ``executemany`` writes per batch, whatever its
size. Every decision goes to the ledger with its reason; every post that is not amplified gets
a note saying why.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

from mhchat.actions import Purpose, Repost
from mhchat.config import Settings
from mhchat.events import PersonForgetRequested, PlatformName, Post, PostRef, RemoteId
from mhchat.facilitation.batch_view import Author, BatchView, Status, key_of
from mhchat.facilitation.deletions import forget_person, honour_deletions, undo_actions_about
from mhchat.facilitation.link_store import SqlLinks
from mhchat.facilitation.reposts import Candidate, first_round, reason_for
from mhchat.facilitation.requests import apply_requests
from mhchat.facilitation.schedule import Phase, Schedule, Session
from mhchat.facilitation.sessions_store import ensure_session
from mhchat.facilitation.settings import FacilitationSettings, facilitation_settings
from mhchat.facilitation.signposting import signposting_decision
from mhchat.facilitation.templates import Templates, load_templates
from mhchat.facilitation.threads import Link, PostKey, apply_batch, tag_for
from mhchat.facilitation.triage.classifier import Triage, TriageInput, TriageResult, Verdict
from mhchat.facilitation.triage.lexicon import load_lexicon
from mhchat.facilitation.welcomes import decide_welcomes
from mhchat.ledger import Decision, Mode, record
from mhchat.store.db import Tx, fetch_by_pairs
from mhchat.store.posts import StoredBatch


def build_triage(settings: FacilitationSettings) -> Triage:
    safety = settings.safety
    return Triage(
        load_lexicon(safety.lexicon),
        abuse_threshold=safety.abuse_threshold,
        max_links=safety.max_links,
        repeat_limit=safety.repeat_limit,
    )


class FacilitationHandler:
    """``BatchHandler`` for the facilitation rules."""

    name = "facilitation"

    def __init__(
        self,
        settings: FacilitationSettings,
        *,
        modes: dict[Purpose, Mode],
        triage: Triage | None = None,
        templates: Templates | None = None,
        cannot_repost: frozenset[str] = frozenset(),
    ) -> None:
        self.settings = settings
        # Platforms whose adapter has no repost (a Facebook page cannot share a comment):
        # deciding one there would only fill the ledger with failures.
        self.cannot_repost = cannot_repost
        self.schedule = Schedule(settings.schedule)
        self.triage = triage or build_triage(settings)
        self.templates = templates or load_templates(settings.welcomes.templates)
        # The same dict the controls change at run time: a facilitator's switch applies at once.
        self.modes = modes

    @classmethod
    def from_settings(cls, settings: Settings) -> FacilitationHandler:
        return cls(facilitation_settings(settings), modes=dict(settings.modes))

    async def handle(self, tx: Tx, batch: StoredBatch) -> None:
        decisions: list[Decision] = []
        if batch.deleted:
            decisions += await honour_deletions(
                tx,
                chat_id=batch.chat_id,
                deleted=[(d.platform, d.remote_id) for d in batch.deleted],
                now=batch.now,
            )
        if batch.new_posts:
            decisions += await self._on_new(tx, batch)
        if batch.edited_posts:
            decisions += await self._on_edits(tx, batch)
        for event in batch.other:
            if isinstance(event, PersonForgetRequested):
                # The platform's own data-deletion request (Meta's callback): same as "forget me".
                decisions += await forget_person(
                    tx,
                    chat_id=batch.chat_id,
                    platform=event.platform,
                    author_id=event.author_id,
                    now=batch.now,
                )
        if decisions:
            await record(
                tx, chat_id=batch.chat_id, decisions=decisions, modes=self.modes, now=batch.now
            )

    # -- new posts -------------------------------------------------------------------------

    async def _on_new(self, tx: Tx, batch: StoredBatch) -> list[Decision]:
        chat_id, now = batch.chat_id, batch.now
        posts = batch.new_posts
        others = [p for p in posts if not p.is_own]
        verdicts = self._classify(others)
        sessions: dict[PostKey, Session | None] = {
            key_of(p): self.schedule.session_at(p.created_at) for p in posts
        }
        for session in {s.session_id: s for s in sessions.values() if s is not None}.values():
            await ensure_session(tx, chat_id, session, zone=self.settings.schedule.zone, now=now)

        grouped = {
            link.key: link
            for link in await apply_batch(
                [_link(p) for p in posts],
                SqlLinks(tx, chat_id, held=frozenset(key_of(p) for p in posts)),
            )
        }
        status = await self._statuses(
            tx, chat_id, {(p.platform, p.author.author_id) for p in others}
        )
        forget, requests = await apply_requests(tx, chat_id, others, status)

        notes: dict[PostKey, str] = {}
        decisions: list[Decision] = []
        flags: list[tuple[object, ...]] = []
        retention = self.settings.safety.flag_retention_days
        expires = (now + _days(retention)).isoformat()
        for post in others:
            key = key_of(post)
            verdict = verdicts[key]
            if verdict.verdict is Verdict.OK:
                continue
            found = sessions[key]
            signpost_key = None
            if verdict.verdict is Verdict.CRISIS:
                signpost = self._signposting(post, verdict)
                signpost_key = signpost.action.key
                decisions.append(signpost)
            flags.append(
                (
                    chat_id,
                    post.platform,
                    post.remote_id,
                    found.session_id if found is not None else None,
                    verdict.verdict.value,
                    verdict.reason,
                    verdict.score,
                    signpost_key,
                    now.isoformat(),
                    expires,
                )
            )
            notes[key] = f"not amplified: {verdict.reason}"
        if flags:
            await tx.executemany(
                "INSERT INTO safety_flags (chat_id, platform, remote_id, session_id, category,"
                " reason, score, signpost_key, created_at, expires_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (chat_id, platform, remote_id, category) DO NOTHING",
                flags,
            )

        view = BatchView(
            batch=batch,
            verdicts=verdicts,
            sessions=sessions,
            grouped=grouped,
            status=status,
            forget=forget,
            requests=requests,
            first_posts=_first_posts(others, batch.first_timers),
            newcomers=_newcomers(others, batch.first_timers, sessions, verdicts, status),
            notes=notes,
        )
        decisions += await self._reposts(tx, view, others)
        decisions += await decide_welcomes(
            tx, view, settings=self.settings, templates=self.templates
        )

        # The new posts' thread links (held back by ``SqlLinks``) go in the same UPDATE.
        rows: list[tuple[object, ...]] = []
        for p in posts:
            key = key_of(p)
            found, link = sessions[key], grouped[key]
            rows.append(
                (
                    found.session_id if found else None,
                    verdicts[key].verdict.value if not p.is_own else None,
                    notes.get(key),
                    link.root[1] if link.root else None,
                    link.tag,
                    link.question,
                    chat_id,
                    p.platform,
                    p.remote_id,
                )
            )
        await tx.executemany(
            "UPDATE posts SET session_id = ?, triage = ?, note = ?,"
            " thread_root = ?, question_tag = ?, question_n = ?"
            " WHERE chat_id = ? AND platform = ? AND remote_id = ?",
            rows,
        )
        for platform, author_id in sorted(forget):
            decisions += await forget_person(
                tx, chat_id=chat_id, platform=platform, author_id=author_id, now=now
            )
        return decisions

    def _classify(self, posts: Sequence[Post]) -> dict[PostKey, TriageResult]:
        results = self.triage.classify_many(
            [
                TriageInput(
                    text=p.text,
                    author=(p.platform, p.author.author_id),
                    links=len(p.links) if p.links else None,
                    at=p.created_at,
                )
                for p in posts
            ]
        )
        return {key_of(p): r for p, r in zip(posts, results, strict=True)}

    async def _statuses(self, tx: Tx, chat_id: str, authors: set[Author]) -> dict[Author, Status]:
        found: dict[Author, Status] = {
            a: Status(blocked=a in self.settings.safety.blocklist) for a in authors
        }
        rows = await fetch_by_pairs(
            tx,
            "SELECT platform, author_id, opted_out, blocked, first_seen_at FROM participants"
            " WHERE chat_id = ? AND platform = ? AND author_id IN",
            chat_id,
            sorted(authors),
        )
        for row in rows:
            status = found[(str(row[0]), str(row[1]))]
            status.opted_out = bool(row[2])
            status.blocked = status.blocked or bool(row[3])
            status.first_seen_at = datetime.fromisoformat(str(row[4]))
        return found

    def _why_not(
        self,
        post: Post,
        verdict: TriageResult,
        session: Session | None,
        status: Status,
        forgotten: bool,
    ) -> str | None:
        """Why a post must not be reposted, in the order a facilitator would ask."""
        checks = (
            (forgotten, "the author asked us to forget them"),
            (verdict.verdict is not Verdict.OK, verdict.reason),
            (status.blocked, "the author is on the blocklist"),
            (status.opted_out, "the author asked not to be reposted"),
            (post.is_bot, "the platform labels the author as automated"),
            (
                not post.author_checked,
                "the platform could not tell us whether the author is automated",
            ),
            (
                session is None or session.phase(post.created_at) is Phase.IDLE,
                "posted outside chat hours",
            ),
            (not self.settings.reposts.enabled, "reposts are turned off"),
        )
        return next((f"not amplified: {why}" for failed, why in checks if failed), None)

    async def _reposts(self, tx: Tx, view: BatchView, posts: Sequence[Post]) -> list[Decision]:
        batch, notes = view.batch, view.notes
        groups: dict[tuple[str, str], list[Candidate]] = defaultdict(list)
        closes: dict[str, Session] = {}
        for post in posts:
            key = key_of(post)
            if post.platform in self.cannot_repost:
                notes.setdefault(key, f"not reposted: {post.platform} has no reposts")
                continue
            author = (post.platform, post.author.author_id)
            session = view.sessions[key]
            why = self._why_not(
                post, view.verdicts[key], session, view.status[author], author in view.forget
            )
            if why is None and key in view.requests:
                why = "not amplified: a request to the host (opt out, opt in or forget me)"
            if why is not None:
                notes.setdefault(key, why)
                continue
            assert session is not None
            closes[session.session_id] = session
            link = view.grouped.get(key)
            groups[(session.session_id, post.platform)].append(
                Candidate(
                    platform=post.platform,
                    remote_id=post.remote_id,
                    version=post.version,
                    author=author,
                    created_at=post.created_at,
                    is_answer=link is not None and link.question is not None,
                    is_first_post=view.first_posts.get(author) is post,
                    session_id=session.session_id,
                )
            )
        decisions: list[Decision] = []
        for (session_id, platform), candidates in groups.items():
            budget = self.settings.reposts.budget.for_platform(platform)
            used_row = await tx.fetchone(
                "SELECT reposts FROM session_tallies"
                " WHERE chat_id = ? AND session_id = ? AND platform = ?",
                (batch.chat_id, session_id, platform),
            )
            used = int(used_row[0]) if used_row else 0
            authors = sorted({c.author[1] for c in candidates})
            counts: dict[Author, int] = {}
            for start in range(0, len(authors), 300):
                part = authors[start : start + 300]
                marks = ", ".join("?" for _ in part)
                rows = await tx.fetchall(
                    "SELECT author_id, COUNT(*) FROM session_reposts"  # noqa: S608 - placeholders only
                    " WHERE chat_id = ? AND session_id = ? AND platform = ?"
                    f" AND author_id IN ({marks}) GROUP BY author_id",
                    [batch.chat_id, session_id, platform, *part],
                )
                counts.update(((platform, str(r[0])), int(r[1])) for r in rows)
            chosen = first_round(candidates, counts, budget - used)
            chosen_keys = {c.remote_id for c in chosen}
            chosen_authors = {c.author for c in chosen}
            for c in candidates:
                if c.remote_id in chosen_keys:
                    continue
                if counts.get(c.author, 0) > 0 or c.author in chosen_authors:
                    why = (
                        "waiting: this participant was already reposted this session;"
                        " more reposts after the live hour, fairly"
                    )
                else:
                    why = (
                        f"not reposted: the {platform} repost budget for this session"
                        f" is spent ({budget})"
                    )
                notes.setdefault((c.platform, c.remote_id), why)
            if not chosen:
                continue
            await tx.executemany(
                "INSERT INTO session_reposts (chat_id, session_id, platform, author_id,"
                " remote_id, round, decided_at) VALUES (?, ?, ?, ?, ?, 1, ?)"
                " ON CONFLICT (chat_id, platform, remote_id) DO NOTHING",
                [
                    (
                        batch.chat_id,
                        session_id,
                        platform,
                        c.author[1],
                        c.remote_id,
                        batch.now.isoformat(),
                    )
                    for c in chosen
                ],
            )
            session = closes[session_id]
            for i, c in enumerate(chosen):
                decisions.append(repost_decision(c, session, reason_for(c, 1, used + i, budget)))
                notes[(c.platform, c.remote_id)] = "reposted: " + reason_for(
                    c, 1, used + i, budget
                )
        return decisions

    def _signposting(self, post: Post, verdict: TriageResult) -> Decision:
        return signposting_decision(
            post, verdict, settings=self.settings, templates=self.templates, modes=self.modes
        )

    # -- edits -----------------------------------------------------------------------------

    async def _on_edits(self, tx: Tx, batch: StoredBatch) -> list[Decision]:
        fresh = {key_of(p) for p in batch.new_posts}
        edited = [p for p in batch.edited_posts if not p.is_own and key_of(p) not in fresh]
        if not edited:
            return []
        verdicts = self._classify(edited)
        decisions: list[Decision] = []
        expires = (batch.now + _days(self.settings.safety.flag_retention_days)).isoformat()
        for post in edited:
            verdict = verdicts[key_of(post)]
            await tx.execute(
                "UPDATE posts SET triage = ? WHERE chat_id = ? AND platform = ? AND remote_id = ?",
                (verdict.verdict.value, batch.chat_id, post.platform, post.remote_id),
            )
            if verdict.verdict is Verdict.OK:
                continue
            signpost = (
                self._signposting(post, verdict) if verdict.verdict is Verdict.CRISIS else None
            )
            session = self.schedule.session_at(post.created_at)
            await tx.execute(
                "INSERT INTO safety_flags (chat_id, platform, remote_id, session_id, category,"
                " reason, score, signpost_key, created_at, expires_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (chat_id, platform, remote_id, category) DO NOTHING",
                (
                    batch.chat_id,
                    post.platform,
                    post.remote_id,
                    session.session_id if session else None,
                    verdict.verdict.value,
                    verdict.reason,
                    verdict.score,
                    signpost.action.key if signpost else None,
                    batch.now.isoformat(),
                    expires,
                ),
            )
            decisions += await undo_actions_about(
                tx,
                chat_id=batch.chat_id,
                platform=post.platform,
                remote_id=post.remote_id,
                why=f"the post was edited and is now flagged ({verdict.verdict.value})",
                now=batch.now,
            )
            if signpost is not None:
                decisions.append(signpost)
        return decisions


def repost_decision(c: Candidate, session: Session, reason: str) -> Decision:
    return Decision(
        action=Repost(
            key=c.key,
            platform=PlatformName(c.platform),
            purpose=Purpose.REPOST,
            target=PostRef(remote_id=RemoteId(c.remote_id), version=c.version),
            not_after=session.closes_at,
        ),
        reason=reason,
    )


def _link(post: Post) -> Link:
    platform = post.platform
    return Link(
        key=key_of(post),
        parent=(platform, post.reply_parent.remote_id) if post.reply_parent else None,
        given_root=(platform, post.reply_root.remote_id) if post.reply_root else None,
        quoted=(platform, post.quoted.remote_id) if post.quoted else None,
        tag=tag_for(post.text, is_own=post.is_own),
    )


def _first_posts(posts: Sequence[Post], first_timers: set[tuple[str, str]]) -> dict[Author, Post]:
    found: dict[Author, Post] = {}
    for post in sorted(posts, key=lambda p: p.created_at):
        author = (post.platform, post.author.author_id)
        if author in first_timers:
            found.setdefault(author, post)
    return found


NEWCOMER_WINDOW = timedelta(days=7)
"""Someone first seen this long before a session (posting between chats) is still new there."""


def _newcomers(
    posts: Sequence[Post],
    first_timers: set[Author],
    sessions: Mapping[PostKey, Session | None],
    verdicts: Mapping[PostKey, TriageResult],
    status: Mapping[Author, Status],
) -> dict[Author, Post]:
    """Per person new to the chat, their earliest post in this batch fit to welcome.

    New means first seen in this batch, or within ``NEWCOMER_WINDOW`` before the session: a
    first post between chats ("first time joining tonight!") is welcomed at the chat.
    """
    found: dict[Author, Post] = {}
    unwell: set[Author] = set()
    for post in sorted(posts, key=lambda p: p.created_at):
        author = (post.platform, post.author.author_id)
        key = key_of(post)
        verdict = verdicts[key].verdict
        if verdict is Verdict.CRISIS:
            unwell.add(author)  # a person replies first; no cheerful welcome in the same breath
        session = sessions[key]
        if session is None or verdict is not Verdict.OK or author in found:
            continue
        if post.is_bot or not post.author_checked:
            # Someone the platform could not vouch for only waits: first_seen_at stays, so a
            # later post of theirs, once the lookup works, can still be the welcome.
            continue
        seen = status[author].first_seen_at
        if author in first_timers or (
            seen is not None and seen >= session.starts_at - NEWCOMER_WINDOW
        ):
            found[author] = post
    return {a: p for a, p in found.items() if a not in unwell}


def _days(n: int) -> timedelta:
    return timedelta(days=n)
