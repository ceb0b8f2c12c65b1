"""Property-based tests: thread grouping does not depend on arrival order, and fair reposts
never give anyone a second repost while someone eligible has none."""

from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from mhchat.events import PlatformName, Post, PostReceived, PostRef, RemoteId
from mhchat.facilitation.reposts import Candidate, fill_round, first_round
from mhchat.facilitation.threads import Link, MemoryLinks, apply_batch, group
from mhchat.store.db import SqliteDatabase
from mhchat.store.migrate import migrate
from mhchat.testing import FakeClock, make_post

from .conftest import START, add_chat, make_harness

P = "x"


@st.composite
def forests(draw: st.DrawFn) -> list[Link]:
    """Posts whose parents come earlier in creation order (a forest), some quoting others,
    some naming their root as a platform would, some tagged with a question number."""
    size = draw(st.integers(min_value=1, max_value=30))
    links: list[Link] = []
    true_root: dict[int, int] = {}
    for i in range(size):
        parent = (
            draw(st.one_of(st.none(), st.integers(min_value=0, max_value=i - 1))) if i else None
        )
        true_root[i] = i if parent is None else true_root[parent]
        quoted = (
            draw(st.one_of(st.none(), st.integers(min_value=0, max_value=i - 1))) if i else None
        )
        gives_root = parent is not None and draw(st.booleans())
        tag = draw(st.one_of(st.none(), st.integers(min_value=1, max_value=5)))
        links.append(
            Link(
                key=(P, str(i)),
                parent=(P, str(parent)) if parent is not None else None,
                given_root=(P, str(true_root[i])) if gives_root else None,
                quoted=(P, str(quoted)) if quoted is not None else None,
                tag=tag,
            )
        )
    return links


async def incremental(
    links: list[Link], order: list[int], cuts: list[int]
) -> dict[tuple[str, str], Link]:
    store = MemoryLinks()
    arriving = [links[i] for i in order]
    bounds = sorted({c % (len(arriving) + 1) for c in cuts} | {0, len(arriving)})
    for start, end in itertools.pairwise(bounds):
        if end > start:
            await apply_batch(arriving[start:end], store)
    return store.links


class TestThreadGrouping:
    @settings(max_examples=150, deadline=None)
    @given(data=st.data(), links=forests())
    async def test_any_arrival_order_and_batching_gives_the_same_grouping(
        self, data: st.DataObject, links: list[Link]
    ) -> None:
        order = data.draw(st.permutations(list(range(len(links)))))
        cuts = data.draw(st.lists(st.integers(min_value=0, max_value=40), max_size=6))
        got = await incremental(links, order, cuts)
        want = group(links)
        assert {k: (v.root, v.question) for k, v in got.items()} == {
            k: (v.root, v.question) for k, v in want.items()
        }

    @settings(max_examples=100, deadline=None)
    @given(links=forests())
    def test_every_post_in_a_tree_shares_its_root_and_tags_win(self, links: list[Link]) -> None:
        grouped = group(links)
        for link in grouped.values():
            if link.parent is not None:
                assert link.root == grouped[link.parent].root
            if link.tag is not None:
                assert link.question == link.tag
            elif link.quoted is not None and grouped[link.quoted].question is not None:
                assert link.question == grouped[link.quoted].question


BASE = datetime(2026, 11, 25, 20, 0, tzinfo=UTC)


@st.composite
def candidate_sets(draw: st.DrawFn) -> list[Candidate]:
    authors = draw(st.integers(min_value=1, max_value=15))
    found = []
    for n in range(draw(st.integers(min_value=0, max_value=60))):
        author = draw(st.integers(min_value=0, max_value=authors - 1))
        found.append(
            Candidate(
                platform=P,
                remote_id=f"p{n}",
                version=None,
                author=(P, f"a{author}"),
                created_at=BASE + timedelta(seconds=draw(st.integers(0, 3600))),
                is_answer=draw(st.booleans()),
                is_first_post=draw(st.booleans()),
                session_id="2026-11-25",
            )
        )
    return found


class TestFairness:
    @settings(max_examples=200, deadline=None)
    @given(
        batches=st.lists(candidate_sets(), min_size=1, max_size=5),
        budget=st.integers(min_value=0, max_value=40),
    )
    def test_everyone_once_before_anyone_twice(
        self, batches: list[list[Candidate]], budget: int
    ) -> None:
        counts: Counter[tuple[str, str]] = Counter()
        chosen_ids: list[str] = []
        seen: list[Candidate] = []
        for drawn in batches:
            # Remote ids are unique per platform: rename per batch.
            batch = [replace(c, remote_id=f"{c.remote_id}-{len(seen)}") for c in drawn]
            seen.extend(batch)
            picked = first_round(batch, counts, budget - sum(counts.values()))
            assert len({c.author for c in picked}) == len(picked)
            for c in picked:
                assert counts[c.author] == 0
                counts[c.author] += 1
                chosen_ids.append(c.remote_id)
        assert sum(counts.values()) <= budget
        eligible = {c.author for c in seen}
        if sum(counts.values()) < budget:
            assert set(counts) == eligible  # budget left: everyone seen got one
        # After the live hour, the rest goes level by level.
        rest = [c for c in seen if c.remote_id not in chosen_ids]
        before = Counter(counts)
        for c in fill_round(rest, counts, budget - sum(counts.values())):
            counts[c.author] += 1
            chosen_ids.append(c.remote_id)
        assert len(chosen_ids) == len(set(chosen_ids))
        assert sum(counts.values()) <= budget
        gained = [a for a in counts if counts[a] > before[a]]
        if gained:
            top = max(counts[a] for a in gained)
            # Anyone who ended below top - 1 had no posts left to give.
            remaining = Counter(c.author for c in rest if c.remote_id not in chosen_ids)
            for author in eligible:
                if counts[author] < top - 1:
                    assert remaining[author] == 0


class TestThreadGroupingInTheStore:
    """The same invariant through the real ingest path and SQL store (fewer examples)."""

    @settings(max_examples=25, deadline=None)
    @given(data=st.data(), links=forests())
    async def test_sql_store_matches_the_reference(
        self, data: st.DataObject, links: list[Link]
    ) -> None:
        db = await SqliteDatabase.open(":memory:")
        try:
            await migrate(db)
            await add_chat(db)
            harness = make_harness(db, FakeClock(START))
            posts = {link.key: _post_for(link) for link in links}
            order = data.draw(st.permutations(list(posts)))
            size = data.draw(st.integers(min_value=1, max_value=8))
            for start in range(0, len(order), size):
                await harness.feed(
                    [PostReceived(post=posts[k]) for k in order[start : start + size]]
                )
            rows = await harness.rows("SELECT remote_id, thread_root, question_n FROM posts")
            got = {(P, str(r[0])): ((P, str(r[1])), r[2]) for r in rows}
            want = {k: (v.root, v.question) for k, v in group(links).items()}
            assert got == want
        finally:
            await db.close()


def _post_for(link: Link) -> Post:
    # Own posts carry "Qn", others "An", as the chat convention has it.
    tag = f"A{link.tag} " if link.tag is not None else ""
    post = make_post(
        link.key[1],
        author=f"u{link.key[1]}",
        text=f"{tag}post {link.key[1]} #MHChat",
        platform=PlatformName(P),
        created_at=START + timedelta(minutes=5),
        parent=link.parent[1] if link.parent else None,
        quoted=link.quoted[1] if link.quoted else None,
    )
    root = PostRef(remote_id=RemoteId(link.given_root[1])) if link.given_root else None
    return replace(post, reply_root=root)
