"""Fuzzing the webhook with hypothesis: any body and headers, never a 500, never a crash."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mhchat.emulators.facebook import meta_json, sign
from mhchat.testing import RecordingSink
from mhchat_facebook import create

from .conftest import RECORDED_PAGE, content, context, load

SECRET = "fuzz-secret"
KEYS = [
    "object", "entry", "id", "time", "changes", "changed_fields", "field", "value", "item",
    "verb", "from", "name", "post_id", "comment_id", "parent_id", "created_time", "message",
    "published", "post", "permalink_url", "reaction_type",
]  # fmt: skip
WORDS = [
    "page", "feed", "comment", "status", "post", "photo", "share", "video", "add", "edited",
    "edit", "remove", "hide", "like", "reaction", RECORDED_PAGE, "1_2", "", "#MHChat A1",
]  # fmt: skip

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(WORDS),
    st.text(max_size=40),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=8)), inner, max_size=6),
    ),
    max_leaves=30,
)


RECORDED = [
    load(name)["value"]
    for name in (
        "feed-change-status-add.json",
        "feed-change-status-edited.json",
        "feed-change-comment-add.json",
        "feed-change-comment-add-on-video-post.json",
        "feed-change-comment-edited.json",
        "feed-change-comment-remove.json",
        "feed-change-post-remove.json",
        "feed-change-reaction-add.json",
    )
]


@st.composite
def shaped_envelopes(draw: st.DrawFn) -> Any:
    """A recorded change with some of its values replaced, removed or added: deep coverage."""
    value = dict(draw(st.sampled_from(RECORDED)))
    for key in draw(st.lists(st.sampled_from(sorted(value)), max_size=3, unique=True)):
        choice = draw(st.integers(0, 5))
        if choice == 0:
            del value[key]
        else:
            value[key] = draw(scalars if choice < 4 else json_values)
    value.update(draw(st.dictionaries(st.sampled_from(KEYS), json_values, max_size=2)))
    change = {"field": draw(st.sampled_from(["feed"] * 8 + ["mention", 3])), "value": value}
    entry = {
        "id": draw(st.sampled_from([RECORDED_PAGE] * 8 + ["999", 5])),
        "time": draw(st.one_of(st.integers(min_value=0, max_value=2**40), scalars)),
        "changes": [change, *draw(st.lists(json_values, max_size=1))],
    }
    entries = [entry, *draw(st.lists(json_values, max_size=1))]
    return {"object": draw(st.sampled_from(["page"] * 8 + ["user", None])), "entry": entries}


bodies = st.one_of(
    shaped_envelopes().map(meta_json),
    shaped_envelopes().map(meta_json),
    shaped_envelopes().map(meta_json),
    shaped_envelopes().map(lambda v: json.dumps(v, ensure_ascii=False).encode()),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=300),
)
header_text = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=80)


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    body=bodies,
    signature=st.one_of(
        st.just("valid"), st.just("valid"), st.just("valid"), st.none(), header_text
    ),
    content_type=st.one_of(st.none(), st.just("application/json"), header_text),
    extra=st.dictionaries(
        st.sampled_from(["X-Hub-Signature", "Content-Encoding", "X-Other"]),
        header_text,
        max_size=2,
    ),
)
async def test_webhook_never_answers_500(
    body: bytes,
    signature: str | None,
    content_type: str | None,
    extra: dict[str, str],
) -> None:
    sink = RecordingSink()
    async with aiohttp.ClientSession() as http:
        ctx = context(
            http,
            sink,
            {"page_id": RECORDED_PAGE, "graph_url": "http://127.0.0.1:9", "max_body_bytes": 4096},
            {"APP_SECRET": SECRET, "VERIFY_TOKEN": "v", "PAGE_ACCESS_TOKEN": "t"},
        )
        adapter = create(ctx)
        app = web.Application()
        app.add_subapp("/webhooks/facebook", adapter.webhook_app())
        await adapter.start()
        async with TestClient(TestServer(app)) as client:
            headers = dict(extra)
            if content_type is not None:
                headers["Content-Type"] = content_type
            if signature == "valid":
                headers["X-Hub-Signature-256"] = sign(body, SECRET)
            elif signature is not None:
                headers["X-Hub-Signature-256"] = signature
            resp = await client.post("/webhooks/facebook", data=body, headers=headers)
            assert resp.status in {200, 400, 403, 413}, resp.status
            query = {"hub.mode": signature or "", "hub.challenge": content_type or ""}
            verify = await client.get("/webhooks/facebook", params=query)
            assert verify.status in {200, 403}
        await adapter.stop()
    counters = dict(adapter.health().counters)
    assert counters.get("webhook_errors", 0) == 0  # no handler ever failed unexpectedly
    if resp.status != 200:
        assert content(sink) == []
