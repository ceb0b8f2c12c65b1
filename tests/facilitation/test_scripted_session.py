"""A scripted chat of a few hundred posts from many participants on three platforms, through
the real ingest path: fairness, welcomes, safety and grouping are checked on the ledger."""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

import pytest

from mhchat.actions import Purpose
from mhchat.events import PlatformName, Post, PostDeleted, PostReceived, PostRef, RemoteId
from mhchat.facilitation import views
from mhchat.facilitation.questions import parse_questions
from mhchat.facilitation.scheduler import Scheduler
from mhchat.ledger import Mode
from mhchat.store.db import Database, SqliteDatabase
from mhchat.testing import FakeClock, make_post

from .conftest import START, Harness, add_chat, make_harness, settings_from

PLATFORMS = ("x", "bluesky", "facebook")
BUDGETS = {"x": 20, "bluesky": 100, "facebook": 40}
PEOPLE_PER_PLATFORM = 30
QUESTION_OFFSETS = {1: 5, 2: 15, 3: 30, 4: 45}

ORDINARY = [
    "doing ok tonight, a bit tired but glad to be here",
    "going for a walk every morning has really helped",
    "my sister is always there for me",
    "be gentle with yourself, small steps count",
    "journaling before bed clears my head",
    "my dog always knows when I am low",
    "turning my phone off an hour before bed",
    "baking bread, nothing beats it",
    "talking to my GP was a turning point",
    "you deserve kindness, especially from yourself",
    "music in the car, very loud",
    "my support group on Tuesdays",
]
CRISIS = [
    "I want to die tonight, I can't do this anymore",
    "honestly I don't want to be alive anymore",
    "I keep hurting myself and I can't stop",
    "everyone would be better off without me",
    "Quiero morir, ya no puedo más",
]
ABUSE = [
    "you are all fucking idiots, this chat is pathetic",
    "shut up you stupid bitch nobody cares",
    "what a bunch of losers, go fuck yourselves",
]


@dataclass
class Script:
    posts: list[Post] = field(default_factory=list)
    expected_question: dict[tuple[str, str], int | None] = field(default_factory=dict)
    expected_root: dict[tuple[str, str], str] = field(default_factory=dict)
    unsafe: set[tuple[str, str]] = field(default_factory=set)
    crisis: set[tuple[str, str]] = field(default_factory=set)
    bots: set[tuple[str, str]] = field(default_factory=set)
    opted_out: set[tuple[str, str]] = field(default_factory=set)
    early: list[Post] = field(default_factory=list)
    """Replies delivered before their parents."""


def build_script(seed: int = 7) -> Script:
    rng = random.Random(seed)
    script = Script()
    serial = iter(range(1, 100_000))

    def add(post: Post, question: int | None, root: str, *, early: bool = False) -> Post:
        key = (post.platform, post.remote_id)
        script.posts.append(post)
        script.expected_question[key] = question
        script.expected_root[key] = root
        if early:
            script.early.append(post)
        return post

    for platform in PLATFORMS:
        p = PlatformName(platform)
        qposts = {}
        for n, offset in QUESTION_OFFSETS.items():
            q = make_post(
                f"{platform}-q{n}",
                author="host",
                text=f"Q{n}: question {n} tonight #MHChat",
                platform=p,
                created_at=START + timedelta(minutes=offset),
                is_own=True,
            )
            qposts[n] = add(q, n, q.remote_id)
        answers: list[Post] = []
        for i in range(PEOPLE_PER_PLATFORM):
            name = f"{platform}{i:02d}"
            for j in range(rng.randint(2, 5)):
                n = rng.randint(1, 4)
                at = START + timedelta(minutes=QUESTION_OFFSETS[n] + rng.randint(1, 14), seconds=j)
                text = f"{rng.choice(ORDINARY)} ({name} #{j})"
                rid = f"{platform}-{next(serial)}"
                style = rng.choice(["tagged", "tagged", "reply_q", "quote_q", "chat"])
                if style == "tagged":
                    post = make_post(
                        rid, author=name, text=f"A{n}: {text} #MHChat", platform=p, created_at=at
                    )
                    answers.append(add(post, n, rid))
                elif style == "reply_q":
                    post = make_post(
                        rid,
                        author=name,
                        text=f"{text} #MHChat",
                        platform=p,
                        created_at=at,
                        parent=qposts[n].remote_id,
                    )
                    answers.append(add(post, n, qposts[n].remote_id))
                elif style == "quote_q":
                    post = make_post(
                        rid,
                        author=name,
                        text=f"{text} #MHChat",
                        platform=p,
                        created_at=at,
                        quoted=qposts[n].remote_id,
                    )
                    answers.append(add(post, n, rid))
                else:
                    add(
                        make_post(
                            rid, author=name, text=f"{text} #MHChat", platform=p, created_at=at
                        ),
                        None,
                        rid,
                    )
        # Conversations under answers; a third arrive before the answer they reply to, and
        # some name only their parent (no root), so the root is found when the parent arrives.
        for k in range(25):
            parent = rng.choice(answers)
            pkey = (parent.platform, parent.remote_id)
            name = f"{platform}{rng.randrange(PEOPLE_PER_PLATFORM):02d}"
            rid = f"{platform}-{next(serial)}"
            post = make_post(
                rid,
                author=name,
                text=f"same here, thank you ({name} r{k}) #MHChat",
                platform=p,
                created_at=parent.created_at + timedelta(minutes=2),
                parent=parent.remote_id,
            )
            if k % 2 == 0:
                post = replace(post, reply_root=None)
            else:
                # As the platforms do (X conversation_id, Bluesky root ref): the thread's top.
                post = replace(
                    post, reply_root=PostRef(remote_id=RemoteId(script.expected_root[pkey]))
                )
            add(post, script.expected_question[pkey], script.expected_root[pkey], early=k % 3 == 0)
        # Unsafe posts from people who also post ordinary answers.
        for c, text in enumerate(CRISIS[:2] if platform != "bluesky" else CRISIS[2:]):
            name = f"{platform}{c:02d}"
            rid = f"{platform}-crisis-{c}"
            post = add(
                make_post(
                    rid,
                    author=name,
                    text=f"A2 {text} #MHChat",
                    platform=p,
                    created_at=START + timedelta(minutes=20 + c),
                ),
                2,
                rid,
            )
            script.unsafe.add((platform, rid))
            script.crisis.add((platform, rid))
        for a, text in enumerate(ABUSE[:1] if platform != "x" else ABUSE):
            name = f"troll{platform}{a}"
            rid = f"{platform}-abuse-{a}"
            add(
                make_post(
                    rid,
                    author=name,
                    text=f"{text} #MHChat",
                    platform=p,
                    created_at=START + timedelta(minutes=25 + a),
                ),
                None,
                rid,
            )
            script.unsafe.add((platform, rid))
        # A spammer repeating one long text, and a bot.
        for s in range(3):
            rid = f"{platform}-spam-{s}"
            add(
                make_post(
                    rid,
                    author=f"spammer{platform}",
                    text=f"Earn money fast from home with this amazing {platform} offer #MHChat",
                    platform=p,
                    created_at=START + timedelta(minutes=10 + s),
                ),
                None,
                rid,
            )
            if s >= 2:
                script.unsafe.add((platform, rid))
        bot = replace(
            make_post(
                f"{platform}-bot",
                author=f"bot{platform}",
                text="A1 automated daily quote about wellbeing #MHChat",
                platform=p,
                created_at=START + timedelta(minutes=8),
            ),
            is_bot=True,
        )
        add(bot, 1, bot.remote_id)
        script.bots.add((platform, f"id-bot{platform}"))
        # Someone asks not to be reposted, before posting their answers.
        name = f"{platform}29"
        optout = make_post(
            f"{platform}-optout",
            author=name,
            text="@host please don't repost me, I like lurking #MHChat",
            platform=p,
            created_at=START - timedelta(minutes=5),
            mentions_host=True,
        )
        add(optout, None, optout.remote_id)
        script.opted_out.add((platform, f"id-{name}"))
    return script


def batches(script: Script, size: int = 25) -> list[list[Post]]:
    early = {(p.platform, p.remote_id) for p in script.early}
    ordered = sorted(
        (p for p in script.posts if (p.platform, p.remote_id) not in early),
        key=lambda p: p.created_at,
    )
    groups = [ordered[i : i + size] for i in range(0, len(ordered), size)]
    # Each early reply goes into the first batch (it arrives before its parent).
    groups[0] = list(script.early) + groups[0]
    # Facebook's Q4 arrives last, after every answer that replies to or quotes it.
    late = [p for g in groups for p in g if p.remote_id == "facebook-q4"]
    groups = [[p for p in g if p.remote_id != "facebook-q4"] for g in groups]
    groups.append(late)
    return [g for g in groups if g]


@pytest.fixture
async def played(db: SqliteDatabase) -> tuple[Harness, Script]:
    return await play(db)


async def play(db: Database) -> tuple[Harness, Script]:
    """Run the scripted session through ingest and the scheduler on a migrated database."""
    await add_chat(db)
    settings = settings_from({"reposts": {"budget": BUDGETS}, "welcomes": {"budget": 100}})
    clock = FakeClock(START - timedelta(minutes=10))
    harness = make_harness(db, clock, settings)
    # Returning participants: x05 was welcomed last week and must not be welcomed again;
    # x06 has been coming for a month (from before welcomes existed) and is not new.
    async with db.write() as tx:
        await tx.execute(
            "INSERT INTO participants (chat_id, platform, author_id, handle, first_seen_at)"
            " VALUES ('default', 'x', 'id-x05', 'x05', '2026-11-18T20:10:00+00:00'),"
            " ('default', 'x', 'id-x06', 'x06', '2026-10-28T20:10:00+00:00')"
        )
        await tx.execute(
            "INSERT INTO welcomes (chat_id, platform, author_id, session_id, remote_id,"
            " decided_at) VALUES ('default', 'x', 'id-x05', '2026-11-18', 'old',"
            " '2026-11-18T20:11:00+00:00')"
        )
    script = build_script()
    for group in batches(script):
        clock.set(max(p.created_at for p in group) + timedelta(seconds=5))
        await harness.feed([PostReceived(post=p) for p in group])
    qfile, _ = parse_questions(
        {
            "default": {
                "questions": [
                    {"n": n, "offset_minutes": o, "text": f"question {n}"}
                    for n, o in QUESTION_OFFSETS.items()
                ]
            }
        }
    )
    clock.set(START + timedelta(minutes=61))
    scheduler = Scheduler(
        db=db,
        clock=clock,
        settings=settings,
        modes={Purpose.SIGNPOSTING: Mode.APPROVE_FIRST},
        platforms=list(PLATFORMS),
        questions=qfile,
    )
    report = await scheduler.tick()
    assert report.filled > 0
    return harness, script


def eligible_authors(script: Script) -> dict[str, set[str]]:
    found: dict[str, set[str]] = defaultdict(set)
    for post in script.posts:
        author = (post.platform, post.author.author_id)
        if post.is_own or (post.platform, post.remote_id) in script.unsafe:
            continue
        if author in script.bots or author in script.opted_out:
            continue
        found[post.platform].add(post.author.author_id)
    return found


async def reposts(harness: Harness) -> list[tuple[int, str, str, str, str]]:
    rows = await harness.rows(
        "SELECT a.id, a.platform, a.target_id, r.author_id, r.round FROM actions a"
        " JOIN session_reposts r ON r.chat_id = a.chat_id AND r.platform = a.platform"
        " AND r.remote_id = a.target_id WHERE a.purpose = 'repost' ORDER BY a.id"
    )
    return [(int(r[0]), str(r[1]), str(r[2]), str(r[3]), str(r[4])) for r in rows]


class TestScriptedSession:
    async def test_size(self, played: tuple[Harness, Script]) -> None:
        harness, script = played
        stored = await harness.rows("SELECT COUNT(*), COUNT(DISTINCT author_id) FROM posts")
        assert stored[0][0] == len(script.posts) >= 300
        assert stored[0][1] >= 90

    async def test_everyone_once_before_anyone_twice_while_budget_lasts(
        self, played: tuple[Harness, Script], capsys: pytest.CaptureFixture[str]
    ) -> None:
        harness, script = played
        eligible = eligible_authors(script)
        done = await reposts(harness)
        for platform in PLATFORMS:
            mine = [r for r in done if r[1] == platform]
            counts: Counter[str] = Counter()
            for _, _, _, author, _ in mine:
                if counts[author] == 1:
                    # Someone's second repost: everyone eligible already has one.
                    assert eligible[platform] <= set(counts), platform
                counts[author] += 1
            assert len(mine) <= BUDGETS[platform]
            reposted = set(counts)
            assert reposted <= eligible[platform]
            coverage = len(reposted) / min(BUDGETS[platform], len(eligible[platform]))
            with capsys.disabled():
                print(
                    f"\n{platform}: {len(mine)} reposts of budget {BUDGETS[platform]};"
                    f" {len(reposted)} distinct of {len(eligible[platform])} eligible;"
                    f" coverage {coverage:.2f}"
                )
            assert coverage == 1.0, (platform, coverage)
            if BUDGETS[platform] < len(eligible[platform]):
                assert max(counts.values()) == 1
                assert len(mine) == BUDGETS[platform]
            else:
                # The rest of the budget went to second posts after the live hour.
                assert len(mine) > len(eligible[platform])
                assert (
                    max(counts.values()) - min(counts.values()) <= 1
                    or len(mine) == BUDGETS[platform]
                )

    async def test_no_post_reposted_twice_and_none_unsafe_or_own(
        self, played: tuple[Harness, Script]
    ) -> None:
        harness, script = played
        rows = await harness.rows("SELECT platform, target_id FROM actions WHERE kind = 'repost'")
        targets = [(str(r[0]), str(r[1])) for r in rows]
        assert len(targets) == len(set(targets))
        own = {(p.platform, p.remote_id) for p in script.posts if p.is_own}
        bots = {(p.platform, p.remote_id) for p in script.posts if p.is_bot}
        assert not set(targets) & (script.unsafe | own | bots)
        opted = await harness.rows(
            "SELECT COUNT(*) FROM session_reposts WHERE author_id IN ('id-x29', 'id-bluesky29',"
            " 'id-facebook29')"
        )
        assert opted[0][0] == 0

    async def test_each_first_timer_welcomed_exactly_once(
        self, played: tuple[Harness, Script]
    ) -> None:
        harness, script = played
        rows = await harness.rows("SELECT key FROM actions WHERE purpose = 'welcome'")
        authors = Counter(":".join(str(r[0]).split(":")[1:3]) for r in rows)
        assert all(count == 1 for count in authors.values())
        # Everyone new with at least one post that is fine is welcomed once; a first post
        # that was flagged does not stop a later fine one from being welcomed, unless the
        # person's batch held a crisis post (a person replies first).
        ok_authors = {
            (p.platform, p.author.author_id)
            for p in script.posts
            if not p.is_own and (p.platform, p.remote_id) not in script.unsafe
        }
        expected = {
            f"{platform}:{author}"
            for platform, author in ok_authors
            if (platform, author) not in {("x", "id-x05"), ("x", "id-x06")}
            and (platform, author) not in script.bots
        }
        assert set(authors) == expected
        assert len(authors) >= 80

    async def test_every_crisis_post_in_the_safety_queue_with_signposting(
        self, played: tuple[Harness, Script]
    ) -> None:
        harness, script = played
        async with harness.db.read() as tx:
            queue = await views.safety_queue(tx, "default", START + timedelta(hours=2))
        crisis = {(f.platform, f.remote_id) for f in queue if f.category == "crisis"}
        assert crisis == script.crisis
        for flag in queue:
            if flag.category == "crisis":
                assert flag.signpost_state == "awaiting_approval"
                assert flag.signpost_text
                assert "116 123" in flag.signpost_text or "988" in flag.signpost_text
                assert flag.text is not None  # the post is kept, not hidden
        assert {(f.platform, f.remote_id) for f in queue} == script.unsafe
        assert queue[0].category == "crisis"

    async def test_questions_and_threads_grouped_including_out_of_order(
        self, played: tuple[Harness, Script]
    ) -> None:
        harness, script = played
        rows = await harness.rows("SELECT platform, remote_id, question_n, thread_root FROM posts")
        got_q = {(str(r[0]), str(r[1])): r[2] for r in rows}
        got_root = {(str(r[0]), str(r[1])): str(r[3]) for r in rows}
        assert got_q == script.expected_question
        assert got_root == script.expected_root
        async with harness.db.read() as tx:
            groups = await views.grouped(tx, "default", "2026-11-25")
        assert [g.n for g in groups] == [1, 2, 3, 4, None]
        q2 = groups[1]
        assert {t.platform for t in q2.threads} == set(PLATFORMS)

    async def test_figures_for_the_debrief(self, played: tuple[Harness, Script]) -> None:
        harness, script = played
        async with harness.db.read() as tx:
            fig = await views.figures(tx, "default", "2026-11-25")
        assert fig.participants == len(
            {(p.platform, p.author.author_id) for p in script.posts if not p.is_own}
        )
        assert set(fig.posts_by_platform) == set(PLATFORMS)
        assert (
            fig.reposts
            == sum(BUDGETS[p] if BUDGETS[p] < 40 else 0 for p in PLATFORMS) + fig.reposts - 20
        )
        assert fig.flags["crisis"] == len(script.crisis)
        assert sum(sum(m.values()) for m in fig.per_minute.values()) == sum(
            fig.posts_by_platform.values()
        )

    async def test_deletion_undoes_our_repost(self, played: tuple[Harness, Script]) -> None:
        harness, _ = played
        done = await reposts(harness)
        _, platform, target, _, _ = done[0]
        await harness.feed(
            [
                PostDeleted(
                    platform=PlatformName(platform),
                    remote_id=RemoteId(target),
                    deleted_at=START + timedelta(hours=1, minutes=5),
                )
            ]
        )
        # The pending repost is dropped (it was never sent).
        rows = await harness.rows(
            "SELECT state, detail FROM actions WHERE key = ?", (f"repost:{platform}:{target}",)
        )
        assert rows[0][0] == "dropped"
        assert "deleted" in str(rows[0][1])
        left = await harness.rows(
            "SELECT COUNT(*) FROM posts WHERE platform = ? AND remote_id = ?", (platform, target)
        )
        assert left[0][0] == 0


def test_script_is_deterministic() -> None:
    a, b = build_script(), build_script()
    assert [p.remote_id for p in a.posts] == [p.remote_id for p in b.posts]
    assert isinstance(a.posts[0].created_at, datetime)
