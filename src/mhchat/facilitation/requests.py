"""Requests people make of the host: "don't repost me", "repost me again", "forget me".

Only posts addressed to the host count (they @mention it, or reply to one of its posts), so a
participant talking about opting out of something else is not mistaken for a request.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from enum import StrEnum

from mhchat.events import Post
from mhchat.facilitation.batch_view import Author, Status, key_of
from mhchat.facilitation.threads import PostKey
from mhchat.facilitation.triage.lexicon import normalise
from mhchat.store.db import Tx, fetch_by_pairs


class Request(StrEnum):
    NO_REPOST = "no_repost"
    REPOST_OK = "repost_ok"
    FORGET = "forget"


_FORGET = re.compile(
    r"(?<!\w)(?:forget me|delete (?:all )?my (?:data|posts|info)|remove (?:all )?my"
    r" (?:data|posts|info)"
    r"|erase (?:all )?my (?:data|posts))(?!\w)"
)
_REPOST_OK = re.compile(
    r"(?<!\w)(?:opt me (?:back )?in|you can (?:re)?(?:post|share|rt|retweet|boost) me(?:"
    r" again)?|ok to (?:re)?post me)(?!\w)"
)
_NO_REPOST = re.compile(
    r"(?<!\w)(?:(?:please )?(?:don'?t|do not|never|stop|no)"
    r" (?:re-?post|repost|share|retweet|rt|boost|amplify)(?:ing)?"
    r" (?:me|my posts?|my tweets?|my stuff)|opt me out|(?:i )?opt out|unsubscribe)(?!\w)"
)


def detect(text: str) -> Request | None:
    folded = normalise(text)
    if _FORGET.search(folded):
        return Request.FORGET
    if _REPOST_OK.search(folded):
        return Request.REPOST_OK
    if _NO_REPOST.search(folded):
        return Request.NO_REPOST
    return None


async def apply_requests(
    tx: Tx, chat_id: str, posts: Sequence[Post], status: dict[Author, Status]
) -> tuple[set[Author], set[PostKey]]:
    """Apply opt-out / opt-in requests; return who asked to be forgotten and the requests."""
    asked = [(p, r) for p in posts if (r := detect(p.text)) is not None]
    if not asked:
        return set(), set()
    parents = {
        (p.platform, p.reply_parent.remote_id)
        for p, _ in asked
        if p.reply_parent and not p.mentions_host
    }
    rows = await fetch_by_pairs(
        tx,
        "SELECT platform, remote_id FROM posts WHERE chat_id = ? AND platform = ?"
        " AND is_own = 1 AND remote_id IN",
        chat_id,
        sorted(parents),
    )
    own_parents: set[PostKey] = {(str(r[0]), str(r[1])) for r in rows}
    forget: set[Author] = set()
    requests: set[PostKey] = set()
    for post, request in sorted(asked, key=lambda pr: pr[0].created_at):
        addressed = post.mentions_host or (
            post.reply_parent is not None
            and (post.platform, post.reply_parent.remote_id) in own_parents
        )
        if not addressed:
            continue
        author = (post.platform, post.author.author_id)
        requests.add(key_of(post))
        if request is Request.FORGET:
            forget.add(author)
            continue
        opted_out = request is Request.NO_REPOST
        status[author].opted_out = opted_out
        await tx.execute(
            "UPDATE participants SET opted_out = ? WHERE chat_id = ? AND platform = ? AND"
            " author_id = ?",
            (int(opted_out), chat_id, *author),
        )
    return forget, requests
