"""The safety step measured on labelled examples: crisis recall and false flags.

Files under data/ were written in rounds. ``triage_labelled``, ``triage_heldout``,
``triage_unseen``, ``triage_fresh`` and ``triage_fresh2`` were each written, measured, and then
used to improve the lexicon, so their figures are in-sample. ``triage_fresh3`` was written after
the last change and never used to change anything: its recall is the honest estimate for
wording the lexicon has not seen (each fresh set, when first measured, gave 30-35%).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from mhchat.facilitation.triage import Triage, Verdict, load_lexicon
from mhchat.facilitation.triage.classifier import TriageInput

DATA = Path(__file__).parent / "data"
TUNED = ("triage_labelled", "triage_heldout", "triage_unseen", "triage_fresh", "triage_fresh2")
FRESH = ("triage_fresh3",)


@dataclass(frozen=True)
class Figures:
    crisis: int
    found: int
    ordinary: int
    false_flags: int
    abuse: int
    abuse_found: int

    @property
    def recall(self) -> float:
        return self.found / self.crisis

    @property
    def false_flag_rate(self) -> float:
        return self.false_flags / self.ordinary


def measure(names: tuple[str, ...]) -> Figures:
    triage = Triage(load_lexicon())
    rows = [
        json.loads(line)
        for name in names
        for line in (DATA / f"{name}.jsonl").read_text("utf-8").splitlines()
        if line.strip()
    ]
    # One post at a time, as a chat delivers them (the spam step remembers what it saw).
    results = [triage.classify(row["text"]) for row in rows]
    crisis = [r for row, r in zip(rows, results, strict=True) if row["label"] == "crisis"]
    ordinary = [r for row, r in zip(rows, results, strict=True) if row["label"] == "ordinary"]
    abuse = [r for row, r in zip(rows, results, strict=True) if row["label"] == "abuse"]
    return Figures(
        crisis=len(crisis),
        found=sum(r.verdict is Verdict.CRISIS for r in crisis),
        ordinary=len(ordinary),
        false_flags=sum(r.verdict is not Verdict.OK for r in ordinary),
        abuse=len(abuse),
        abuse_found=sum(r.verdict is Verdict.ABUSE for r in abuse),
    )


def test_the_labelled_set_is_a_few_hundred_lines_in_several_languages() -> None:
    rows = [
        json.loads(line)
        for name in (*TUNED, *FRESH)
        for line in (DATA / f"{name}.jsonl").read_text("utf-8").splitlines()
    ]
    assert len(rows) >= 400
    assert {r["lang"] for r in rows} >= {"en", "es", "fr", "de", "pt", "it", "nl", "ja"}


def test_false_flags_on_ordinary_posts_under_five_percent_and_high_recall_in_sample(
    capsys: pytest.CaptureFixture[str],
) -> None:
    tuned = measure(TUNED)
    fresh = measure(FRESH)
    with capsys.disabled():
        print(
            f"\ntriage (tuning sets): crisis recall {tuned.found}/{tuned.crisis} ="
            f" {tuned.recall:.1%},"
            f" false flags {tuned.false_flags}/{tuned.ordinary} = {tuned.false_flag_rate:.1%},"
            f" abuse found {tuned.abuse_found}/{tuned.abuse}"
            f"\ntriage (fresh set, never tuned on): crisis recall {fresh.found}/{fresh.crisis} ="
            f" {fresh.recall:.1%}, false flags {fresh.false_flags}/{fresh.ordinary} ="
            f" {fresh.false_flag_rate:.1%}"
        )
    assert tuned.false_flag_rate < 0.05
    assert fresh.false_flag_rate < 0.05
    assert tuned.recall >= 0.95
    assert tuned.abuse_found == tuned.abuse
    # The honest figure is low: indirect wording ("I bought rope today") escapes a phrase list.
    # This floor only guards against a regression; a person must still read the chat.
    assert fresh.recall >= 0.25


def test_exclusions_only_cancel_the_match_they_cover() -> None:
    triage = Triage(load_lexicon())
    assert triage.classify("If you feel suicidal, call 988").verdict is Verdict.OK
    both = "If you feel suicidal, call 988. Honestly I want to die tonight"
    assert triage.classify(both).verdict is Verdict.CRISIS


def test_crisis_wins_over_abuse_and_a_crisis_post_is_never_called_spam() -> None:
    triage = Triage(load_lexicon())
    result = triage.classify("I want to fucking die, fuck everything")
    assert result.verdict is Verdict.CRISIS
    assert "crisis" in result.reason


def test_several_people_saying_the_same_thanks_is_not_spam_but_a_link_campaign_is() -> None:
    triage = Triage(load_lexicon())
    thanks = [
        TriageInput(text="Thank you for a lovely chat tonight everyone!", author=("x", f"u{i}"))
        for i in range(4)
    ]
    assert all(r.verdict is Verdict.OK for r in triage.classify_many(thanks))
    campaign = [
        TriageInput(
            text="Great tips for your wellbeing here https://spam.example", author=("x", f"s{i}")
        )
        for i in range(3)
    ]
    assert [r.verdict for r in triage.classify_many(campaign)] == [
        Verdict.OK,
        Verdict.OK,
        Verdict.SPAM,
    ]
    same_person = [
        TriageInput(text="Follow me for daily wellbeing quotes and more", author=("x", "p"))
    ] * 3
    assert triage.classify_many(same_person)[-1].verdict is Verdict.SPAM
