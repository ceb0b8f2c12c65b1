"""Recorded Facebook payloads -> events, one file at a time."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from mhchat.events import PostDeleted, PostEdited, PostReceived
from mhchat_facebook.mapping import (
    Parsed,
    extract_hashtags,
    extract_mentions,
    graph_node_post,
    parse_delivery,
    parse_time,
    raw_json,
)

from .conftest import FACEBOOK, RECORDED_PAGE, load

NOW = datetime(2026, 1, 7, 20, 0, tzinfo=UTC)


def parse_change(name: str, page_id: str = RECORDED_PAGE) -> Parsed:
    body = {
        "object": "page",
        "entry": [{"id": page_id, "time": 1511951020, "changes": [load(name)]}],
    }
    return parse_delivery(body, platform=FACEBOOK, page_id=page_id, received_at=NOW)


@pytest.mark.parametrize(
    ("name", "kind", "ignored"),
    [
        ("feed-change-status-add.json", PostReceived, None),
        ("feed-change-status-edited.json", PostEdited, None),
        ("feed-change-post-remove.json", PostDeleted, None),
        ("feed-change-comment-add.json", PostReceived, None),
        ("feed-change-comment-add-on-video-post.json", PostReceived, None),
        ("feed-change-comment-edited.json", PostEdited, None),
        ("feed-change-comment-remove.json", PostDeleted, None),
        ("feed-change-like-add-on-comment.json", None, "item:like"),
        ("feed-change-like-remove.json", None, "item:like"),
        ("feed-change-page-like-add.json", None, "item:like"),
        ("feed-change-reaction-add.json", None, "item:reaction"),
        ("feed-change-reaction-edit.json", None, "item:reaction"),
        ("feed-change-reaction-remove.json", None, "item:reaction"),
    ],
)
def test_each_recorded_change(name: str, kind: type | None, ignored: str | None) -> None:
    parsed = parse_change(name)
    if kind is None:
        assert parsed.events == []
        assert parsed.ignored == {ignored: 1}
    else:
        (event,) = parsed.events
        assert isinstance(event, kind)
        assert not parsed.ignored
        if isinstance(event, PostDeleted):
            # On Facebook, a removed post takes its comments, and a comment its replies.
            assert event.with_replies


def test_comment_on_a_video_post_keeps_its_permalink_and_thread() -> None:
    (event,) = parse_change("feed-change-comment-add-on-video-post.json").events
    assert isinstance(event, PostReceived)
    post = event.post
    assert post.url == "https://www.facebook.com/xxx/posts/1111"
    assert post.reply_parent is not None
    assert post.reply_parent.remote_id == "137542570280222_139560936744456"  # top level
    assert post.raw is not None
    assert "Hsuan-Yih Shawn Chu" in post.raw


def test_an_edit_carries_the_delivery_time() -> None:
    (event,) = parse_change("feed-change-comment-edited.json").events
    assert isinstance(event, PostEdited)
    assert event.edited_at == datetime.fromtimestamp(1511951020, UTC)


def test_unpublished_page_posts_are_skipped() -> None:
    change = load("feed-change-status-add.json")
    change["value"]["published"] = 0
    body = {"object": "page", "entry": [{"id": RECORDED_PAGE, "changes": [change]}]}
    parsed = parse_delivery(body, platform=FACEBOOK, page_id=RECORDED_PAGE, received_at=NOW)
    assert parsed.events == []
    assert parsed.ignored == {"unpublished": 1}


def test_recorded_graph_nodes_without_an_author_are_counted_not_guessed() -> None:
    """Graph omits ``from`` without pages_read_user_engagement: such nodes are skipped."""
    parsed = Parsed()
    nodes = load("comments_p1.json")["data"] + load("feed_fields_p1.json")["data"]
    for node in nodes:
        assert (
            graph_node_post(node, platform=FACEBOOK, page_id="4", post_id="4_1", parsed=parsed)
            is None
        )
    assert parsed.ignored == {"incomplete_node": len(nodes)}


def test_recorded_comment_node_with_an_author() -> None:
    node = {**load("create_resp.json"), "from": {"id": "245628824887810", "name": "Page"}}
    parsed = Parsed()
    post = graph_node_post(
        node,
        platform=FACEBOOK,
        page_id="245628824887810",
        post_id="245778718206154",
        parsed=parsed,
    )
    assert post is not None
    assert post.is_own
    assert post.created_at == datetime(2023, 7, 14, 10, 45, 55, tzinfo=UTC)
    assert post.url == node["permalink_url"]
    assert post.reply_root is not None
    assert post.reply_root.remote_id == "245778718206154"


def test_times_and_text_features() -> None:
    assert parse_time("2021-07-21T21:05:14+0000") == datetime(2021, 7, 21, 21, 5, 14, tzinfo=UTC)
    assert parse_time(1458692752478) == parse_time(1458692752.478)  # the envelope's ms "time"
    assert parse_time("yesterday") is None
    assert parse_time(float("inf")) is None
    # Times no post can have: the mapper falls back to the delivery's own time.
    for claimed in ("9999-12-31T23:59:59+0000", "0001-01-01T00:00:00+0000", -62135596800, 0):
        assert parse_time(claimed) is None, claimed
    assert extract_hashtags("A1: #MHChat and #mhchat #Self_Care") == ("mhchat", "self_care")
    assert extract_mentions("thanks @Sam.Jones and @lee.") == ("Sam.Jones", "lee")


def test_raw_copy_is_sorted_json_even_with_integers_beyond_64_bits() -> None:
    value = {"b": "caf\u00e9", "a": 2**70, "c": [1, {"z": 1, "y": None}]}
    assert json.loads(raw_json(value)) == value
    small = {"b": "caf\u00e9", "a": 1}
    assert raw_json(small) == '{"a":1,"b":"caf\u00e9"}'


def test_what_is_ignored_is_counted_under_names_the_payload_does_not_choose() -> None:
    change = load("feed-change-comment-add.json")
    changes = []
    for n in range(300):
        item = json.loads(json.dumps(change))
        item["value"]["verb"] = f"verb{n}" + "x" * 1000
        changes.append(item)
        other = json.loads(json.dumps(change))
        other["value"]["item"] = f"item{n}"
        changes.append(other)
        changes.append({"field": f"field{n}", "value": {}})
    changes.append({"field": "ratings", "value": {}})
    body = {"object": "page", "entry": [{"id": RECORDED_PAGE, "time": 1, "changes": changes}]}
    parsed = parse_delivery(body, platform=FACEBOOK, page_id=RECORDED_PAGE, received_at=NOW)
    assert parsed.ignored == {
        "verb:other": 300,
        "item:other": 300,
        "field:other": 300,
        "field:ratings": 1,
    }
