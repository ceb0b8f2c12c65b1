"""Requests people make of the host: "don't repost me", "repost me again", "forget me".

Only posts addressed to the host count (they @mention it, or reply to one of its posts), so a
participant talking about opting out of something else is not mistaken for a request.
"""

from __future__ import annotations

import re
from enum import StrEnum

from mhchat.facilitation.triage.lexicon import normalise


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
