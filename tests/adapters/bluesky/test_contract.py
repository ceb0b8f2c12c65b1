"""The Bluesky adapter against the shared adapter contract, on the local emulator."""

from __future__ import annotations

import itertools

import pytest
from tests.adapters.bluesky.conftest import BLUESKY, PASSWORD, World

from mhchat.actions import Action, Publish, Purpose
from mhchat.emulators.bluesky import BlueskyEmulator
from mhchat.testing import AdapterContract, ContractHarness
from mhchat_bluesky import create

_keys = itertools.count(1)


@pytest.fixture
def harness(world: World, emulator: BlueskyEmulator) -> ContractHarness:
    async def deliver_post(text: str) -> str:
        return emulator.post(world.alice, text)

    async def succeeding_action() -> Action:
        return Publish(
            key=f"contract:{next(_keys)}",
            platform=BLUESKY,
            purpose=Purpose.QUESTION,
            text="Q1 How has your week been? #MHChat",
        )

    async def arm_timeout_after_send() -> None:
        emulator.hang_next("com.atproto.repo.createRecord", after_write=True)

    return ContractHarness(
        platform=BLUESKY,
        factory=create,
        deliver_post=deliver_post,
        succeeding_action=succeeding_action,
        arm_timeout_after_send=arm_timeout_after_send,
        settings=world.settings(),
        secrets={"APP_PASSWORD": PASSWORD},
        receive_timeout=5.0,
    )


class TestBlueskyContract(AdapterContract):
    """Every adapter's behaviour, for Bluesky."""
