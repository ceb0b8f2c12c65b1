"""Participants acting on Bluesky as their apps would: accounts, posts (with the facets the app
detects), reposts, profiles and deletions, all on the Jetstream log."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from atproto_client.utils import facet_detection  # type: ignore[import-untyped]

from mhchat.emulators.bluesky.faults import BlueskyFaults
from mhchat.emulators.bluesky.model import (
    _TID_ALPHABET,
    POST,
    PROFILE,
    REPOST,
    Account,
    _iso,
    split_uri,
)


class BlueskyParticipants(BlueskyFaults):
    """The inbound side: what other accounts do, by the same commit path as the host's writes."""

    def create_account(
        self,
        handle: str,
        *,
        password: str | None = None,
        display_name: str | None = None,
        bot: bool = False,
    ) -> str:
        """Register an account; returns its DID. The password defaults to ``<handle>-pw``."""
        did = "did:plc:" + "".join(
            _TID_ALPHABET[b % 32] for b in hashlib.sha256(handle.encode()).digest()[:24]
        )
        self.accounts[did] = Account(
            did=did,
            handle=handle,
            password=password or f"{handle}-pw",
            display_name=display_name,
            bot=bot,
        )
        now = self._next_time_us()
        self._append(
            did,
            None,
            {
                "did": did,
                "time_us": now,
                "kind": "identity",
                "identity": {
                    "did": did,
                    "handle": handle,
                    "seq": len(self._log) + 1,
                    "time": _iso(self.clock.now()),
                },
            },
            now,
        )
        if bot:
            self._write(did, PROFILE, self._bot_profile(did), rkey="self")
        return did

    def post(
        self,
        did: str,
        text: str,
        *,
        reply_to: str | None = None,
        quote: str | None = None,
        facets: list[dict[str, Any]] | str | None = "auto",
        langs: Iterable[str] = ("en",),
        created_at: datetime | None = None,
    ) -> str:
        """Write a post as a participant (as their app would); returns its at:// URI."""
        record: dict[str, Any] = {
            "$type": POST,
            "text": text,
            "createdAt": _iso(created_at or self.clock.now()),
            "langs": list(langs),
        }
        built = self.detect_facets(text) if facets == "auto" else facets
        if built:
            record["facets"] = built
        if reply_to is not None:
            parent = self._require(reply_to)
            root = parent.value.get("reply", {}).get("root") or {
                "uri": parent.uri,
                "cid": parent.cid,
            }
            record["reply"] = {"root": root, "parent": {"uri": parent.uri, "cid": parent.cid}}
        if quote is not None:
            quoted = self._require(quote)
            record["embed"] = {
                "$type": "app.bsky.embed.record",
                "record": {"uri": quoted.uri, "cid": quoted.cid},
            }
        self._validate(POST, record)
        return self._write(did, POST, record).uri

    def repost(self, did: str, uri: str) -> str:
        subject = self._require(uri)
        record = {
            "$type": REPOST,
            "subject": {"uri": subject.uri, "cid": subject.cid},
            "createdAt": _iso(self.clock.now()),
        }
        return self._write(did, REPOST, record).uri

    def set_profile(self, did: str, record: dict[str, Any]) -> str:
        """Write an account's ``app.bsky.actor.profile/self`` record; returns its CID."""
        return self._write(did, PROFILE, {"$type": PROFILE, **record}, rkey="self").cid

    def delete(self, uri: str) -> None:
        did, collection, rkey = split_uri(uri)
        self._remove(did, collection, rkey)

    def detect_facets(self, text: str) -> list[dict[str, Any]]:
        """Facets as the Bluesky app builds them: tags, links, and mentions of known handles."""
        facets: list[dict[str, Any]] = [
            f.model_dump(by_alias=True, exclude_none=True)
            for f in facet_detection.detect_facets(text)
        ]
        by_handle = {a.handle: a.did for a in self.accounts.values()}
        for mention in facet_detection.detect_mentions(text):
            mentioned = by_handle.get(mention.handle.lower())
            if mentioned:
                facets.append(
                    {
                        "index": {"byteStart": mention.byte_start, "byteEnd": mention.byte_end},
                        "features": [
                            {"$type": "app.bsky.richtext.facet#mention", "did": mentioned}
                        ],
                    }
                )
        for facet in facets:
            facet.pop("py_type", None)
            for feature in facet["features"]:
                feature.pop("py_type", None)
        return sorted(facets, key=lambda f: int(f["index"]["byteStart"]))
