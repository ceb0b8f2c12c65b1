"""Handles and bot labels for DIDs: Jetstream and the firehose carry only the author's DID.

Lookups are batched (app.bsky.actor.getProfiles takes 25 actors), cached, bounded in time, and
never fatal: when the appview cannot answer, the DID stands in for the handle and the profile is
marked unchecked, so that the post is still stored but never amplified (whether the author is a
bot is unknown). After a failure no lookup is tried for a while, so a slow appview costs the
stream at most one timeout per pause; the pause starts short, because every post mapped during
it loses its chance of a repost or welcome, and doubles while the appview keeps failing.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Iterable
from datetime import datetime, timedelta
from functools import partial

from atproto_client import models  # type: ignore[import-untyped]

from mhchat.clock import Clock
from mhchat.errors import AdapterError

from .client import BlueskyClient
from .mapping import Profile, profile_from_view

_BATCH = 25
_PAUSE_FIRST = timedelta(seconds=5)
_PAUSE_MAX = timedelta(seconds=60)
_FRESH_FOR = timedelta(hours=1)  # handles and bot labels change; look them up again hourly


class ProfileCache:
    """A bounded LRU of DID -> Profile, filled in batches."""

    def __init__(
        self, client: BlueskyClient, clock: Clock, *, timeout: float, size: int = 5000
    ) -> None:
        self._client = client
        self._clock = clock
        self._timeout = timeout
        self._size = size
        self._known: OrderedDict[str, tuple[Profile, datetime]] = OrderedDict()
        self._failed_until: datetime | None = None
        self._pause = _PAUSE_FIRST
        self.failures = 0

    def get(self, did: str) -> Profile:
        """The known profile (possibly stale), or an unchecked stand-in named by the DID."""
        found = self._known.get(did)
        if found is None:
            return Profile(handle=did, checked=False)
        self._known.move_to_end(did)
        return found[0]

    def put(self, did: str, profile: Profile) -> None:
        self._known[did] = (profile, self._clock.now())
        self._known.move_to_end(did)
        while len(self._known) > self._size:
            self._known.popitem(last=False)

    async def resolve(self, dids: Iterable[str]) -> None:
        """Look up the DIDs not yet known, in batches, within the timeout."""
        stale = self._clock.now() - _FRESH_FOR
        missing = list(
            dict.fromkeys(d for d in dids if d not in self._known or self._known[d][1] < stale)
        )
        if not missing:
            return
        if self._failed_until is not None and self._clock.now() < self._failed_until:
            return
        try:
            async with asyncio.timeout(self._timeout):
                for start in range(0, len(missing), _BATCH):
                    chunk = missing[start : start + _BATCH]
                    params = models.AppBskyActorGetProfiles.Params(actors=chunk)
                    answer = await self._client.call(
                        "getProfiles",
                        partial(self._client.sdk.app.bsky.actor.get_profiles, params),
                    )
                    for view in answer.profiles:
                        data = models.get_model_as_dict(view)
                        self.put(str(data["did"]), profile_from_view(data))
        except (AdapterError, TimeoutError):
            self.failures += 1
            self._failed_until = self._clock.now() + self._pause
            self._pause = min(self._pause * 2, _PAUSE_MAX)
        else:
            self._failed_until = None
            self._pause = _PAUSE_FIRST
