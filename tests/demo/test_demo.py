"""The demo end to end: its own figures (database, emulators) against the simulator's script."""

from __future__ import annotations

import io
from collections import Counter, defaultdict

import aiohttp
import orjson
import pytest
import pytest_asyncio
from rich.console import Console

from mhchat.config import DatabaseSettings
from mhchat.demo.config import budgets
from mhchat.demo.runner import DemoOptions, DemoResult, run_demo
from mhchat.demo.script import Script, Step, generate
from mhchat.store.open import open_database

pytestmark = [pytest.mark.timeout(120), pytest.mark.asyncio(loop_scope="module")]


DASHBOARD_PAGES: list[tuple[int, str]] = []


CONSOLE_OUT = io.StringIO()
"""What the demo printed; not a terminal, as in a CI log."""


async def look_at_dashboard(url: str) -> None:
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        DASHBOARD_PAGES.append((response.status, await response.text()))


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoResult:
    out = tmp_path_factory.mktemp("demo")
    console = Console(file=CONSOLE_OUT, width=120)
    options = DemoOptions(
        speed=300,
        out=out,
        browser=False,
        participants=24,
        configure_logs=False,
        on_started=look_at_dashboard,
    )
    return await run_demo(options, console)


async def rows(
    result: DemoResult, sql: str, params: tuple[object, ...] = ()
) -> list[tuple[object, ...]]:
    db = await open_database(DatabaseSettings(url=f"sqlite:///{result.database}"))
    try:
        async with db.read() as tx:
            return [tuple(r) for r in await tx.fetchall(sql, params)]
    finally:
        await db.close()


def first_in_session(script: Script) -> dict[str, Step]:
    first: dict[str, Step] = {}
    for step in sorted(script.steps, key=lambda s: s.at):
        if script.in_session(step):
            first.setdefault(step.author, step)
    return first


class TestDemoAgainstTheScript:
    async def test_every_step_was_played_and_nothing_failed(self, demo: DemoResult) -> None:
        assert demo.skipped_steps == []
        assert demo.errors == []
        assert demo.dashboard_url.endswith("/dashboard")
        [(status, page)] = DASHBOARD_PAGES
        assert status == 200
        assert "password" in page.lower()
        posts = [s for s in demo.script.steps if s.is_post]
        assert set(demo.remote) == {s.id for s in posts}

    async def test_progress_is_printed_when_not_on_a_terminal(self, demo: DemoResult) -> None:
        lines = [
            ln for ln in CONSOLE_OUT.getvalue().splitlines() if ln.startswith("#MHChat demo:")
        ]
        assert len(lines) >= 2
        assert any("live, minute" in ln for ln in lines)
        bad = [ln for ln in lines if not ("x posted" in ln and "facebook posted" in ln)]
        assert bad == []

    async def test_compressed_time_leaves_the_transports_steady(self, demo: DemoResult) -> None:
        # Timers measured with the clock (the X stall detector) are scaled with the speed, and
        # network timeouts stay real: no stall is seen, no webhook has to be retried.
        assert demo.x_stream_connections == 1
        assert demo.webhook_failures == 0

    async def test_posts_participants_first_timers_flags_deletions(self, demo: DemoResult) -> None:
        expected = demo.script.expected()
        summary = demo.summary
        assert summary.posts_by_platform == expected.posts_by_platform
        assert summary.participants == expected.participants
        assert summary.first_timers == expected.first_timers
        assert summary.welcomes_decided == len(expected.welcomes_decided)
        assert summary.flags == expected.flags
        assert summary.deletions_honoured == expected.deletions

    async def test_welcomes_reach_first_timers_and_x_only_when_the_host_is_mentioned(
        self, demo: DemoResult
    ) -> None:
        expected = demo.script.expected()
        first = first_in_session(demo.script)
        for platform in ("x", "bluesky", "facebook"):
            wanted = {
                demo.remote[first[key].id]
                for key in expected.welcomes_sent
                if key.startswith(f"{platform}:")
            }
            assert demo.summary.sent[platform].replies == wanted, platform
        x_decided = {k for k in expected.welcomes_decided if k.startswith("x:")}
        x_sent = {k for k in expected.welcomes_sent if k.startswith("x:")}
        assert x_sent, "the script has a newcomer who @mentions the host on X"
        assert x_decided - x_sent, "and newcomers on X who do not"
        skipped = await rows(
            demo,
            "SELECT COUNT(*) FROM actions WHERE platform = 'x' AND purpose = 'welcome'"
            " AND state = 'skipped'",
        )
        assert skipped == [(len(x_decided - x_sent),)]

    async def test_the_emulators_hold_what_the_ledger_says_was_sent(
        self, demo: DemoResult
    ) -> None:
        sent = await rows(
            demo,
            "SELECT platform, purpose, target_id FROM actions WHERE state = 'sent'"
            " AND purpose IN ('repost', 'undo_repost', 'welcome')",
        )
        by: dict[tuple[str, str], set[str]] = defaultdict(set)
        for platform, purpose, target in sent:
            by[(str(platform), str(purpose))].add(str(target))
        for platform in ("x", "bluesky", "facebook"):
            reposted = by[(platform, "repost")] - by[(platform, "undo_repost")]
            assert demo.summary.sent[platform].reposts == reposted, platform
            assert demo.summary.sent[platform].replies == by[(platform, "welcome")], platform
        assert sum(demo.summary.reposts(p) for p in ("x", "bluesky")) > 0

    async def test_questions_go_out_once_on_every_platform(self, demo: DemoResult) -> None:
        for platform, sent in demo.summary.sent.items():
            assert sent.questions == (1, 2, 3, 4), platform

    async def test_reposts_within_budget_fair_and_never_of_what_must_not_be_amplified(
        self, demo: DemoResult
    ) -> None:
        script, summary = demo.script, demo.summary
        budget = budgets(script)
        expected = script.expected()
        assert summary.reposts("x") == budget["x"], "X has fewer reposts than eligible people"
        assert 0 < summary.reposts("bluesky") <= budget["bluesky"]
        assert summary.reposts("facebook") == 0
        forbidden = {demo.remote[i] for i in expected.never_amplified | script.deleted}
        forbidden |= {
            demo.remote[s.id] for s in script.steps if s.is_post and s.author in expected.opted_out
        }
        for platform, sent in summary.sent.items():
            assert not sent.reposts & forbidden, platform

        eligible: dict[str, set[str]] = defaultdict(set)
        by_remote: dict[str, str] = {}
        for step in script.session_posts():
            by_remote[demo.remote[step.id]] = step.author
            if step.category == "ok" and step.author not in expected.opted_out:
                eligible[step.platform].add(step.author)
        decided = await rows(
            demo,
            "SELECT platform, remote_id FROM session_reposts WHERE session_id = ?",
            (demo.session_id,),
        )
        per_author: dict[str, Counter[str]] = defaultdict(Counter)
        for where, remote_id in decided:
            per_author[str(where)][by_remote.get(str(remote_id), "deleted")] += 1
        for platform in ("x", "bluesky"):
            counts = per_author[platform]
            assert sum(counts.values()) <= budget[platform]
            if max(counts.values()) > 1:
                # Every eligible participant once before anyone twice.
                assert eligible[platform] <= set(counts), platform
            else:
                assert len(counts) == min(budget[platform], len(eligible[platform]))

    async def test_crisis_and_abuse_are_flagged_on_their_posts(self, demo: DemoResult) -> None:
        flags = await rows(demo, "SELECT remote_id, category FROM safety_flags")
        found = {(str(r), str(c)) for r, c in flags}
        for step in demo.script.steps:
            if step.is_post and step.category in ("crisis", "abuse", "spam"):
                assert (demo.remote[step.id], step.category) in found, step.id
        signposts = await rows(demo, "SELECT state FROM actions WHERE purpose = 'signposting'")
        assert signposts == [("awaiting_approval",)], "a person approves signposting replies"

    async def test_deleted_posts_are_gone_from_store_and_transcripts(
        self, demo: DemoResult
    ) -> None:
        gone = {demo.remote[i] for i in demo.script.deleted}
        assert len(gone) == 2
        stored = await rows(demo, "SELECT remote_id FROM posts")
        assert not gone & {str(r[0]) for r in stored}
        for path in demo.transcripts.values():
            text = path.read_text(encoding="utf-8")
            for step_id in demo.script.deleted:
                assert demo.script.step(step_id).text not in text
        data = orjson.loads(demo.transcripts["json"].read_bytes())
        assert gone.isdisjoint(str(v) for v in _values(data))

    async def test_reply_chains_share_one_thread(self, demo: DemoResult) -> None:
        found = await rows(demo, "SELECT remote_id, thread_root FROM posts")
        roots = {str(r): str(t) for r, t in found}
        chains = demo.script.threads()
        assert len(chains) >= 10
        for chain in chains:
            assert len({roots[demo.remote[i]] for i in chain}) == 1, chain

    async def test_transcripts_are_written_in_every_format(self, demo: DemoResult) -> None:
        assert set(demo.transcripts) == {"md", "html", "json", "csv"}
        for path in demo.transcripts.values():
            assert path.parent == demo.database.parent
            assert "What is one small thing that helped you lately?" in path.read_text("utf-8")


def _values(value: object) -> list[object]:
    if isinstance(value, dict):
        return [v for item in value.values() for v in _values(item)]
    if isinstance(value, list):
        return [v for item in value for v in _values(item)]
    return [value]


async def test_the_script_is_seeded() -> None:
    assert generate(3, 30) == generate(3, 30)
    assert generate(3, 30) != generate(4, 30)
