"""The adapter contract suite, run against the real PDS, appview and firehose (via the bridge).

Writes pass through a small proxy so that a write can reach the PDS and lose its answer.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from tests.adapters.bluesky_network.helpers import BLUESKY, get_record, tagged
from tests.adapters.bluesky_network.network import AtprotoNetwork
from tests.adapters.bluesky_network.proxy import XrpcProxy

from mhchat.actions import Publish, Purpose
from mhchat.emulators.jetstream_bridge import JetstreamBridge
from mhchat.errors import OutcomeUnknown
from mhchat.testing import AdapterContract, ContractHarness, RecordingSink, make_context
from mhchat_bluesky import create

CONTRACT_HOST = "erin"


@pytest.fixture
async def proxy(atproto_network: AtprotoNetwork) -> AsyncIterator[XrpcProxy]:
    front = XrpcProxy(atproto_network.pds_url)
    await front.start()
    try:
        yield front
    finally:
        await front.stop()


@pytest.fixture
def harness(
    atproto_network: AtprotoNetwork,
    bridge: JetstreamBridge,
    participants: dict[str, Any],
    proxy: XrpcProxy,
) -> ContractHarness:
    host = atproto_network.accounts[CONTRACT_HOST]

    async def deliver_post(text: str) -> str:
        before, _, after = text.partition("#MHChat")
        created = await participants["alice"].send_post(tagged(before, suffix=after))
        return str(created.uri)

    async def succeeding_action() -> Publish:
        return Publish(
            key=f"contract:{uuid.uuid4().hex}",
            platform=BLUESKY,
            purpose=Purpose.QUESTION,
            text=f"Q1 How are you today? {uuid.uuid4().hex[:8]} #MHChat",
        )

    async def arm_timeout_after_send() -> None:
        proxy.swallow_next("com.atproto.repo.createRecord")

    return ContractHarness(
        platform=BLUESKY,
        factory=create,
        deliver_post=deliver_post,
        succeeding_action=succeeding_action,
        arm_timeout_after_send=arm_timeout_after_send,
        settings={
            "handle": host.handle,
            "service_url": proxy.base_url,
            "jetstream_url": bridge.jetstream_url,
            "request_timeout_seconds": 2.0,
            "reconnect_initial_seconds": 0.05,
            "reconnect_max_seconds": 0.5,
            "batch_linger_seconds": 0.01,
        },
        secrets={"APP_PASSWORD": host.app_password},
        receive_timeout=20.0,
    )


class TestBlueskyContractOnRealNetwork(AdapterContract):
    async def test_lost_answer_write_is_found_by_check_outcome(
        self, harness: ContractHarness, proxy: XrpcProxy, atproto_network: AtprotoNetwork
    ) -> None:
        """The write whose answer was lost did happen on the PDS, and check_outcome finds it."""
        async with aiohttp.ClientSession() as http:
            adapter: Any = harness.factory(make_context(harness, http, RecordingSink()))
            await adapter.start()
            try:
                action = await harness.succeeding_action()
                assert isinstance(action, Publish)
                await harness.arm_timeout_after_send()
                with pytest.raises(OutcomeUnknown):
                    await adapter.perform(action)
                assert proxy.swallowed == ["com.atproto.repo.createRecord"]
                found = await adapter.check_outcome(action)
            finally:
                await adapter.stop()
        assert found is not None
        stored = await get_record(atproto_network.pds_url, found.remote_id)
        assert stored["value"]["text"] == action.text
