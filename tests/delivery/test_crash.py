"""Crash safety: the real service, killed with SIGKILL again and again during a live session.

``mhchat serve`` runs as a subprocess with the real X, Bluesky and Facebook adapters pointed at
the emulators in this process. A crowd posts thousands of answers, replies and first posts
through each platform's own inbound path (X filtered stream and search, Bluesky Jetstream,
signed Facebook webhooks), deletes some of them, and a bot account posts too. The platforms
misbehave now and then (429 with a reset, 5xx, a write that takes effect but never answers).
Meanwhile the service is killed at random moments and restarted each time.

At the end, with the emulators as the witnesses:

- every participant post is stored exactly once, minus the ones deleted;
- no action took effect twice on a platform, and every effect has its ledger row;
- every outcome left unknown (a kill or a timeout mid-send) is either still ``unknown`` for a
  facilitator or was confirmed against the platform; none was sent again;
- deleted posts are gone and our reposts of them undone;
- the host never answered its own posts or a bot;
- no secret and no post text is in the logs.
"""

from __future__ import annotations

import asyncio
import random
import secrets
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest

from mhchat.actions import Publish, Reply, Repost
from mhchat.codec import action_from_json
from mhchat.emulators.bluesky import POST, REPOST
from mhchat.emulators.facebook import Person
from mhchat.testing import free_port

from .harness import (
    Platforms,
    Service,
    leaks,
    meta_retries,
    query,
    questions_file,
    schedule_now,
    service_config,
)

pytestmark = [pytest.mark.timeout(400)]

KILLS = 10
POSTS = 2500
X_HOST = "MHChatHost"


@dataclass
class Crowd:
    """Participants on the three platforms, and what they did."""

    p: Platforms
    rng: random.Random
    posted: dict[tuple[str, str], str] = field(default_factory=dict)
    deleted: set[tuple[str, str]] = field(default_factory=set)
    bots: set[tuple[str, str]] = field(default_factory=set)
    _bsky_dids: dict[str, str] = field(default_factory=dict)
    _recent: dict[str, list[str]] = field(default_factory=dict)
    _fb_comments: dict[str, list[str]] = field(default_factory=dict)
    _fb_replies: dict[str, list[str]] = field(default_factory=dict)
    fb_seed: str = ""

    def _note(self, platform: str, remote_id: str, text: str) -> None:
        self.posted[(platform, remote_id)] = text
        recent = self._recent.setdefault(platform, [])
        recent.append(remote_id)
        del recent[:-200]

    def _earlier(self, platform: str) -> list[str]:
        return [r for r in self._recent.get(platform, []) if (platform, r) not in self.deleted]

    def _text(self, mention: str = "") -> str:
        n = self.rng.randint(1, 2)
        words = self.rng.choice(("walking helped", "talking to a friend", "sleep, mostly"))
        return f"{mention}A{n} {words} {secrets.token_hex(5)} #MHChat".strip()

    def _x(self, i: int) -> None:
        who = f"xperson{self.rng.randrange(300)}"
        questions = [t["id"] for t in self.p.x.created_tweets if "reply" not in t]
        mine = self._earlier("x")
        roll = self.rng.random()
        reply_to = None
        if roll < 0.3 and questions:
            reply_to = self.rng.choice(questions)
        elif roll < 0.5 and mine:
            reply_to = self.rng.choice(mine)
        text = self._text(f"@{X_HOST} " if self.rng.random() < 0.3 else "")
        self._note("x", self.p.x.post_tweet(who, text, reply_to=reply_to), text)

    def _bsky(self, i: int) -> None:
        bot = i % 40 == 0
        handle = "helperbot.test" if bot else f"bperson{self.rng.randrange(300)}.test"
        if handle not in self._bsky_dids:
            self._bsky_dids[handle] = self.p.bsky.create_account(handle, bot=bot)
        did = self._bsky_dids[handle]
        questions = [
            r.uri
            for r in self.p.bsky.host_writes
            if r.collection == POST and "reply" not in r.value
        ]
        mine = self._earlier("bluesky")
        roll = self.rng.random()
        reply_to = None
        if roll < 0.3 and questions:
            reply_to = self.rng.choice(questions)
        elif roll < 0.5 and mine:
            reply_to = self.rng.choice(mine)
        text = self._text()
        uri = self.p.bsky.post(did, text, reply_to=reply_to)
        self._note("bluesky", uri, text)
        if bot:
            self.bots.add(("bluesky", uri))

    async def _fb(self, i: int) -> None:
        n = self.rng.randrange(200)
        person = Person(str(139560936745000 + n), f"Person {n}")
        page_posts = [s.remote_id for s in self.p.fb.sent if s.kind == "publish"] + [self.fb_seed]
        on = self.rng.choice(page_posts)
        comments = [
            c for c in self._fb_comments.get(on, [])[-50:] if ("facebook", c) not in self.deleted
        ]
        parent = self.rng.choice(comments) if comments and self.rng.random() < 0.3 else None
        text = self._text()
        remote_id = await self.p.fb.comment(person, text, on, parent)
        self._note("facebook", remote_id, text)
        if parent is None:
            self._fb_comments.setdefault(on, []).append(remote_id)
        else:
            self._fb_replies.setdefault(parent, []).append(remote_id)

    async def _delete(self) -> None:
        platform = self.rng.choice(sorted(self._recent))
        alive = self._earlier(platform)
        remote_id = self.rng.choice(alive[:-10] or alive)
        self.deleted.add((platform, remote_id))
        if platform == "x":
            self.p.x.delete_tweet(remote_id)
        elif platform == "bluesky":
            self.p.bsky.delete(remote_id)
        else:
            # On Facebook a comment's replies go with it; Meta announces only the comment.
            self.deleted.update(("facebook", r) for r in self._fb_replies.get(remote_id, []))
            await self.p.fb.remove(remote_id)

    def _fault(self) -> str:
        """Now and then a platform misbehaves on a write."""
        x, bsky, fb = self.p.x, self.p.bsky, self.p.fb
        faults: list[tuple[str, Callable[[], None]]] = [
            ("x 429", lambda: x.rate_limit_next("retweet", reset_in=1.0)),
            ("x 503", lambda: x.fail_next("retweet", status=503)),
            ("x hang after write", lambda: x.hang_next("retweet", after_write=True)),
            ("x reset", lambda: x.reset_connection_next("create_tweet")),
            (
                "bsky 429",
                lambda: bsky.rate_limit_next("com.atproto.repo.createRecord", reset_in=1),
            ),
            ("bsky 500", lambda: bsky.fail_next("com.atproto.repo.createRecord")),
            (
                "bsky hang after write",
                lambda: bsky.hang_next("com.atproto.repo.createRecord", after_write=True),
            ),
            ("fb 500", lambda: fb.server_error_next(500)),
            ("fb timeout after effect", lambda: fb.timeout_next(after_effect=True)),
        ]
        name, inject = self.rng.choice(faults)
        inject()
        return name

    async def run(self, total: int, seconds: float, faults: Counter[str]) -> None:
        pace = seconds / total
        started = time.monotonic()
        for i in range(total):
            roll = self.rng.random()
            if roll < 0.4:
                self._x(i)
            elif roll < 0.75:
                self._bsky(i)
            else:
                await self._fb(i)
            if i % 25 == 24:
                await self._delete()
            if i % 150 == 75:
                faults[self._fault()] += 1
            lag = started + (i + 1) * pace - time.monotonic()
            await asyncio.sleep(max(0.0, lag))


def effects(p: Platforms) -> Counter[tuple[str, str, str, str]]:
    """Every write the host made, by (platform, kind, text or target, parent)."""
    found: Counter[tuple[str, str, str, str]] = Counter()
    for t in p.x.created_tweets:
        parent = str((t.get("reply") or {}).get("in_reply_to_tweet_id") or "")
        found[("x", "post", t["text"], parent)] += 1
    for tweet_id in p.x.retweet_log:
        found[("x", "repost", tweet_id, "")] += 1
    for r in p.bsky.host_writes:
        if r.collection == POST:
            parent = str(((r.value.get("reply") or {}).get("parent") or {}).get("uri") or "")
            found[("bluesky", "post", r.value["text"], parent)] += 1
        elif r.collection == REPOST:
            found[("bluesky", "repost", r.value["subject"]["uri"], "")] += 1
    for s in p.fb.sent:
        parent = "" if s.kind == "publish" else s.target
        found[("facebook", "post", s.message, parent)] += 1
    return found


def effect_of(platform: str, payload: str) -> tuple[str, str, str, str] | None:
    action = action_from_json(payload)
    if isinstance(action, Publish):
        return (platform, "post", action.text, "")
    if isinstance(action, Reply):
        return (platform, "post", action.text, action.parent.remote_id)
    if isinstance(action, Repost):
        return (platform, "repost", action.target.remote_id, "")
    return None


def stored_now(db_path: Path) -> set[tuple[str, str]]:
    rows = query(db_path, "SELECT platform, remote_id FROM posts WHERE is_own = 0")
    return {(str(r[0]), str(r[1])) for r in rows}


async def wait_for(check: object, within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        await asyncio.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


async def test_sigkill_at_random_points_loses_nothing_and_repeats_nothing(
    tmp_path: Path,
) -> None:
    rng = random.Random()
    p = await Platforms.start()
    _, schedule = schedule_now()
    questions = questions_file(tmp_path / "questions.toml", [0, 1])
    config = service_config(tmp_path, p, schedule=schedule, questions=questions)
    port = free_port()
    p.fb.webhook_url = f"http://127.0.0.1:{port}/webhooks/facebook"
    service = Service(config, p.env(), port, tmp_path / "mhchat.log")
    db_path = tmp_path / "mhchat.db"
    crowd = Crowd(p, rng)
    faults: Counter[str] = Counter()
    began = time.monotonic()
    try:
        crowd.fb_seed = await p.fb.page_post("Tonight's #MHChat thread: say hello below")
        async with aiohttp.ClientSession() as http:
            service.start()
            await service.wait_ready(http)
            posting = asyncio.create_task(crowd.run(POSTS, 45.0, faults))
            for _ in range(KILLS):
                await asyncio.sleep(rng.uniform(0.8, 2.5))
                service.kill()
                await asyncio.sleep(rng.uniform(0.0, 0.5))
                service.start()
                await service.wait_ready(http)
            await posting
            killed_by = time.monotonic() - began

            # Meta's later retries of what failed while the service was down.
            await p.fb.drain()
            await meta_retries(p.fb)
            expected = set(crowd.posted) - crowd.deleted

            def stored_all() -> bool:
                return stored_now(db_path) == expected

            try:
                await wait_for(stored_all, 40, "every participant post to be stored")
            except AssertionError:
                have = stored_now(db_path)
                missing = Counter(k[0] for k in expected - have)
                extra = Counter(k[0] for k in have - expected)
                raise AssertionError(f"missing {missing}, unexpected {extra}") from None

            def settled() -> bool:
                rows = query(
                    db_path,
                    "SELECT COUNT(*) FROM actions WHERE state IN ('pending', 'sending')",
                )
                questions_n2 = query(
                    db_path, "SELECT COUNT(*) FROM actions WHERE key LIKE 'question:%:2:%'"
                )
                return bool(rows[0][0] == 0 and questions_n2[0][0] == 3)

            await wait_for(settled, 60, "the ledger to settle")
            await asyncio.sleep(1.0)
            service.stop()
        elapsed = time.monotonic() - began
    finally:
        service.stop()
        await p.stop()

    # 1. Every participant post stored exactly once (the store's key makes "once" hold; the
    # comparison with what the platforms produced makes "stored" hold).
    rows = query(db_path, "SELECT platform, remote_id, COUNT(*) FROM posts GROUP BY 1, 2")
    assert all(r[2] == 1 for r in rows)
    stored = {
        (str(r[0]), str(r[1]))
        for r in query(db_path, "SELECT platform, remote_id FROM posts WHERE is_own = 0")
    }
    assert stored == set(crowd.posted) - crowd.deleted
    assert not stored & crowd.deleted

    # 2. No action twice: each write took effect at most once on its platform, and every
    # effect belongs to a ledger row that says it was sent or may have been.
    done = effects(p)
    twice = [k for k, n in done.items() if n > 1]
    assert not twice, f"{len(twice)} effects happened twice: {twice[:3]}"
    ledger = query(db_path, "SELECT id, key, platform, payload, state FROM actions")
    by_effect: dict[tuple[str, str, str, str], str] = {}
    for _id, _key, platform, payload, state in ledger:
        effect = effect_of(str(platform), str(payload))
        if effect is not None:
            by_effect[effect] = str(state)
    orphans = [k for k in done if by_effect.get(k) not in ("sent", "unknown")]
    assert not orphans, f"effects without a sent/unknown ledger row: {orphans[:3]}"
    unseen = [k for k, st in by_effect.items() if st == "sent" and k not in done]
    assert not unseen, f"ledger says sent, platform has nothing: {unseen[:3]}"

    # 3. Unknown outcomes surfaced: still unknown for a facilitator, or confirmed on the
    # platform by check_outcome; never moved back to be sent again.
    went_unknown = query(
        db_path,
        "SELECT DISTINCT a.id, a.state, t.detail FROM actions a JOIN action_transitions t"
        " ON t.action_id = a.id WHERE t.to_state = 'unknown'",
    )
    resent = query(
        db_path,
        "SELECT COUNT(*) FROM action_transitions WHERE from_state = 'unknown'"
        " AND to_state IN ('pending', 'sending')",
    )[0][0]
    assert resent == 0
    assert all(str(r[1]) in ("unknown", "sent") for r in went_unknown)
    crash_unknown = {r[0] for r in went_unknown if "stopped while sending" in str(r[2] or "")}
    resolved = {r[0] for r in went_unknown if str(r[1]) == "sent"}
    still_unknown = {r[0] for r in went_unknown if str(r[1]) == "unknown"}

    # 4. Deletions honoured: our reposts of deleted posts undone on the platform.
    states = {str(r[1]): str(r[4]) for r in ledger}
    live_retweets = {tid for _, tid in p.x.retweets}
    live_reposts = {r.value["subject"]["uri"] for r in p.bsky.records(p.bsky.host_did, REPOST)}
    kept = [
        (platform, rid)
        for platform, rid in crowd.deleted
        if (rid in live_retweets or rid in live_reposts)
        and states.get(f"unrepost:{platform}:{rid}") != "unknown"
    ]
    assert not kept, f"reposts of deleted posts left in place: {kept[:3]}"

    # 5. Never a reply to the host's own posts or to a bot.
    own = {str(r[0]) for r in query(db_path, "SELECT remote_id FROM posts WHERE is_own = 1")}
    own |= {t["id"] for t in p.x.created_tweets} | {r.uri for r in p.bsky.host_writes}
    bots = {rid for _, rid in crowd.bots}
    replies = [k for k in done if k[3]]
    assert not [k for k in replies if k[3] in own or k[3] in bots]
    assert not [k for k in done if k[1] == "repost" and k[2] in bots]

    # 6. Logs: no secret, no post text.
    log_text = service.log_path.read_text(errors="replace")
    assert '"event"' in log_text
    assert not leaks(log_text, p.env().values(), crowd.posted.values())

    ledger_states = Counter(str(r[4]) for r in ledger)
    purposes = Counter(str(r[1]).split(":", 1)[0] for r in ledger)
    print(
        f"\ncrash test: {service.kills} SIGKILLs, {service.starts} starts"
        f" (ready in p50 {sorted(service.ready_times)[len(service.ready_times) // 2]:.2f} s);"
        f" {len(crowd.posted)} participant posts"
        f" ({Counter(k[0] for k in crowd.posted)}), {len(crowd.deleted)} deleted,"
        f" {len(stored)} stored once each; {len(ledger)} actions {dict(purposes)},"
        f" states {dict(ledger_states)}; {sum(done.values())} platform effects, none twice;"
        f" unknown outcomes {len(went_unknown)} ({len(crash_unknown)} from kills):"
        f" {len(resolved)} confirmed by check_outcome, {len(still_unknown)} left for a"
        f" facilitator; faults injected {dict(faults)};"
        f" kills done in {killed_by:.1f} s, whole run {elapsed:.1f} s"
    )
