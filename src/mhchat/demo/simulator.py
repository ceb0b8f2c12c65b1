"""Plays the script: each step at its (compressed) time, through the platforms' inbound paths."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import structlog

from mhchat.demo.clock import SpeedClock
from mhchat.demo.script import Script, Step
from mhchat.demo.world import HostPostMissing, World

log = structlog.get_logger("mhchat.demo.simulator")


@dataclass
class Progress:
    """What the participants have done so far (read by the terminal display)."""

    posted: Counter[str] = field(default_factory=Counter)
    deleted: Counter[str] = field(default_factory=Counter)
    skipped: list[str] = field(default_factory=list)
    """Step ids that could not be played (a host post they answer never went out)."""
    done: int = 0


class Simulator:
    def __init__(self, script: Script, world: World, clock: SpeedClock, starts_at: datetime):
        self.script = script
        self.world = world
        self.clock = clock
        self.starts_at = starts_at
        self.progress = Progress()

    def when(self, step: Step) -> datetime:
        return self.starts_at + timedelta(minutes=step.at)

    async def run(self) -> Progress:
        for step in self.script.steps:
            if step.history:
                continue  # imported from the archive before the chat (``demo.archive``)
            await self.clock.sleep_until(self.when(step))
            await self.play(step)
        return self.progress

    async def play(self, step: Step) -> None:
        try:
            await self.world.perform(step)
        except HostPostMissing as exc:
            log.warning("demo_step_skipped", step=step.id, missing=str(exc))
            self.progress.skipped.append(step.id)
            return
        finally:
            self.progress.done += 1
        if step.kind == "delete":
            self.progress.deleted[step.platform] += 1
        else:
            self.progress.posted[step.platform] += 1
