"""SpeedClock semantics, and the demo and replay commands as the CLI runs them."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mhchat.cli import build_parser, main
from mhchat.demo.clock import SpeedClock

START = datetime(2026, 11, 25, 19, 50, tzinfo=UTC)
JETSTREAM = (
    Path(__file__).resolve().parents[1] / "adapters/bluesky/payloads/jetstream-derived.jsonl"
)


class TestSpeedClock:
    async def test_time_runs_faster_by_the_speed(self) -> None:
        clock = SpeedClock(START, speed=600)
        began = time.monotonic()
        await clock.sleep(60)  # one chat minute
        real = time.monotonic() - began
        assert 0.09 <= real < 0.5
        assert clock.now() - START >= timedelta(seconds=60)

    async def test_a_sleep_started_slow_wakes_on_time_after_a_speed_up(self) -> None:
        clock = SpeedClock(START, speed=1)
        sleeper = asyncio.create_task(clock.sleep(120))
        await asyncio.sleep(0.05)
        began = time.monotonic()
        clock.set_speed(1200)
        await asyncio.wait_for(sleeper, 2)
        assert time.monotonic() - began < 0.5
        assert clock.now() - START >= timedelta(seconds=120)

    async def test_time_is_continuous_across_speed_changes(self) -> None:
        clock = SpeedClock(START, speed=1000)
        await asyncio.sleep(0.02)
        before = clock.now()
        clock.set_speed(1)
        after = clock.now()
        assert after >= before
        assert after - before < timedelta(seconds=1)

    def test_naive_start_and_bad_speed_are_refused(self) -> None:
        with pytest.raises(ValueError, match="naive"):
            SpeedClock(datetime(2026, 1, 1), speed=2)  # noqa: DTZ001 - the point of the test
        with pytest.raises(ValueError, match="positive"):
            SpeedClock(START, speed=0)


class TestCommands:
    def test_demo_and_replay_are_offered(self) -> None:
        parser = build_parser()
        args = parser.parse_args(["demo", "--speed", "120", "--no-browser", "--seed", "3"])
        assert (args.speed, args.no_browser, args.seed, args.participants) == (120.0, True, 3, 36)
        args = parser.parse_args(["replay", "a.jsonl", "b.json"])
        assert args.files == ["a.jsonl", "b.json"]

    def test_demo_refuses_too_few_participants(self, capsys: pytest.CaptureFixture[str]) -> None:
        assert main(["demo", "--participants", "5", "--no-browser"]) == 2
        assert "at least 15" in capsys.readouterr().err

    def test_replay_command_imports_and_reports_unknown_files(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        config = tmp_path / "mhchat.toml"
        config.write_text(f'[database]\nurl = "sqlite:///{tmp_path / "r.db"}"\n', encoding="utf-8")
        assert main(["replay", "-c", str(config), str(JETSTREAM)]) == 0
        out = capsys.readouterr().out
        assert "jetstream" in out
        assert "nothing was posted" in out
        junk = tmp_path / "junk.json"
        junk.write_text("[1, 2, 3]", encoding="utf-8")
        assert main(["replay", "-c", str(config), str(junk), str(JETSTREAM)]) == 2
