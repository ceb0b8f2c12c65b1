"""The demo's session script: who posts what, where and when, as plain data.

``generate(seed, participants)`` builds a realistic chat for X, Bluesky and the Facebook page:
returning and first-time participants, answers to every question in the spellings people use
("A1:", "a1 -", "A1."), replies and quotes that form threads during the hour and after it, and
the moments a facilitator must handle: a post in crisis, an abusive post, a spam burst, a
deletion on two platforms, a "don't repost me" request, and a newcomer who @mentions the host
(on X the only kind of post the host may reply to).

The script is the simulator's input and the test's oracle: ``expected`` derives from it the
figures the demo must report (posts stored, participants, first-timers welcomed, flags,
deletions), so the demo's own numbers, read from the database and the emulators, can be checked
against what the participants actually did.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Literal

PLATFORMS = ("x", "bluesky", "facebook")
HASHTAG = "MHChat"
X_HOST = "MHChatHost"
BLUESKY_HOST = "mhchathost.test"

QUESTION_OFFSETS = (5, 15, 30, 45)
"""Minutes after the start at which Q1..Q4 go out (the packaged questions file)."""
LENGTH_MINUTES = 60
PRE_CHAT_MINUTES = 2
AFTER_HOURS_MINUTES = 20
HISTORY_AT = -5.0
"""Returning participants' earlier posts: minutes before a chat weeks ago, outside its window
(the demo imports them from an archive, ``demo.archive``)."""
MIN_PARTICIPANTS = 15

Kind = Literal["post", "reply", "quote", "delete"]
Category = Literal["ok", "crisis", "abuse", "spam", "request"]


@dataclass(frozen=True, slots=True)
class Person:
    key: str
    """``platform:handle``."""
    platform: str
    handle: str
    name: str
    returning: bool
    role: str = "ordinary"


@dataclass(frozen=True, slots=True, kw_only=True)
class Step:
    """One thing a participant does, ``at`` minutes after the chat starts."""

    id: str
    at: float
    platform: str
    author: str
    kind: Kind
    text: str = ""
    category: Category = "ok"
    question: int | None = None
    """The question this post answers by the chat's convention or by replying to it."""
    reply_to: str | None = None
    """A step id, or a host post: ``Q1``..``Qn``, ``intro``, ``reminder``."""
    quote: str | None = None
    target: str | None = None
    """For ``delete``: the step whose post is deleted."""
    mentions_host: bool = False
    history: bool = False
    """Posted before this chat (a returning participant's earlier visit)."""

    @property
    def is_post(self) -> bool:
        return self.kind != "delete"


@dataclass(frozen=True, slots=True)
class Script:
    seed: int
    people: tuple[Person, ...]
    steps: tuple[Step, ...]

    def person(self, key: str) -> Person:
        return next(p for p in self.people if p.key == key)

    def step(self, step_id: str) -> Step:
        return next(s for s in self.steps if s.id == step_id)

    @property
    def deleted(self) -> frozenset[str]:
        return frozenset(s.target for s in self.steps if s.kind == "delete" and s.target)

    def in_session(self, step: Step) -> bool:
        return (
            step.is_post
            and not step.history
            and -PRE_CHAT_MINUTES <= step.at < LENGTH_MINUTES + AFTER_HOURS_MINUTES
        )

    def session_posts(self) -> list[Step]:
        """Posts that belong to tonight's session and stay (not deleted)."""
        gone = self.deleted
        return [s for s in self.steps if self.in_session(s) and s.id not in gone]

    def threads(self) -> list[list[str]]:
        """Reply chains among participants: step ids that must share one thread."""
        parent = {
            s.id: s.reply_to
            for s in self.steps
            if s.kind == "reply" and s.reply_to and s.reply_to[0] == "p"
        }
        roots: dict[str, list[str]] = {}
        for child in parent:
            root = child
            while root in parent:
                root = parent[root]
            roots.setdefault(root, [root]).append(child)
        gone = self.deleted
        return [
            [i for i in chain if i not in gone]
            for chain in roots.values()
            if not gone.intersection(chain)
        ]

    def expected(self) -> Expected:
        posts = self.session_posts()
        by_platform = Counter(s.platform for s in posts)
        authors = {(s.platform, s.author) for s in posts}
        first: dict[str, Step] = {}
        for s in sorted((s for s in self.steps if self.in_session(s)), key=lambda s: s.at):
            first.setdefault(s.author, s)
        newcomers = [p for p in self.people if not p.returning and p.key in first]
        welcomed = {p.key for p in newcomers if first[p.key].category in ("ok", "request")}
        welcome_sent = {k for k in welcomed if not k.startswith("x:") or first[k].mentions_host}
        flags = Counter(s.category for s in posts if s.category in ("crisis", "abuse", "spam"))
        return Expected(
            posts_by_platform=dict(by_platform),
            participants=len(authors),
            first_timers=len(newcomers),
            welcomes_decided=frozenset(welcomed),
            welcomes_sent=frozenset(welcome_sent),
            flags={str(k): v for k, v in flags.items()},
            deletions=len(self.deleted),
            never_amplified=frozenset(
                s.id for s in self.steps if s.is_post and s.category != "ok"
            ),
            opted_out=frozenset(p.key for p in self.people if p.role == "opt_out"),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Expected:
    posts_by_platform: dict[str, int]
    participants: int
    first_timers: int
    welcomes_decided: frozenset[str]
    """Person keys the service should welcome (first post in the chat, nothing flagged)."""
    welcomes_sent: frozenset[str]
    """Of those, the welcomes a platform accepts (X: only when the post @mentions the host)."""
    flags: dict[str, int]
    deletions: int
    never_amplified: frozenset[str]
    opted_out: frozenset[str]


# -- texts ------------------------------------------------------------------------------------

FIRST = [
    "Sam",
    "Alex",
    "Jo",
    "Priya",
    "Tom",
    "Mia",
    "Ola",
    "Ravi",
    "Lena",
    "Kofi",
    "Nina",
    "Ben",
    "Aisha",
    "Leo",
    "Maya",
    "Dan",
    "Zoe",
    "Omar",
    "Ivy",
    "Finn",
    "Rosa",
    "Kai",
    "Ella",
    "Theo",
    "Nia",
    "Max",
    "Lily",
    "Sean",
    "Hana",
    "Joel",
    "Cleo",
    "Ade",
    "Rhys",
    "Tara",
    "Yusuf",
    "Greta",
    "Luis",
    "Ines",
    "Paul",
    "Ruth",
    "Emeka",
    "Skye",
    "Noah",
    "Amara",
    "Will",
    "Freya",
    "Jon",
    "Asha",
]
LAST = [
    "Reid",
    "Khan",
    "Osei",
    "Walsh",
    "Brook",
    "Evans",
    "Patel",
    "Moss",
    "Lund",
    "Adeyemi",
    "Price",
    "Hart",
    "Quinn",
    "Boyd",
]

ANSWERS: dict[int, tuple[str, ...]] = {
    1: (
        "honestly a bit tired but glad to be here",
        "up and down, today was a better day",
        "calmer than last week, small steps",
        "anxious about work but hanging in there",
        "pretty good actually, slept well for once",
        "a mixed bag, grateful for this space",
        "feeling lighter after a walk this evening",
        "low energy but trying to be gentle with myself",
        "busy head, quiet evening, it balances out",
        "okay-ish, the weather has not helped",
        "better for having talked to a friend today",
        "wobbly start to the week, steadier now",
    ),
    2: (
        "a long walk with the dog, it clears my head",
        "writing three lines in a journal before bed",
        "saying no to one extra thing at work",
        "a cup of tea and ten minutes of quiet",
        "texting an old friend out of the blue",
        "cooking a proper meal instead of snacking",
        "putting my phone in another room at night",
        "a short swim, cold water resets me",
        "listening to an album start to finish",
        "sitting in the garden for a bit of sun",
        "asking for help with something small",
        "a gentle stretch routine in the morning",
    ),
    3: (
        "my sister, she always picks up the phone",
        "this chat, honestly, every Wednesday",
        "my GP was really kind when I went",
        "a friend from my running group",
        "music first, then people when I am ready",
        "my partner, even when I find it hard to ask",
        "a peer support group in my town",
        "writing it down helps me see it clearer",
        "my cat, who does not judge anyone",
        "a colleague who has been through it too",
        "the outdoors, a hill and a flask of tea",
        "my mum, we have got closer this year",
    ),
    4: (
        "you are not a burden, please reach out",
        "tonight is one night, tomorrow can be kinder",
        "it is okay not to be okay, you matter",
        "small steps still count as steps",
        "you are not alone, we are here with you",
        "be as kind to yourself as you are to others",
        "rest is not giving up",
        "asking for help is strong, not weak",
        "feelings pass, even the heavy ones",
        "there are people who want to hear from you",
        "go easy on yourself, you are doing your best",
        "one breath, one hour, one day at a time",
    ),
}
REPLIES = (
    "so true, thank you for sharing this",
    "same here, it really helps to hear that",
    "love this, going to try it this week",
    "sending you a virtual hug",
    "this made me smile, thank you",
    "I relate to this so much",
    "good to see you here tonight",
    "that is such a good idea",
    "well said, needed to hear it",
    "glad that works for you, take care",
    "yes! and it gets easier with practice",
    "thanks, you always have kind words",
)
QUOTES = (
    "This, exactly this",
    "Needed to read this tonight",
    "Saving this one for later",
    "Such a good answer",
)
HELLOS_NEW = (
    "first time joining, hello everyone",
    "new here, looking forward to tonight",
    "hi all, a friend told me about this chat",
)
HELLOS_BACK = (
    "evening all, good to be back",
    "hello again everyone",
    "back for another week, hi all",
)
HISTORY = (
    "looking forward to the chat tonight",
    "thanks for last week's chat, it helped",
    "really valued the answers last time",
    "this chat is a highlight of my week",
    "grateful for this community",
    "see you all next Wednesday",
)
SPELLINGS = ("A{n}:", "A{n}", "a{n} -", "A{n} -", "a{n}:", "A{n}.")

CRISIS_TEXT = "A1: honestly I don't want to be here anymore, everything feels pointless"
ABUSE_TEXT = "this chat is full of pathetic whiny idiots, shut the fuck up"
SPAM_TEXT = (
    "Huge sale, followers fast!!! http://cheap-followers.example/a http://cheap-followers.example/b"
    " http://cheap-followers.example/c http://cheap-followers.example/d"
)
OPT_OUT_TEXT = "please don't repost me tonight, just reading along"
GREETING_TEXT = "first time joining, hello everyone! A bit nervous"


@dataclass
class _Builder:
    rng: random.Random
    steps: list[Step] = field(default_factory=list)
    used: set[tuple[str, str]] = field(default_factory=set)

    def add(self, **kwargs: object) -> Step:
        step = Step(id=f"p{len(self.steps) + 1:03d}", **kwargs)  # type: ignore[arg-type]
        self.steps.append(step)
        return step

    def text(self, platform: str, body: str, person: Person, *, tag: bool = True) -> str:
        """A unique text (the spam step counts identical texts from several accounts)."""
        text = body
        if (platform, text) in self.used:
            text = f"{body} ({person.name.split()[0]})"
        n = 2
        while (platform, text) in self.used:
            text = f"{body} ({person.name.split()[0]} {n})"
            n += 1
        self.used.add((platform, text))
        if tag and platform != "facebook":
            text = f"{text} #{HASHTAG}"
        return text


def _people(rng: random.Random, total: int) -> list[Person]:
    names = [f"{f} {last}" for f in FIRST for last in LAST]
    rng.shuffle(names)
    per = [total // 3 + (1 if i < total % 3 else 0) for i in range(3)]
    roles = {
        "x": [("crisis", True), ("spammer", False), ("greeter", False)],
        "bluesky": [("abusive", False), ("opt_out", True), ("deleter", True)],
        "facebook": [("deleter", True)],
    }
    people: list[Person] = []
    for platform, count in zip(PLATFORMS, per, strict=True):
        for i in range(count):
            name = names.pop()
            first, last = name.split()
            special = roles[platform][i] if i < len(roles[platform]) else None
            role, returning = special if special else ("ordinary", rng.random() < 0.4)
            if platform == "x":
                handle = f"{first}{last}{i}"[:15]
            elif platform == "bluesky":
                handle = f"{first}{last}{i}.test".lower()
            else:
                handle = f"{1000040000000 + len(people)}"
            people.append(Person(f"{platform}:{handle}", platform, handle, name, returning, role))
    return people


def generate(seed: int = 7, participants: int = 36) -> Script:
    """A seeded session for ``participants`` people spread over the three platforms."""
    if participants < MIN_PARTICIPANTS:
        raise ValueError(f"the demo needs at least {MIN_PARTICIPANTS} participants")
    rng = random.Random(seed)
    people = _people(rng, participants)
    b = _Builder(rng)
    answers: dict[str, list[Step]] = {p: [] for p in PLATFORMS}

    for person in people:
        if person.returning:
            at = HISTORY_AT + rng.uniform(0.0, 1.5)
            b.add(
                at=round(at, 3),
                platform=person.platform,
                author=person.key,
                kind="reply" if person.platform == "facebook" else "post",
                text=b.text(person.platform, rng.choice(HISTORY), person),
                history=True,
            )
    for person in people:
        _participant(b, person, answers)
    _conversations(b, people, answers)
    steps = sorted(b.steps, key=lambda s: (s.at, s.id))
    return Script(seed=seed, people=tuple(people), steps=tuple(steps))


def _answer(b: _Builder, person: Person, n: int, at: float, body: str, **extra: object) -> Step:
    spelling = b.rng.choice(SPELLINGS).format(n=n)
    platform = person.platform
    reply_to: str | None = None
    if platform == "facebook" or (platform == "bluesky" and b.rng.random() < 0.4):
        reply_to = f"Q{n}"
    return b.add(
        at=round(at, 3),
        platform=platform,
        author=person.key,
        kind="reply" if reply_to else "post",
        reply_to=reply_to,
        question=n,
        text=b.text(platform, f"{spelling} {body}", person),
        **extra,
    )


def _participant(b: _Builder, person: Person, answers: dict[str, list[Step]]) -> None:
    rng, platform, key = b.rng, person.platform, person.key
    host_post = "reminder" if platform == "facebook" else None
    if person.role == "greeter":
        b.add(
            at=-1.0,
            platform=platform,
            author=key,
            kind="post",
            text=b.text(platform, f"@{X_HOST} {GREETING_TEXT}", person),
            mentions_host=True,
        )
    elif person.role == "opt_out":
        b.add(
            at=1.0,
            platform=platform,
            author=key,
            kind="post",
            text=b.text(platform, f"@{BLUESKY_HOST} {OPT_OUT_TEXT}", person),
            category="request",
            mentions_host=True,
        )
    elif person.role == "spammer":
        for i in range(4):
            b.add(
                at=20.0 + 0.2 * i,
                platform=platform,
                author=key,
                kind="post",
                text=f"{SPAM_TEXT} #{HASHTAG}",
                category="spam",
            )
        return
    elif person.role == "abusive":
        b.add(
            at=33.0,
            platform=platform,
            author=key,
            kind="post",
            text=f"#{HASHTAG} {ABUSE_TEXT}",
            category="abuse",
        )
        return
    elif rng.random() < 0.3:
        hello = rng.choice(HELLOS_BACK if person.returning else HELLOS_NEW)
        b.add(
            at=round(rng.uniform(-1.6, -0.2), 3),
            platform=platform,
            author=key,
            kind="reply" if host_post else "post",
            reply_to=host_post,
            text=b.text(platform, hello, person),
        )
    wanted = [n for n in range(1, 5) if rng.random() < 0.8] or [rng.randint(1, 4)]
    if person.role == "crisis" and 1 not in wanted:
        wanted.insert(0, 1)
    for n in wanted:
        at = QUESTION_OFFSETS[n - 1] + rng.uniform(0.6, 8.0)
        if person.role == "crisis" and n == 1:
            step = b.add(
                at=7.0,
                platform=platform,
                author=key,
                kind="post",
                question=1,
                text=f"{CRISIS_TEXT} #{HASHTAG}",
                category="crisis",
            )
        else:
            step = _answer(b, person, n, at, rng.choice(ANSWERS[n]))
        answers[platform].append(step)
    if person.role == "deleter":
        doomed = _answer(b, person, 2, 17.0, "actually, never mind, deleting this")
        b.add(at=19.5, platform=platform, author=key, kind="delete", target=doomed.id)


def _conversations(b: _Builder, people: list[Person], answers: dict[str, list[Step]]) -> None:
    """Replies (two or three deep), quotes, and threads that go on after the hour."""
    rng = b.rng
    talkers = {
        p: [x for x in people if x.platform == p and x.role in ("ordinary", "greeter", "deleter")]
        for p in PLATFORMS
    }
    for platform in PLATFORMS:
        for answer in answers[platform]:
            others = [p for p in talkers[platform] if p.key != answer.author]
            if not others:
                continue
            chance = 0.9 if answer.category == "crisis" else 0.35
            if rng.random() < chance:
                late = rng.random() < 0.15
                at = (
                    LENGTH_MINUTES + rng.uniform(1, 15)
                    if late
                    else answer.at + rng.uniform(0.3, 4)
                )
                replier = rng.choice(others)
                body = (
                    "sending you so much strength, you matter here"
                    if answer.category == "crisis"
                    else rng.choice(REPLIES)
                )
                reply = b.add(
                    at=round(at, 3),
                    platform=platform,
                    author=replier.key,
                    kind="reply",
                    reply_to=answer.id,
                    text=b.text(platform, body, replier),
                )
                if answer.category == "ok" and rng.random() < 0.5:
                    author = next(p for p in people if p.key == answer.author)
                    back = b.add(
                        at=round(reply.at + rng.uniform(0.3, 3), 3),
                        platform=platform,
                        author=author.key,
                        kind="reply",
                        reply_to=reply.id,
                        text=b.text(platform, rng.choice(REPLIES), author),
                    )
                    if rng.random() < 0.4:
                        b.add(
                            at=round(back.at + rng.uniform(0.3, 3), 3),
                            platform=platform,
                            author=replier.key,
                            kind="reply",
                            reply_to=back.id,
                            text=b.text(platform, rng.choice(REPLIES), replier),
                        )
            if platform != "facebook" and answer.category == "ok" and rng.random() < 0.12:
                quoter = rng.choice(others)
                b.add(
                    at=round(answer.at + rng.uniform(0.5, 5), 3),
                    platform=platform,
                    author=quoter.key,
                    kind="quote",
                    quote=answer.id,
                    question=answer.question,
                    text=b.text(platform, rng.choice(QUOTES), quoter),
                )
