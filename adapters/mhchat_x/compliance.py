"""Deletion compliance: look up recently stored posts and report the ones that are gone.

X's policy asks for deleted content to be removed within 24 hours. Compliance streams are
Enterprise-only, so the adapter re-reads the ids it delivered in the last day with
``GET /2/tweets?ids=`` (100 per request): an id that comes back in ``errors`` as
``resource-not-found`` (deleted) or ``not-authorized-for-resource`` (now protected) becomes
``PostDeleted``. Pay-per-use bills a re-read post once per UTC day at most.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import structlog

from mhchat.clock import Clock
from mhchat.errors import AuthExpired, PermanentFailure, RateLimited, TransientFailure
from mhchat.events import PlatformName, PostDeleted, RemoteId
from mhchat_x.auth import Credential
from mhchat_x.client import XClient
from mhchat_x.cost import CostMeter
from mhchat_x.intake import Intake
from mhchat_x.status import HealthBoard

RECENT_KEY = "recent_ids"
GONE_KINDS = ("resource-not-found", "not-authorized-for-resource")
BATCH = 100


class DeletionWatch:
    def __init__(
        self,
        *,
        platform: PlatformName,
        client: XClient,
        cred: Credential,
        intake: Intake,
        clock: Clock,
        board: HealthBoard,
        cost: CostMeter,
        log: structlog.typing.FilteringBoundLogger,
        window_hours: float,
    ) -> None:
        self.platform = platform
        self.client = client
        self.cred = cred
        self.intake = intake
        self.clock = clock
        self.board = board
        self.cost = cost
        self.log = log
        self.window = timedelta(hours=window_hours)

    def _prune(self, now: datetime) -> list[str]:
        recent = self.intake.recent
        for key in [k for k, (_, seen) in recent.items() if seen < now - self.window]:
            del recent[key]
        return list(recent)

    async def check_once(self) -> int:
        """Look every recent id up once; publish and return how many were found deleted."""
        now = self.clock.now()
        ids = self._prune(now)
        found = 0
        for start in range(0, len(ids), BATCH):
            if self.cost.refuse(now) is not None:
                break
            chunk = ids[start : start + BATCH]
            body = await self.client.request(
                "GET",
                "/2/tweets",
                endpoint="lookup",
                cred=self.cred,
                params={"ids": ",".join(chunk)},
            )
            self.board.bump("compliance_lookups")
            present = [str(t.get("id")) for t in body.get("data") or [] if isinstance(t, dict)]
            self.cost.charge_reads(now, present)
            gone = self._gone(body, set(chunk))
            events = []
            for lookup_id in gone:
                remote_id, _ = self.intake.recent.pop(lookup_id, (lookup_id, now))
                events.append(
                    PostDeleted(
                        platform=self.platform,
                        remote_id=RemoteId(remote_id),
                        deleted_at=self.clock.now(),
                    )
                )
            if events:
                await self.intake.emit_uncursored(events, now)
                found += len(events)
        if found:
            self.log.info("x_deletions_found", count=found)
        return found

    @staticmethod
    def _gone(body: dict[str, Any], asked: set[str]) -> list[str]:
        gone: list[str] = []
        for error in body.get("errors") or []:
            if not isinstance(error, dict):
                continue
            kind = str(error.get("type", "")).rsplit("/", 1)[-1]
            rid = str(error.get("resource_id") or error.get("value") or "")
            if kind in GONE_KINDS and rid in asked:
                gone.append(rid)
        return gone

    async def run(self, interval: float) -> None:
        while True:
            await self.clock.sleep(interval)
            try:
                await self.check_once()
            except AuthExpired:
                return
            except RateLimited as exc:
                if exc.retry_at is not None:
                    await self.clock.sleep((exc.retry_at - self.clock.now()).total_seconds())
            except (TransientFailure, PermanentFailure) as exc:
                self.log.info("x_compliance_failed", error=type(exc).__name__)

    def dump(self) -> str:
        return json.dumps(
            {k: [remote, seen.isoformat()] for k, (remote, seen) in self.intake.recent.items()}
        )

    def load(self, text: str | None) -> None:
        if not text:
            return
        try:
            data = json.loads(text)
            for key, (remote, seen) in data.items():
                self.intake.recent[str(key)] = (str(remote), datetime.fromisoformat(seen))
        except (ValueError, TypeError):
            return
