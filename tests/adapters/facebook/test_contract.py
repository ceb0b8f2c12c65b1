"""The adapter contract, with the Graph emulator and a webhook server for the adapter."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from mhchat.actions import Action, Purpose, Reply
from mhchat.adapters import Adapter, AdapterContext
from mhchat.emulators.facebook import FacebookEmulator
from mhchat.events import PostRef, RemoteId
from mhchat.testing import AdapterContract, ContractHarness
from mhchat_facebook import FacebookAdapter, create

from .conftest import ALICE, FACEBOOK, secrets_for, settings_for


class WebhookHost:
    """Serves the webhook sub-app of the most recently built adapter on 127.0.0.1.

    The core mounts one adapter's sub-app in its own app; here each adapter the contract builds
    gets a fresh server, and the emulator's subscription is pointed at it.
    """

    def __init__(self, emulator: FacebookEmulator) -> None:
        self.emulator = emulator
        self.latest: FacebookAdapter | None = None
        self._served: FacebookAdapter | None = None
        self._runner: web.AppRunner | None = None

    def factory(self, ctx: AdapterContext) -> Adapter:
        adapter = create(ctx)
        self.latest = adapter
        return adapter

    async def ensure_serving(self) -> None:
        if self.latest is None or self.latest is self._served:
            return
        await self.close()
        app = web.Application()
        app.add_subapp("/webhooks/facebook", self.latest.webhook_app())
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.emulator.webhook_url = f"http://127.0.0.1:{port}/webhooks/facebook"
        self._served = self.latest

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


class TestFacebookContract(AdapterContract):
    @pytest.fixture
    async def harness(self, emulator: FacebookEmulator) -> AsyncIterator[ContractHarness]:
        host = WebhookHost(emulator)
        question = await emulator.page_post("Q1 How has your week been? #MHChat")

        async def deliver_post(text: str) -> str:
            await host.ensure_serving()
            comment = await emulator.comment(ALICE, text, on_post=question)
            await emulator.drain()
            return comment

        async def succeeding_action() -> Action:
            target = PostRef(remote_id=RemoteId(question))
            return Reply(
                key="contract:facebook:reply",
                platform=FACEBOOK,
                purpose=Purpose.WELCOME,
                text="Welcome! Be kind #MHChat",
                parent=target,
                root=target,
            )

        async def arm_timeout_after_send() -> None:
            emulator.timeout_next(after_effect=True)

        yield ContractHarness(
            platform=FACEBOOK,
            factory=host.factory,
            deliver_post=deliver_post,
            succeeding_action=succeeding_action,
            arm_timeout_after_send=arm_timeout_after_send,
            settings=settings_for(emulator, request_timeout=0.5),
            secrets=secrets_for(emulator),
            receive_timeout=5.0,
        )
        await host.close()
