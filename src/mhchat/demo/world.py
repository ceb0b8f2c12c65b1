"""The three local platforms and the participants' accounts on them.

``World`` starts the X, Bluesky and Facebook emulators on 127.0.0.1 (free ports), registers
every scripted participant, and acts for them through each platform's own inbound path: a post
on X reaches the adapter through the filtered stream, a Bluesky record through Jetstream, a
Facebook comment through a signed page webhook. It also finds the host's own posts (the
questions participants reply to) in what each emulator recorded.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from mhchat.clock import Clock
from mhchat.demo.script import BLUESKY_HOST, X_HOST, Person, Script, Step
from mhchat.emulators.bluesky import POST as BSKY_POST
from mhchat.emulators.bluesky import BlueskyEmulator
from mhchat.emulators.facebook import FacebookEmulator
from mhchat.emulators.facebook import Person as FacebookPerson
from mhchat.emulators.x import XEmulator
from mhchat.facilitation.threads import question_tag

BLUESKY_PASSWORD = f"{BLUESKY_HOST}-pw"
FACEBOOK_VERIFY_TOKEN = "demo-verify-token"  # noqa: S105 - a local emulator's setting


class HostPostMissing(LookupError):
    """A participant wanted to answer a host post that never went out."""


@dataclass
class World:
    clock: Clock
    script: Script
    x: XEmulator = field(init=False)
    bluesky: BlueskyEmulator = field(init=False)
    facebook: FacebookEmulator = field(init=False)
    bluesky_host: str = ""
    dids: dict[str, str] = field(default_factory=dict)
    fb_people: dict[str, FacebookPerson] = field(default_factory=dict)
    remote: dict[str, str] = field(default_factory=dict)
    """Step id -> the platform's id of the post it made (tweet id, at:// URI, comment id)."""

    def __post_init__(self) -> None:
        # Keep-alives every 2 real seconds; the adapter's stall timer is set in virtual time.
        self.x = XEmulator(clock=self.clock, host_username=X_HOST, keepalive_seconds=2.0)
        self.bluesky = BlueskyEmulator(clock=self.clock)
        self.facebook = FacebookEmulator(clock=self.clock, retry_delays=(0.0, 0.2, 1.0, 3.0))

    async def start(self) -> None:
        await self.x.start()
        await self.bluesky.start()
        await self.facebook.start()
        self.bluesky_host = self.bluesky.create_account(BLUESKY_HOST, password=BLUESKY_PASSWORD)
        for person in self.script.people:
            self._register(person)

    async def stop(self) -> None:
        for emulator in (self.facebook, self.bluesky, self.x):
            await emulator.stop()

    def _register(self, person: Person) -> None:
        if person.platform == "x":
            self.x.add_user(person.handle, name=person.name)
        elif person.platform == "bluesky":
            did = self.bluesky.create_account(person.handle, display_name=person.name)
            self.dids[person.key] = did
        else:
            self.fb_people[person.key] = FacebookPerson(person.handle, person.name)

    # -- what the service needs --------------------------------------------------------------

    def adapter_settings(self, virtual: Callable[[float], float]) -> dict[str, dict[str, object]]:
        """``[adapters.*]`` tables pointing the real adapters at the emulators.

        ``virtual(real_seconds)`` converts a real duration into the compressed clock's seconds,
        for timers the adapters measure with the clock (stall detection, poll cadence).
        """
        return {
            "x": {
                "api_base": self.x.base_url,
                "tier": "pay_per_use",
                "host_username": X_HOST,
                "stall_seconds": virtual(10.0),
                "compliance_interval": virtual(5.0),
                "request_timeout": 10.0,
            },
            "bluesky": {
                "handle": BLUESKY_HOST,
                "service_url": self.bluesky.base_url,
                "jetstream_url": self.bluesky.jetstream_url,
                "checkpoint_interval_seconds": virtual(1.0),
                "batch_linger_seconds": 0.02,
                "search_poll_seconds": virtual(5.0),
                "fallback_after_seconds": virtual(10.0),
            },
            "facebook": {
                "page_id": self.facebook.page.id,
                "graph_url": self.facebook.base_url,
                "appsecret_proof": True,
                "backfill_check_seconds": virtual(2.0),
                "quiet_seconds": virtual(20.0),
            },
        }

    def secrets(self) -> dict[str, str]:
        """Emulator credentials as ``MHCHAT_<PLATFORM>_*`` environment values."""
        env = {f"MHCHAT_X_{k}": v for k, v in self.x.adapter_secrets("oauth1").items()}
        env["MHCHAT_BLUESKY_APP_PASSWORD"] = BLUESKY_PASSWORD
        env["MHCHAT_FACEBOOK_APP_SECRET"] = self.facebook.app_secret
        env["MHCHAT_FACEBOOK_VERIFY_TOKEN"] = FACEBOOK_VERIFY_TOKEN
        env["MHCHAT_FACEBOOK_PAGE_ACCESS_TOKEN"] = self.facebook.page_token
        return env

    def connect_webhooks(self, service_url: str) -> None:
        self.facebook.webhook_url = f"{service_url}/webhooks/facebook"

    # -- the host's posts --------------------------------------------------------------------

    def host_post(self, platform: str, ref: str) -> str | None:
        """The platform id of a host post named in the script (``Q2``, ``intro``...)."""
        texts = self.host_posts(platform)
        for remote_id, text in texts:
            if _names(text, ref):
                return remote_id
        return None

    def host_posts(self, platform: str) -> list[tuple[str, str]]:
        """(id, text) of every top-level post the host published on a platform."""
        if platform == "x":
            return [
                (str(t["id"]), str(t.get("text", "")))
                for t in self.x.created_tweets
                if not t.get("reply")
            ]
        if platform == "bluesky":
            return [
                (r.uri, str(r.value.get("text", "")))
                for r in self.bluesky.records(self.bluesky_host, BSKY_POST)
                if "reply" not in r.value
            ]
        return [(s.remote_id, s.message) for s in self.facebook.sent if s.kind == "publish"]

    async def wait_for_host_post(self, platform: str, ref: str, within: float) -> str:
        """Wait (real seconds) for the host's post to appear: the sender may be a beat late."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while True:
            found = self.host_post(platform, ref)
            if found is not None:
                return found
            if loop.time() >= deadline:
                raise HostPostMissing(f"{platform} {ref}")
            await asyncio.sleep(0.02)

    # -- participants act --------------------------------------------------------------------

    async def perform(self, step: Step, within: float = 15.0) -> None:
        """Do one scripted step on its platform (through that platform's inbound path)."""
        person = self.script.person(step.author)
        parent = await self._ref(step.platform, step.reply_to, within)
        quoted = await self._ref(step.platform, step.quote, within)
        if step.kind == "delete":
            assert step.target is not None
            await self._delete(step.platform, self.remote[step.target])
            return
        if step.platform == "x":
            self.remote[step.id] = self.x.post_tweet(
                person.handle, step.text, reply_to=parent, quote=quoted
            )
        elif step.platform == "bluesky":
            self.remote[step.id] = self.bluesky.post(
                self.dids[person.key], step.text, reply_to=parent, quote=quoted
            )
        else:
            who = self.fb_people[person.key]
            if parent is None:
                self.remote[step.id] = await self.facebook.visitor_post(who, step.text)
            else:
                self.remote[step.id] = await self.facebook.comment(who, step.text, parent)

    async def _ref(self, platform: str, ref: str | None, within: float) -> str | None:
        if ref is None:
            return None
        if ref in self.remote:
            return self.remote[ref]
        return await self.wait_for_host_post(platform, ref, within)

    async def _delete(self, platform: str, remote_id: str) -> None:
        if platform == "x":
            self.x.delete_tweet(remote_id)
        elif platform == "bluesky":
            self.bluesky.delete(remote_id)
        else:
            await self.facebook.remove(remote_id)


def _names(text: str, ref: str) -> bool:
    body = text.lstrip()
    if ref.startswith("Q"):
        return question_tag(body) == int(ref[1:])
    if ref == "intro":
        return body.startswith("Welcome")
    if ref == "reminder":
        return body.startswith("Reminder")
    return False
