"""The classifier: crisis language first, then abuse, then spam; one verdict per post.

Crisis takes precedence: a post in crisis that also swears is a crisis, never "abuse".
Abuse uses ``alt-profanity-check`` (a linear model trained on English); spam uses plain
heuristics (too many links, a burst of link posts, the same text again and again).
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from mhchat.facilitation.triage.lexicon import CrisisLexicon, normalise

ProbabilityModel = Callable[[list[str]], Sequence[float]]

CROWD = 6
"""Accounts posting the same words (without a link) before it counts as a copy campaign."""


class Verdict(StrEnum):
    OK = "ok"
    CRISIS = "crisis"
    ABUSE = "abuse"
    SPAM = "spam"


@dataclass(frozen=True, slots=True, kw_only=True)
class TriageInput:
    text: str
    author: tuple[str, str] | None = None
    links: int | None = None
    """Links the platform found; None counts ``http`` in the text."""
    at: datetime | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class TriageResult:
    verdict: Verdict
    reason: str
    score: float = 0.0

    @property
    def amplifiable(self) -> bool:
        return self.verdict is Verdict.OK


def profanity_model() -> ProbabilityModel:
    """The ``profanity_check`` model, scored in pure Python from its own weights (built on first
    use: importing it loads the fitted model). Same probabilities as ``predict_prob``, without
    scikit-learn's fixed cost of several milliseconds per call, which dominated small batches."""
    from mhchat.facilitation.triage.abuse_model import AbuseModel  # noqa: PLC0415 - loads a model

    return AbuseModel()


class SpamTracker:
    """Remembers recent texts and link posts per author (bounded), for the spam heuristics."""

    def __init__(
        self,
        *,
        repeat_limit: int,
        burst_links: int = 3,
        burst_window: timedelta = timedelta(minutes=10),
        capacity: int = 50_000,
    ) -> None:
        self.repeat_limit = repeat_limit
        self.burst_links = burst_links
        self.burst_window = burst_window
        self.capacity = capacity
        self._texts: OrderedDict[bytes, set[tuple[str, str] | None]] = OrderedDict()
        self._counts: OrderedDict[tuple[bytes, tuple[str, str] | None], int] = OrderedDict()
        self._link_times: OrderedDict[tuple[str, str], deque[datetime]] = OrderedDict()

    def _remember(self, store: OrderedDict[Any, Any], key: object) -> None:
        # Least recently seen entries go first: memory stays bounded in a long chat.
        store.move_to_end(key)
        while len(store) > self.capacity:
            store.popitem(last=False)

    def check(self, item: TriageInput, links: int) -> str | None:
        folded = normalise(item.text)
        # Short texts ("A1 good thanks #mhchat") repeat innocently; only longer ones count.
        # A list and a first-character test: half the cost of a generator calling startswith.
        core = " ".join([w for w in folded.split() if w[0] not in "#@"])
        reason: str | None = None
        if len(core) >= 25:
            # Per platform: one person cross-posting to X, Bluesky and Facebook is not spam.
            platform = item.author[0] if item.author else ""
            digest = hashlib.blake2b(f"{platform}\x00{core}".encode(), digest_size=12).digest()
            count = self._counts.get((digest, item.author), 0) + 1
            self._counts[(digest, item.author)] = count
            self._remember(self._counts, (digest, item.author))
            authors = self._texts.setdefault(digest, set())
            authors.add(item.author)
            self._remember(self._texts, digest)
            if count >= self.repeat_limit:
                reason = f"the same text posted {count} times by one account"
            elif item.author is not None and len(authors) >= (
                self.repeat_limit if links else max(self.repeat_limit, CROWD)
            ):
                # Several people may well write "thank you for a lovely chat tonight!"; the
                # same words with a link from several accounts is a campaign.
                reason = f"the same text posted by {len(authors)} accounts"
        if links and item.author is not None and item.at is not None and reason is None:
            times = self._link_times.setdefault(item.author, deque())
            times.append(item.at)
            while times and item.at - times[0] > self.burst_window:
                times.popleft()
            self._remember(self._link_times, item.author)
            if len(times) >= self.burst_links:
                minutes = int(self.burst_window.total_seconds() // 60)
                reason = f"{len(times)} posts with links from one account within {minutes} minutes"
        return reason


class Triage:
    """Classifies posts in batches (the abuse model is much cheaper on a list)."""

    def __init__(
        self,
        lexicon: CrisisLexicon,
        *,
        abuse_threshold: float = 0.9,
        max_links: int = 3,
        repeat_limit: int = 3,
        model: ProbabilityModel | None = None,
    ) -> None:
        self.lexicon = lexicon
        self.abuse_threshold = abuse_threshold
        self.max_links = max_links
        self.spam = SpamTracker(repeat_limit=repeat_limit)
        self._model = model

    @property
    def model(self) -> ProbabilityModel:
        if self._model is None:
            self._model = profanity_model()
        return self._model

    def classify(self, text: str) -> TriageResult:
        return self.classify_many([TriageInput(text=text)])[0]

    def classify_many(self, items: Sequence[TriageInput]) -> list[TriageResult]:
        results: list[TriageResult | None] = [None] * len(items)
        pending: list[int] = []
        for i, item in enumerate(items):
            found = self.lexicon.find(item.text)
            if found is not None:
                results[i] = TriageResult(
                    verdict=Verdict.CRISIS,
                    reason=(
                        f'possible crisis language ({found.language}: "{found.phrase}"):'
                        " a person should look now"
                    ),
                    score=1.0,
                )
            else:
                pending.append(i)
        scores = self.model([items[i].text for i in pending]) if pending else []
        for i, score in zip(pending, scores, strict=True):
            item = items[i]
            links = item.links if item.links is not None else item.text.count("http")
            spam = self.spam.check(item, links)
            if score >= self.abuse_threshold:
                results[i] = TriageResult(
                    verdict=Verdict.ABUSE,
                    reason=(
                        f"abusive language (profanity model {score:.2f}"
                        f" >= {self.abuse_threshold:.2f})"
                    ),
                    score=score,
                )
            elif links > self.max_links:
                results[i] = TriageResult(
                    verdict=Verdict.SPAM,
                    reason=f"{links} links in one post (more than {self.max_links})",
                    score=1.0,
                )
            elif spam is not None:
                results[i] = TriageResult(verdict=Verdict.SPAM, reason=spam, score=1.0)
            else:
                results[i] = TriageResult(
                    verdict=Verdict.OK, reason="nothing of concern found", score=score
                )
        return [r for r in results if r is not None]
