"""The demo's closing figures, read from the database and from what the emulators recorded.

Nothing here comes from the script: the test compares these numbers with ``Script.expected``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from rich.table import Table

from mhchat.demo.world import World
from mhchat.emulators.bluesky import POST as BSKY_POST
from mhchat.emulators.bluesky import REPOST as BSKY_REPOST
from mhchat.facilitation import views
from mhchat.facilitation.threads import question_tag
from mhchat.store.db import Database

PLATFORMS = ("x", "bluesky", "facebook")


@dataclass(frozen=True, slots=True, kw_only=True)
class Sent:
    """What one platform's emulator says the host did."""

    questions: tuple[int, ...]
    """Question numbers of the host's top-level posts, in the order they went out."""
    reposts: frozenset[str]
    """Ids of the posts the host reposts now (undone reposts are gone)."""
    replies: frozenset[str]
    """Ids of the posts the host replied to (welcomes; signposting waits for a person)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Summary:
    session_id: str
    participants: int
    posts_by_platform: dict[str, int]
    threads: int
    first_timers: int
    welcomes_decided: int
    flags: dict[str, int]
    deletions_honoured: int
    sent: dict[str, Sent]
    actions: dict[str, int] = field(default_factory=dict)
    """Ledger rows by state (sent, skipped, awaiting_approval...)."""
    skipped_reasons: dict[str, int] = field(default_factory=dict)

    def welcomes_sent(self, platform: str) -> int:
        return len(self.sent[platform].replies)

    def reposts(self, platform: str) -> int:
        return len(self.sent[platform].reposts)

    def table(self) -> Table:
        table = Table(title=f"#MHChat demo, session {self.session_id}")
        table.add_column("", no_wrap=True)
        for platform in PLATFORMS:
            table.add_column(platform, justify="right")
        table.add_column("all", justify="right", no_wrap=True)

        def row(label: str, values: list[int]) -> None:
            table.add_row(label, *map(str, values), str(sum(values)))

        def whole(label: str, value: object) -> None:
            table.add_row(label, "", "", "", str(value))

        row("posts stored", [self.posts_by_platform.get(p, 0) for p in PLATFORMS])
        row("questions sent", [len(self.sent[p].questions) for p in PLATFORMS])
        row("reposts", [self.reposts(p) for p in PLATFORMS])
        row("welcomes sent", [self.welcomes_sent(p) for p in PLATFORMS])
        table.add_section()
        whole("participants", self.participants)
        whole("threads", self.threads)
        whole("first-timers", self.first_timers)
        whole("welcomes decided", self.welcomes_decided)
        flags = ", ".join(f"{k} {v}" for k, v in sorted(self.flags.items())) or "none"
        whole("safety flags", flags)
        whole("waiting for a person", self.actions.get("awaiting_approval", 0))
        whole("deletions honoured", self.deletions_honoured)
        return table


def emulator_records(world: World) -> dict[str, Sent]:
    x = world.x
    x_top = [t for t in x.created_tweets if not t.get("reply")]
    x_replies = [
        str(t["reply"]["in_reply_to_tweet_id"]) for t in x.created_tweets if t.get("reply")
    ]
    bsky_posts = world.bluesky.records(world.bluesky_host, BSKY_POST)
    bsky_top = [r for r in bsky_posts if "reply" not in r.value]
    bsky_replies = [
        str(r.value["reply"]["parent"]["uri"]) for r in bsky_posts if "reply" in r.value
    ]
    fb = world.facebook.sent
    return {
        "x": Sent(
            questions=_numbers(str(t.get("text", "")) for t in x_top),
            reposts=frozenset(t for u, t in x.retweets if u == x.host_id),
            replies=frozenset(x_replies),
        ),
        "bluesky": Sent(
            questions=_numbers(str(r.value.get("text", "")) for r in bsky_top),
            reposts=frozenset(
                str(r.value["subject"]["uri"])
                for r in world.bluesky.records(world.bluesky_host, BSKY_REPOST)
            ),
            replies=frozenset(bsky_replies),
        ),
        "facebook": Sent(
            questions=_numbers(s.message for s in fb if s.kind == "publish"),
            reposts=frozenset(),
            replies=frozenset(s.target for s in fb if s.kind != "publish"),
        ),
    }


def _numbers(texts: object) -> tuple[int, ...]:
    found = (question_tag(t) for t in texts)  # type: ignore[attr-defined]
    return tuple(n for n in found if n is not None)


async def summarise(db: Database, chat_id: str, session_id: str, world: World) -> Summary:
    async with db.read() as tx:
        fig = await views.figures(tx, chat_id, session_id)
        states = {
            str(r[0]): int(r[1])
            for r in await tx.fetchall(
                "SELECT state, COUNT(*) FROM actions WHERE chat_id = ? GROUP BY state",
                (chat_id,),
            )
        }
        skipped = Counter(
            str(r[0]).split(":")[0]
            for r in await tx.fetchall(
                "SELECT COALESCE(detail, '') FROM actions WHERE chat_id = ? AND state = 'skipped'",
                (chat_id,),
            )
        )
    return Summary(
        session_id=session_id,
        participants=fig.participants,
        posts_by_platform=dict(fig.posts_by_platform),
        threads=fig.threads,
        first_timers=fig.first_timers,
        welcomes_decided=fig.welcomes,
        flags=dict(fig.flags),
        deletions_honoured=fig.deletions_honoured,
        sent=emulator_records(world),
        actions=states,
        skipped_reasons=dict(skipped),
    )
