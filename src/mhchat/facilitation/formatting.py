"""Fitting a text to each platform's length limit, always with the chat's hashtag.

X counts a weighted length (URLs 23, CJK and emoji 2) with ``twitter-text-parser``; Bluesky
counts graphemes (300) with ``grapheme``; a Facebook page post is long (63,206 characters).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass

import grapheme
from twitter_text import parse_tweet

ELLIPSIS = "…"


_MAYBE_URL = re.compile(r"\.[0-9A-Za-z]|://")


def _x_length(text: str) -> int:
    # parse_tweet costs about 1 ms. Plain ASCII (no carriage return, which X folds) that
    # cannot hold a URL weighs exactly its length, so most welcomes need no parse.
    if text.isascii() and "\r" not in text and _MAYBE_URL.search(text) is None:
        return len(text)
    return int(parse_tweet(text).weightedLength)


def _graphemes(text: str) -> int:
    # In ASCII every character is its own grapheme except the pair CR LF: the exact count
    # without ``grapheme``'s per-character state machine (about 70 us for a welcome).
    if text.isascii():
        return len(text) - text.count("\r\n")
    return int(grapheme.length(text))


@dataclass(frozen=True, slots=True)
class Limit:
    name: str
    maximum: int
    measure: Callable[[str], int]
    unit: str


LIMITS: dict[str, Limit] = {
    "x": Limit("X", 280, _x_length, "weighted characters"),
    "bluesky": Limit("Bluesky", 300, _graphemes, "characters"),
    "facebook": Limit("Facebook", 63206, len, "characters"),
}
DEFAULT_LIMIT = Limit("this platform", 300, _graphemes, "characters")


def limit_for(platform: str) -> Limit:
    return LIMITS.get(platform, DEFAULT_LIMIT)


@functools.lru_cache(maxsize=64)
def _hashtag_pattern(hashtag: str) -> re.Pattern[str]:
    # Compiled once per hashtag: ``re.search`` with a pattern string and flags costs a cache
    # lookup and flag arithmetic on every call (a tenth of the decision time of a welcome).
    return re.compile(rf"\s*#{re.escape(hashtag)}(?!\w)", re.IGNORECASE)


def has_hashtag(text: str, hashtag: str) -> bool:
    return "#" in text and _hashtag_pattern(hashtag).search(text) is not None


def with_hashtag(text: str, hashtag: str) -> str:
    text = text.strip()
    return text if has_hashtag(text, hashtag) else f"{text} #{hashtag}"


def measure(text: str, platform: str) -> int:
    return limit_for(platform).measure(text)


def fit(text: str, hashtag: str, platform: str) -> str:
    """The text with the hashtag, shortened with an ellipsis if the platform needs it.

    The hashtag is kept at the end when the text must be shortened, so the post stays in
    the chat's stream.
    """
    limit = limit_for(platform)
    full = with_hashtag(text, hashtag)
    if limit.measure(full) <= limit.maximum:
        return full
    body = _hashtag_pattern(hashtag).sub("", text.strip())
    tail = f"{ELLIPSIS} #{hashtag}"
    count = grapheme.length(body)
    low, high = 0, count
    # Binary search on the number of graphemes kept: the weighted measure is monotonic.
    while low < high:
        mid = (low + high + 1) // 2
        if limit.measure(grapheme.slice(body, 0, mid).rstrip() + tail) <= limit.maximum:
            low = mid
        else:
            high = mid - 1
    return str(grapheme.slice(body, 0, low)).rstrip() + tail
