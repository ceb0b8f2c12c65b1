"""Recorded X API v2 payloads normalise into the right domain events."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mhchat.events import PostEdited, PostReceived, RepostSeen
from mhchat_x.mapping import (
    HostIdentity,
    Normaliser,
    newer_id,
    parse_time,
    rewind_id,
    snowflake_time,
)

from .conftest import X

PAYLOADS = Path(__file__).parent / "payloads"


def lines(name: str) -> list[str]:
    return (PAYLOADS / name).read_text(encoding="utf-8").splitlines()


def first(name: str) -> dict[str, Any]:
    value: dict[str, Any] = json.loads(lines(name)[0])
    return value


def normaliser(user_id: str | None = None, username: str | None = None) -> Normaliser:
    return Normaliser(X, HostIdentity(user_id=user_id, username=username))


class TestSearchPage:
    """The twarc #brexit page: 100 posts with every expansion."""

    def test_retweets_become_reposts_and_the_rest_posts(self) -> None:
        page = first("brexit.jsonl")
        parsed = normaliser().parse(page)
        reposts = [e for e in parsed.events if isinstance(e, RepostSeen)]
        posts = [e.post for e in parsed.events if isinstance(e, PostReceived)]
        kinds = [{r["type"] for r in t.get("referenced_tweets", [])} for t in page["data"]]
        assert len(reposts) == sum("retweeted" in k for k in kinds) == 67
        assert len(posts) == 33
        assert parsed.skipped == 0
        # Billed reads: every post in data and includes, every included user.
        assert len(parsed.post_ids) == 100 + len(page["includes"]["tweets"])
        assert len(parsed.user_ids) == len(page["includes"]["users"])

    def test_replies_quotes_authors_and_entities(self) -> None:
        page = first("brexit.jsonl")
        by_id = {t["id"]: t for t in page["data"]}
        users = {u["id"]: u for u in page["includes"]["users"]}
        posts = {
            e.post.remote_id: e.post
            for e in normaliser().parse(page).events
            if isinstance(e, PostReceived)
        }
        replies = [p for p in posts.values() if p.reply_parent is not None]
        quotes = [p for p in posts.values() if p.quoted is not None]
        assert len(replies) == 10
        assert len(quotes) == 11
        for post in replies:
            raw = by_id[post.remote_id]
            parent = next(r["id"] for r in raw["referenced_tweets"] if r["type"] == "replied_to")
            assert post.reply_parent is not None
            assert post.reply_parent.remote_id == parent
            assert post.reply_root is not None
            assert post.reply_root.remote_id == raw["conversation_id"]
        for post in posts.values():
            raw = by_id[post.remote_id]
            assert post.author.author_id == raw["author_id"]
            assert post.author.handle == users[raw["author_id"]]["username"]
            assert post.created_at.tzinfo is not None
            tags = [h["tag"].lower() for h in raw.get("entities", {}).get("hashtags", [])]
            assert list(post.hashtags) == tags
            assert post.url == f"https://x.com/{post.author.handle}/status/{post.remote_id}"
            assert post.raw is not None
            assert json.loads(post.raw)["id"] == post.remote_id
        roots = [p for p in posts.values() if p.reply_parent is None]
        assert all(p.reply_root is None for p in roots)

    def test_host_posts_and_mentions_are_recognised(self) -> None:
        page = first("brexit.jsonl")
        some = next(
            t
            for t in page["data"]
            if t.get("entities", {}).get("mentions") and "referenced_tweets" not in t
        )
        mentioned = some["entities"]["mentions"][0]["username"]
        events = normaliser(user_id=some["author_id"], username=mentioned).parse(page).events
        post = next(
            e.post
            for e in events
            if isinstance(e, PostReceived) and e.post.remote_id == some["id"]
        )
        assert post.is_own is True
        assert post.mentions_host is True
        others = [
            e.post
            for e in events
            if isinstance(e, PostReceived) and e.post.author.author_id != some["author_id"]
        ]
        assert not any(p.is_own for p in others)


class TestStreamLines:
    def test_recorded_lines_parse_and_the_truncated_one_does_not(self) -> None:
        raw = lines("streaming_output_with_error.jsonl")
        good = [json.loads(line) for line in raw[:7]]
        events = [e for msg in good for e in normaliser().parse(msg).events]
        assert len(events) == 7
        assert good[0]["matching_rules"][0]["id"] == 1377649934414049282  # numeric in 2021
        try:
            json.loads(raw[7])
        except json.JSONDecodeError:
            pass
        else:  # pragma: no cover - the recording is broken on purpose
            raise AssertionError("the last recorded line should be truncated")

    def test_a_reply_mentioning_the_host_sets_mentions_host(self) -> None:
        msg = json.loads(lines("streaming_output_with_error.jsonl")[1])
        (event,) = normaliser(user_id="1", username="policemutual").parse(msg).events
        assert isinstance(event, PostReceived)
        assert event.post.mentions_host is True
        assert event.post.mentions == ("PoliceMutual",)
        assert event.post.reply_parent is not None
        assert event.post.reply_parent.remote_id == "1377266697850257410"


class TestEditsRetweetsAndLongPosts:
    def test_an_edit_is_keyed_by_the_original_id_with_the_new_version(self) -> None:
        before = normaliser().parse(first("edited_before.jsonl")).events
        after = normaliser().parse(first("edited_after.jsonl")).events
        assert isinstance(before[0], PostReceived)
        assert before[0].post.remote_id == "1576994746135764992"
        assert before[0].post.version is None
        assert isinstance(after[0], PostEdited)
        edited = after[0].post
        assert edited.remote_id == "1576994746135764992"
        assert edited.version == "1576994789110992896"
        assert edited.text.startswith("hey :)")
        assert edited.language is None  # "qst" is X's "unknown"

    def test_documented_stream_edit_excerpt(self) -> None:
        msg = json.loads((PAYLOADS / "stream-post-edit.excerpt.json").read_text())
        (event,) = normaliser().parse(msg).events
        assert isinstance(event, PostEdited)
        assert event.post.remote_id == "1234567890"
        assert event.post.version == "1234567893"
        assert event.post.text == "Hello world! (edited)"

    def test_retweets_name_their_subject(self) -> None:
        for name, subject in (
            ("two_tweets.jsonl", "1391677057810288641"),
            ("mentions_tweet.jsonl", "1589671906718134272"),
        ):
            (event,) = normaliser().parse(first(name)).events
            assert isinstance(event, RepostSeen)
            assert event.subject.remote_id == subject

    def test_null_text_and_author_are_empty_not_the_word_none(self) -> None:
        msg = {
            "data": {
                "id": "1700000000000000000",
                "created_at": "2026-01-07T20:10:00.000Z",
                "author_id": None,
                "text": None,
            }
        }
        (event,) = normaliser().parse(msg).events
        assert isinstance(event, PostReceived)
        assert (event.post.text, event.post.author.author_id) == ("", "")

    def test_an_edit_history_that_is_not_a_list_is_no_history(self) -> None:
        for history in (5, 1.5, True, "123", {"a": 1}):
            msg = {
                "data": {
                    "id": "1700000000000000000",
                    "author_id": "7",
                    "created_at": "2026-01-07T20:10:00.000Z",
                    "text": "A1 hi #MHChat",
                    "edit_history_tweet_ids": history,
                }
            }
            (event,) = normaliser().parse(msg).events
            assert isinstance(event, PostReceived), history

    def test_note_tweet_text_replaces_the_truncated_text(self) -> None:
        long_text = "A3 " + "so much to say &amp; more " * 20 + "#MHChat"
        msg = {
            "data": {
                "id": "1700000000000000000",
                "author_id": "7",
                "created_at": "2026-01-07T20:10:00.000Z",
                "text": long_text[:270] + "…",
                "note_tweet": {
                    "text": long_text,
                    "entities": {"hashtags": [{"start": 3, "end": 10, "tag": "MHChat"}]},
                },
                "edit_history_tweet_ids": ["1700000000000000000"],
            }
        }
        (event,) = normaliser().parse(msg).events
        assert isinstance(event, PostReceived)
        assert event.post.text == long_text.replace("&amp;", "&")
        assert event.post.hashtags == ("mhchat",)

    def test_an_object_without_id_is_skipped_and_counted(self) -> None:
        parsed = normaliser().parse({"data": [{"text": "no id"}]})
        assert parsed.events == []
        assert parsed.skipped == 1


class TestIds:
    def test_snowflake_time_and_rewind(self) -> None:
        when = snowflake_time("1440716895355764743")
        assert when is not None
        assert when.isoformat().startswith("2021-09-22T16:37:29")
        earlier = rewind_id("1440716895355764743", 30)
        back = snowflake_time(earlier)
        assert back is not None
        assert 29.9 < (when - back).total_seconds() < 30.1

    def test_times_no_post_can_have_are_not_believed(self) -> None:
        assert parse_time("2021-09-22T16:37:29.000Z") is not None
        for claimed in ("9999-12-31T23:59:59.000Z", "0001-01-01T00:00:00+14:00", "1970-01-01"):
            assert parse_time(claimed) is None, claimed
        assert snowflake_time("9" * 30) is None
        assert snowflake_time("9" * 60) is None

    def test_newer_id_compares_numbers(self) -> None:
        assert newer_id("999", "1000") == "1000"
        assert newer_id(None, "5") == "5"
