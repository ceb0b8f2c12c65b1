"""The X adapter against the shared adapter contract, with the X emulator as the platform."""

from __future__ import annotations

import itertools

import pytest

from mhchat.actions import Action, Publish, Purpose
from mhchat.emulators.x import XEmulator
from mhchat.testing import AdapterContract, ContractHarness
from mhchat_x import create

from .conftest import FAST, X

_texts = itertools.count(1)


@pytest.fixture
async def harness(emulator: XEmulator) -> ContractHarness:
    async def deliver_post(text: str) -> str:
        return emulator.post_tweet("alice", text)

    async def succeeding_action() -> Action:
        n = next(_texts)
        return Publish(
            key=f"contract:x:{n}", platform=X, purpose=Purpose.QUESTION, text=f"Q{n} hello #MHChat"
        )

    async def arm_timeout_after_send() -> None:
        emulator.hang_next("create_tweet", after_write=True)

    return ContractHarness(
        platform=X,
        factory=create,
        deliver_post=deliver_post,
        succeeding_action=succeeding_action,
        arm_timeout_after_send=arm_timeout_after_send,
        settings={**FAST, "api_base": emulator.base_url},
        secrets=emulator.adapter_secrets("oauth1"),
        receive_timeout=10.0,
    )


class TestXContract(AdapterContract):
    """The X adapter keeps the contract every adapter keeps."""
