"""A local X API v2 emulator (aiohttp on 127.0.0.1) for the X adapter's tests, demo and benchmarks.

It speaks the shapes recorded in ``shared/payloads/x`` (tweepy cassettes, twarc pages and stream
lines, X's documented examples): ``data``/``includes``/``meta`` bodies with field and expansion
selection, snowflake ids, t.co-wrapped links with ``entities``, ``note_tweet`` for long posts,
``edit_history_tweet_ids``, problem+json errors, ``x-rate-limit-*`` headers (and the 24-hour
ones on ``POST /2/tweets``) with 429s when a window is used up.

Served: the filtered stream (newline-delimited JSON, ``\\r\\n`` keep-alives) and its rules, recent
search (since_id, next_token), tweet lookup and create, ``users/me``, a user's timeline,
retweet and undo, and the OAuth 2.0 token refresh. Auth is enforced like X: the stream and its
rules take the app bearer token only; writes take OAuth 1.0a (HMAC-SHA1 signatures verified with
authlib) or an OAuth 2.0 user token; user tokens expire and refresh tokens rotate. Self-serve
reply rule (Feb 2026): a reply is refused unless the parent @mentioned or quoted the replier.
Keyword search returns no retweets (May 2026); the stream still carries them.

The package's modules, each one concern: :mod:`.model` (records and errors), :mod:`.state`,
:mod:`.tweets` (building and matching posts), :mod:`.render`, :mod:`.stream`, :mod:`.auth`,
:mod:`.limits`, :mod:`.faults`, :mod:`.routes` and :mod:`.emulator` (the app and participants).
"""

from mhchat.emulators.x.emulator import XEmulator
from mhchat.emulators.x.model import (
    DEFAULT_LIMITS,
    HASHTAG,
    MENTION,
    PROBLEMS,
    REPLY_RULE_DETAIL,
    TWEPOCH_MS,
    Handler,
    Principal,
    RecordedRequest,
    Tweet,
    XApiError,
    XUser,
)

__all__ = [
    "DEFAULT_LIMITS",
    "HASHTAG",
    "MENTION",
    "PROBLEMS",
    "REPLY_RULE_DETAIL",
    "TWEPOCH_MS",
    "Handler",
    "Principal",
    "RecordedRequest",
    "Tweet",
    "XApiError",
    "XEmulator",
    "XUser",
]
