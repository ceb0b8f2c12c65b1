"""Webhook delivery: ``feed`` changes POSTed to the subscriber signed like Meta, retried a bounded
number of times on non-2xx, held back while the subscription is lapsed."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from typing import Any

import aiohttp

from mhchat.emulators.facebook.model import Delivery, meta_json, sign
from mhchat.emulators.facebook.state import FacebookState


class FacebookWebhooks(FacebookState):
    """Deliveries of page changes to :attr:`webhook_url`."""

    def lapse_subscription(self) -> None:
        """Activity keeps landing in the feed, but no webhook is sent."""
        self.subscription_active = False

    def restore_subscription(self) -> None:
        self.subscription_active = True

    def deliver_changes(self, changes: list[dict[str, Any]]) -> None:
        """Send one envelope of ``feed`` changes for the page (in the background)."""
        envelope = {
            "object": "page",
            "entry": [
                {"id": self.page.id, "time": int(self.clock.now().timestamp()), "changes": changes}
            ],
        }
        body = meta_json(envelope)
        if not self.subscription_active or self.webhook_url is None:
            self.undelivered.append(body)
            return
        delivery = Delivery(body)
        self.deliveries.append(delivery)
        task = asyncio.get_running_loop().create_task(self._send(delivery))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, delivery: Delivery) -> None:
        assert self._http is not None, "start() the emulator first"
        headers = {
            "Content-Type": "application/json",
            "X-Hub-Signature-256": sign(delivery.body, self.app_secret),
            "X-Hub-Signature": "sha1="
            + hmac.new(self.app_secret.encode(), delivery.body, hashlib.sha1).hexdigest(),
        }
        for delay in self.retry_delays:
            await asyncio.sleep(delay)
            url = self.webhook_url
            if url is None:
                break
            try:
                async with self._http.post(url, data=delivery.body, headers=headers) as resp:
                    delivery.attempts.append(resp.status)
                    if 200 <= resp.status < 300:
                        delivery.delivered = True
                        return
            except aiohttp.ClientError:
                delivery.attempts.append(0)

    async def redeliver_failed(self) -> None:
        """Meta's later retries: send every failed delivery again, in order."""
        for delivery in [d for d in self.deliveries if not d.delivered]:
            await self._send(delivery)

    async def drain(self) -> None:
        """Wait until every delivery in flight has succeeded or used up its retries."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
