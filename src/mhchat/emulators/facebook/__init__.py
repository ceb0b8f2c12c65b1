"""A local Facebook page: the Graph API calls a page makes and Meta's signed page webhooks.

Graph side (``/{version}/...`` on 127.0.0.1): ``/me``, ``/{page-id}/feed`` (GET with nested
comments and paging, POST to publish), ``/{object-id}/comments`` (GET with cursors, POST to
comment or reply) and ``/{object-id}``. Shapes follow the recorded responses in the project's
Facebook payload notes: ``{"id": ...}`` for writes, ``+0000`` times, ``paging.next`` URLs that
carry ``access_token`` like Graph's do, ``{"error": {"message", "type", "code",
"error_subcode", "fbtrace_id"}}`` errors, and ``x-app-usage`` / ``x-business-use-case-usage``
headers. The Page token is enforced (header ``Authorization: Bearer|OAuth`` or an
``access_token`` parameter); a user token is recognised as a person.

Webhook side: participants act through :meth:`FacebookEmulator.comment`, :meth:`edit`,
:meth:`remove` (and the page's own Graph writes echo back), which append to the feed and POST a
``feed`` change to :attr:`webhook_url` signed like Meta (HMAC-SHA256 of the raw bytes with the
app secret; JSON with non-ASCII and ``/`` escaped), retried a bounded number of times on
non-2xx. :meth:`lapse_subscription` keeps recording activity without delivering it.

The package's modules, each one concern: :mod:`.model` (records, errors, signing),
:mod:`.state`, :mod:`.webhooks` (deliveries), :mod:`.content` (posts and comments),
:mod:`.faults`, :mod:`.graph` (the Graph routes) and :mod:`.emulator` (serving, participants,
data deletion).
"""

from mhchat.emulators.facebook.emulator import FacebookEmulator
from mhchat.emulators.facebook.model import (
    RATE_LIMIT_MESSAGES,
    Delivery,
    GraphFailure,
    Node,
    Person,
    SentRecord,
    graph_time,
    meta_json,
    sign,
)

__all__ = [
    "RATE_LIMIT_MESSAGES",
    "Delivery",
    "FacebookEmulator",
    "GraphFailure",
    "Node",
    "Person",
    "SentRecord",
    "graph_time",
    "meta_json",
    "sign",
]
