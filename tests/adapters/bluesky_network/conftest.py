"""Fixtures for the tests against a real local AT Protocol network.

``atproto_network`` (session): installs tools/atproto-network if needed, starts PLC + PDS +
appview with rate limits on, and creates the host and participant accounts.
``bridge`` (per test): a Jetstream bridge following the PDS firehose, caught up before the test.
``participants``: logged-in SDK clients for the participant accounts (one createSession each
per test run, so the PDS's createSession budget stays for the adapter's own logins).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from atproto import AsyncClient, Client  # type: ignore[import-untyped]
from tests.adapters.bluesky_network.network import (
    AtprotoNetwork,
    NetworkError,
    ensure_services,
    install,
    start_network,
)

from mhchat.emulators.jetstream_bridge import JetstreamBridge

HERE = Path(__file__).resolve().parent
HOST = "mhchathost"
PARTICIPANTS = ("alice", "bob", "carol")
RATE_LIMITED = "dave"
"""An account whose createSession budget a test spends to the last point."""
CONTRACT_HOST = "erin"
"""The host account of the contract suite, whose every test logs in afresh."""


_prepared: dict[str, Any] = {}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Install the network (about a minute on a fresh machine) before any test's timeout runs,
    and only when a test of this folder was selected."""
    if not any(HERE in Path(str(item.path)).parents for item in items):
        return
    try:
        ensure_services()
        _prepared["node"] = install()
    except NetworkError as exc:
        _prepared["error"] = str(exc)


@pytest.fixture(scope="session")
def atproto_network() -> Iterator[AtprotoNetwork]:
    try:
        if "error" in _prepared:
            raise NetworkError(_prepared["error"])
        node = _prepared.get("node")
        if node is None:
            ensure_services()
            node = install()
        network = start_network(
            node, [HOST, *PARTICIPANTS, RATE_LIMITED, CONTRACT_HOST], rate_limits=True
        )
    except NetworkError as exc:
        pytest.fail(f"cannot run the local AT Protocol network: {exc}", pytrace=False)
    try:
        yield network
    finally:
        network.close()


@pytest.fixture(scope="session")
def participant_sessions(atproto_network: AtprotoNetwork) -> dict[str, str]:
    """Exported SDK sessions of the participants, logged in once with their app passwords."""
    sessions = {}
    for name in PARTICIPANTS:
        account = atproto_network.accounts[name]
        client = Client(base_url=atproto_network.pds_url)
        try:
            client.login(account.handle, account.app_password)
            sessions[name] = client.export_session_string()
        finally:
            client.request.close()
    return sessions


@pytest.fixture
async def participants(
    atproto_network: AtprotoNetwork, participant_sessions: dict[str, str]
) -> AsyncIterator[dict[str, Any]]:
    """name -> AsyncClient logged in from the exported session (no createSession call)."""
    clients = {}
    try:
        for name, session in participant_sessions.items():
            client = AsyncClient(base_url=atproto_network.pds_url)
            clients[name] = client
            await client.login(session_string=session)
        yield clients
    finally:
        for client in clients.values():
            await client.request.close()


@pytest.fixture
async def bridge(
    atproto_network: AtprotoNetwork, participants: dict[str, Any]
) -> AsyncIterator[JetstreamBridge]:
    """A Jetstream bridge that has replayed the PDS's whole firehose and is live."""
    jetstream = JetstreamBridge(atproto_network.firehose_url)
    await jetstream.start()
    try:
        # A marker write proves the bridge has caught up with everything before it.
        marker = uuid.uuid4().hex
        carol = participants["carol"]
        await carol.com.atproto.repo.put_record(
            {
                "repo": atproto_network.accounts["carol"].did,
                "collection": "app.bsky.actor.profile",
                "rkey": "self",
                "record": {"$type": "app.bsky.actor.profile", "displayName": f"carol {marker}"},
            }
        )
        await jetstream.wait_for_event(
            lambda e: (
                e.get("kind") == "commit"
                and marker in str(e["commit"].get("record", {}).get("displayName", ""))
            ),
            within=30,
        )
        yield jetstream
    finally:
        await jetstream.stop()
