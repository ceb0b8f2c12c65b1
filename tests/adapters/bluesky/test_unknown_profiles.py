"""Authors whose profile the appview could not give: the post still comes in, marked unchecked.

Jetstream carries only the author's DID; whether the account labels itself a bot comes from
getProfiles. When that lookup fails or hangs, the post must still be published (the stream is
never held up), but it must say that nobody could check the author.
"""

from __future__ import annotations

from tests.adapters.bluesky.conftest import Runner, World

from mhchat.emulators.bluesky import BlueskyEmulator
from mhchat.events import Post
from mhchat.testing import FakeClock, RecordingSink

GET_PROFILES = "app.bsky.actor.getProfiles"


def _post(sink: RecordingSink, uri: str) -> Post:
    return next(p for p in sink.posts() if p.remote_id == uri)


async def _published(sink: RecordingSink, uri: str) -> Post:
    await sink.wait_for(lambda _: uri in sink.remote_ids(), 5)
    return _post(sink, uri)


class TestLookupFails:
    async def test_a_bot_post_is_stored_unchecked_then_checked_after_the_pause(
        self, world: World, running: Runner, emulator: BlueskyEmulator
    ) -> None:
        bot = emulator.create_account("helperbot.test", bot=True)
        clock = FakeClock()
        sink = RecordingSink()
        emulator.fail_next(GET_PROFILES, status=502, error="UpstreamFailure")
        async with running(sink, clock=clock) as adapter:
            first = await _published(sink, emulator.post(bot, "A1 beep boop #MHChat"))
            calls = emulator.calls(GET_PROFILES)
            # Within the pause nothing is asked, and the post is not held back for it.
            second = await _published(sink, emulator.post(bot, "A2 still a bot #MHChat"))
            assert emulator.calls(GET_PROFILES) == calls
            clock.advance(5)
            third = await _published(sink, emulator.post(bot, "A3 appview is back #MHChat"))
            failures = dict(adapter.health().counters)["profile_lookup_failures"]
        for unknown in (first, second):
            assert not unknown.author_checked
            assert not unknown.is_bot  # not known to be a bot, and not vouched for either
            assert unknown.author.handle == bot
        assert third.author_checked
        assert third.is_bot
        assert third.author.handle == "helperbot.test"
        assert failures == 1

    async def test_a_hanging_appview_costs_one_timeout_then_the_stream_flows(
        self, world: World, running: Runner, emulator: BlueskyEmulator
    ) -> None:
        sink = RecordingSink()
        emulator.hang_next(GET_PROFILES, after_write=False)
        async with running(sink, profile_timeout_seconds=0.2) as adapter:
            post = await _published(sink, emulator.post(world.alice, "A1 slow appview #MHChat"))
            failures = dict(adapter.health().counters)["profile_lookup_failures"]
        assert not post.author_checked
        assert post.author.author_id == world.alice
        assert failures == 1

    async def test_a_known_profile_stays_checked_while_lookups_fail(
        self, world: World, running: Runner, emulator: BlueskyEmulator
    ) -> None:
        sink = RecordingSink()
        async with running(sink) as adapter:
            known = await _published(sink, emulator.post(world.alice, "A1 hello #MHChat"))
            emulator.fail_next(GET_PROFILES, status=502, error="UpstreamFailure")
            new = await _published(sink, emulator.post(world.bob, "A1 me too #MHChat"))
            again = await _published(sink, emulator.post(world.alice, "A2 still me #MHChat"))
            failures = dict(adapter.health().counters)["profile_lookup_failures"]
        assert known.author_checked
        assert not new.author_checked
        # Alice's profile was already cached: what the appview said then still holds.
        assert again.author_checked
        assert again.author.handle == "alice.test"
        assert failures == 1


class TestPause:
    async def test_the_pause_doubles_while_failing_and_resets_on_success(
        self, world: World, running: Runner, emulator: BlueskyEmulator
    ) -> None:
        clock = FakeClock()
        async with running(RecordingSink(), clock=clock) as adapter:
            profiles = adapter.profiles

            async def lookups(did: str) -> int:
                before = emulator.calls(GET_PROFILES)
                await profiles.resolve([did])
                return emulator.calls(GET_PROFILES) - before

            emulator.fail_next(GET_PROFILES, status=502, error="UpstreamFailure", times=2)
            assert await lookups(world.alice) == 1  # fails: 5 s pause
            clock.advance(4.9)
            assert await lookups(world.alice) == 0
            clock.advance(0.1)
            assert await lookups(world.alice) == 1  # fails again: 10 s pause
            clock.advance(9.9)
            assert await lookups(world.alice) == 0
            clock.advance(0.1)
            assert await lookups(world.alice) == 1  # answers
            assert profiles.get(world.alice).checked
            emulator.fail_next(GET_PROFILES, status=502, error="UpstreamFailure")
            assert await lookups(world.bob) == 1  # fails after a success: 5 s pause again
            clock.advance(5)
            assert await lookups(world.bob) == 1
            assert profiles.get(world.bob).checked
            assert profiles.failures == 3

    async def test_the_pause_stops_growing_at_a_minute(
        self, world: World, running: Runner, emulator: BlueskyEmulator
    ) -> None:
        clock = FakeClock()
        async with running(RecordingSink(), clock=clock) as adapter:
            profiles = adapter.profiles
            emulator.fail_next(GET_PROFILES, status=502, error="UpstreamFailure", times=100)
            await profiles.resolve([world.alice])
            pauses = []
            for _ in range(7):
                waited = 0
                while True:
                    clock.advance(1)
                    waited += 1
                    before = emulator.calls(GET_PROFILES)
                    await profiles.resolve([world.alice])
                    if emulator.calls(GET_PROFILES) > before:
                        break
                pauses.append(waited)
            assert not profiles.get(world.alice).checked
        # Every probe that got through failed too, and set the next, longer pause.
        assert pauses == [5, 10, 20, 40, 60, 60, 60]


class TestSearch:
    async def test_search_results_carry_their_author_labels(
        self, world: World, running: Runner, emulator: BlueskyEmulator
    ) -> None:
        bot = emulator.create_account("helperbot.test", bot=True)
        sink = RecordingSink()
        # A failing getProfiles does not matter here: a PostView names its author's labels.
        emulator.fail_next(GET_PROFILES, status=502, error="UpstreamFailure", times=100)
        async with running(sink, source="search", search_poll_seconds=0.05):
            post = await _published(sink, emulator.post(bot, "A1 found by search #MHChat"))
        assert post.author_checked
        assert post.is_bot
        assert post.author.handle == "helperbot.test"
