"""The configuration the demo writes passes ``mhchat check-config`` with the demo's secrets."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mhchat.cli import main
from mhchat.clock import SystemClock
from mhchat.demo.config import document, questions_toml, to_toml
from mhchat.demo.runner import chat_start, virtual_of
from mhchat.demo.script import generate
from mhchat.demo.world import World

pytestmark = pytest.mark.timeout(60)


async def test_check_config_accepts_the_demo_configuration(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    script = generate(participants=15)
    world = World(clock=SystemClock(), script=script)
    await world.start()
    try:
        questions = tmp_path / "questions.toml"
        questions.write_text(questions_toml(), encoding="utf-8")
        doc = document(
            starts_at=chat_start(datetime.now(UTC)),
            database=tmp_path / "demo.db",
            questions_file=questions,
            adapters=world.adapter_settings(virtual_of(60.0)),
            script=script,
            virtual_seconds=60.0,
        )
        config = tmp_path / "mhchat-demo.toml"
        config.write_text(to_toml(doc), encoding="utf-8")
        for name, value in world.secrets().items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("MHCHAT_DASHBOARD_TOKEN", "a-long-enough-demo-token")
        # check-config runs its own event loop, as it does from the command line.
        status = await asyncio.to_thread(main, ["check-config", "-c", str(config)])
    finally:
        await world.stop()
    output = capsys.readouterr()
    assert status == 0, output.err
    assert "platforms enabled: x, bluesky, facebook" in output.out
