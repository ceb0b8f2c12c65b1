"""A local Bluesky: the XRPC a client calls on its PDS (with the appview reads it proxies) and a
Jetstream websocket, on 127.0.0.1.

Wire formats follow the recordings in the project's Bluesky payload notes (PDS 0.5.x, appview,
Jetstream's JSON): XRPC errors are ``{"error", "message"}`` with the PDS's status codes, access
tokens are JWTs the SDK can read ``exp`` from, rate-limited routes send ``RateLimit-*`` headers,
and every commit (by the host account through XRPC, or by a participant through this class's
methods) is appended to an in-memory log that ``/subscribe`` replays from a ``time_us`` cursor
and pushes live.

Fault injection covers what a client must survive: 429 with reset headers, 5xx, a reset
connection, a request that hangs before or after its write takes effect, expired or revoked
sessions, slow answers, malformed stream frames and dropped streams.

The package's modules, each one concern: :mod:`.model` (records and errors), :mod:`.state`,
:mod:`.jetstream` (the commit log and its websocket), :mod:`.repo` (record writes and reads),
:mod:`.auth` (sessions), :mod:`.appview` (profiles, posts, threads, search), :mod:`.faults`,
:mod:`.participants` (inbound activity), :mod:`.emulator` (the app and XRPC dispatch) and
:mod:`.cli` (``python -m mhchat.emulators.bluesky``).
"""

from mhchat.emulators.bluesky.cli import main
from mhchat.emulators.bluesky.emulator import BlueskyEmulator
from mhchat.emulators.bluesky.model import (
    POST,
    PROFILE,
    REPOST,
    Account,
    Handler,
    RecordedRequest,
    StoredRecord,
    XrpcError,
    make_cid,
    split_uri,
)

__all__ = [
    "POST",
    "PROFILE",
    "REPOST",
    "Account",
    "BlueskyEmulator",
    "Handler",
    "RecordedRequest",
    "StoredRecord",
    "XrpcError",
    "main",
    "make_cid",
    "split_uri",
]
