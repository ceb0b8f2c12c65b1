"""The crisis lexicon's and the spam check's cheaper paths give exactly what the plain code gave.

The references are kept here as they were first written: text folding with a generator over
every character, one substring test per phrase needle, sentence pairs tried with every risk
term, the spam check's text core built with ``startswith``; and, on fewer texts, the one
alternation of all phrases that the per-phrase search stands for. They are compared with the
lexicon's code on texts built from the lexicon's own words and phrases, pieces of them,
accents, other scripts, punctuation and odd whitespace.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import sys
import tomllib
import unicodedata
from collections import deque
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mhchat.facilitation.triage import lexicon as lexicon_module
from mhchat.facilitation.triage.classifier import CROWD, SpamTracker, TriageInput
from mhchat.facilitation.triage.lexicon import (
    CrisisLexicon,
    CrisisMatch,
    load_lexicon,
    normalise,
    parse_lexicon,
)

DATA = Path(__file__).parent / "data"

# -- the references --------------------------------------------------------------------------

_OLD_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "`": "'"})
_OLD_SPACES = re.compile(r"\s+")
_OLD_SENTENCES = re.compile(r"[.!?;\n]+")


def old_normalise(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.translate(_OLD_APOSTROPHES).casefold())
    folded = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return _OLD_SPACES.sub(" ", folded).strip()


def old_needle(phrase: str) -> str:
    return max((w for w in old_normalise(phrase).split(" ") if w != "*"), key=len, default="")


class Reference:
    """``CrisisLexicon.find`` as first written, on the same compiled patterns."""

    def __init__(self, lexicon: CrisisLexicon) -> None:
        self.lexicon = lexicon
        assert lexicon._phrases is not None
        self.phrases = lexicon._phrases
        self.needles = [old_needle(phrase) for _, phrase in self.phrases.names]

    def present(self, folded: str) -> list[int]:
        return [i for i, needle in enumerate(self.needles) if needle in folded]

    def _search(self, folded: str, pos: int, alternation: bool) -> tuple[int, int, int] | None:
        if alternation:
            m = self.phrases.pattern.search(folded, pos)
            if m is None:
                return None
            assert m.lastgroup is not None
            return m.start(), m.end(), int(m.lastgroup[1:])
        best: tuple[int, int, int] | None = None
        for index in self.present(folded):
            m = self.phrases.singles[index].search(folded, pos)
            if m is not None and (best is None or m.start() < best[0]):
                best = (m.start(), m.end(), index)
        return best

    def find(self, text: str, *, alternation: bool = False) -> CrisisMatch | None:
        folded = old_normalise(text)
        return self._find_phrase(folded, alternation) or self._find_pair(folded)

    def _find_pair(self, folded: str) -> CrisisMatch | None:
        for sentence in _OLD_SENTENCES.split(folded):
            for pairs in self.lexicon._pairs:
                term = pairs.find(sentence)
                if term is not None:
                    return CrisisMatch(language=pairs.language, phrase=f"self + {term}")
        return None

    def _find_phrase(self, folded: str, alternation: bool) -> CrisisMatch | None:
        covered: list[tuple[int, int]] | None = None
        pos = 0
        while pos <= len(folded):
            found = self._search(folded, pos, alternation)
            if found is None:
                return None
            start, end, index = found
            if covered is None:
                covered = []
                if self.lexicon._excludes is not None:
                    covered = [m.span() for m in self.lexicon._excludes.pattern.finditer(folded)]
            if not any(s <= start and end <= e for s, e in covered):
                lang, phrase = self.phrases.names[index]
                return CrisisMatch(language=lang, phrase=phrase)
            pos = start + 1
        return None


class OldSpamTracker(SpamTracker):
    """``SpamTracker.check`` as first written."""

    def check(self, item: TriageInput, links: int) -> str | None:
        folded = old_normalise(item.text)
        core = " ".join(w for w in folded.split() if not w.startswith(("#", "@")))
        reason: str | None = None
        if len(core) >= 25:
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


# -- generated texts -------------------------------------------------------------------------

_ACCENTED = {
    "a": "àáâãäå",
    "e": "èéêë",
    "i": "ìíîï",
    "o": "òóôõöø",
    "u": "ùúûü",
    "n": "ñ",
    "c": "ç",
    "s": "ß",
}
_SEPARATORS = [" ", " ", " ", "  ", "\n", "\t", "\u00a0", "\u3000", ". ", "! ", "? ", "; ", ", "]
_GLUE = ["", "-", "'", "\u2019", "`", "\u02bc", "_", "/", "#", "@", "(", ")", "…", "."]
_OTHER = [
    "the", "and", "tonight", "thanks", "hoy", "très", "ça", "über", "möchte", "naïve",
    "私は", "今日", "もう無理", "死", "自殺", "リス", "カ", "😢", "💙", "👍🏽", "http://x.example/a",
    "#mhchat", "@someone", "A1", "Q2", "12345", "ŉ", "ǆ", "ﬁ", "Ⅻ", "①", "İ", "Σσς",
    "\u212a", "\uff46\uff55\uff4c\uff4c", "e\u0301", "a\u0308\u0323", "\u0345", "o\u0338",
    "x\u200dy", "\u00ad",
]  # fmt: skip


def _vocabulary(doc: dict[str, Any]) -> tuple[list[str], list[str]]:
    """The phrases and the words of a lexicon document."""
    phrases: list[str] = []
    for lang, table in doc.items():
        if lang == "meta":
            continue
        phrases += table.get("phrases", []) + table.get("exclude", [])
        pairs = table.get("pairs", {})
        for kind in ("self", "risk", "unless"):
            phrases += pairs.get(kind, [])
    words = sorted({w for p in phrases for w in p.split()})
    return phrases, words


def _vary(word: str, rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.15 and len(word) > 2:
        # A piece of a word: a prefix, a suffix or a middle.
        i = rng.randrange(len(word))
        j = rng.randrange(i + 1, len(word) + 1)
        word = word[i:j]
    elif roll < 0.25:
        word = "".join(
            rng.choice(_ACCENTED[ch]) if ch in _ACCENTED and rng.random() < 0.4 else ch
            for ch in word
        )
    elif roll < 0.32:
        word = word.upper()
    elif roll < 0.36:
        word = word.replace("'", rng.choice(["\u2019", "\u2018", "`", "\u02bc"]))
    elif roll < 0.40:
        word = unicodedata.normalize(rng.choice(["NFD", "NFKD"]), word)
    return word


def _phrase(phrase: str, words: list[str], rng: random.Random) -> str:
    out: list[str] = []
    for w in phrase.split():
        if w == "*":
            out += rng.sample(words, rng.randrange(5))
        else:
            out.append(w)
    return rng.choice(_SEPARATORS[:4]).join(out)


def generated_texts(doc: dict[str, Any], count: int, seed: int) -> list[str]:
    phrases, words = _vocabulary(doc)
    rng = random.Random(seed)
    texts: list[str] = []
    for _ in range(count):
        parts: list[str] = []
        for _ in range(rng.randrange(1, 14)):
            roll = rng.random()
            if roll < 0.2:
                part = _phrase(rng.choice(phrases), words, rng)
            elif roll < 0.7:
                part = rng.choice(words)
            else:
                part = rng.choice(_OTHER)
            part = _vary(part, rng)
            if rng.random() < 0.15:
                part += rng.choice(_GLUE) + _vary(rng.choice(words), rng)
            parts.append(part)
            parts.append(rng.choice(_SEPARATORS) if rng.random() < 0.85 else rng.choice(_GLUE))
        texts.append("".join(parts[:-1]))
    return texts


def recorded_texts() -> list[str]:
    texts = []
    for path in sorted(DATA.glob("*.jsonl")):
        texts += [json.loads(line)["text"] for line in path.read_text("utf-8").splitlines()]
    return texts


def packaged_doc() -> dict[str, Any]:
    path = Path(lexicon_module.__file__).parent.parent / "data" / "crisis_lexicon.toml"
    return tomllib.loads(path.read_text("utf-8"))


ODD_DOC: dict[str, Any] = {
    "meta": {"reviewed": date(2026, 11, 20)},
    # Needles that are short, start or end with a quote or hyphen, or are not words at all.
    "xx": {
        "phrases": [
            "n'en * plus", "'tis over", "it's -over", "x-ray me", "ab cd", "a", "* ok *",
            "self-harm", "don't", "go!", "…", "(", "straße", "Ärger", "fini!",
        ],
        "exclude": ["ab cd ef", "not x-ray me", "'tis", "x"],
        "pairs": {
            "self": ["i", "me"],
            "risk": ["ab", "x-ray", "don't go", "it", "'t", "die * now"],
            "unless": ["cd", "when"],
        },
    },
    "yy": {
        "boundaries": False,
        "phrases": ["死にたい", "消え", "ab"],
        "pairs": {"self": ["私"], "risk": ["死", "無理"]},
    },
}  # fmt: skip


PACKAGED = load_lexicon()

# -- normalise -------------------------------------------------------------------------------


def test_normalise_folds_every_code_point_as_before() -> None:
    step = 97  # not a power of two: the chunks straddle the Unicode blocks differently
    for start in range(0, sys.maxunicode + 1, step):
        chunk = "".join(map(chr, range(start, min(start + step, sys.maxunicode + 1))))
        assert normalise.__wrapped__(chunk) == old_normalise(chunk), hex(start)
        spaced = " ".join(chunk)
        assert normalise.__wrapped__(spaced) == old_normalise(spaced), hex(start)


def test_normalise_folds_generated_and_recorded_texts_as_before() -> None:
    texts = generated_texts(packaged_doc(), 5000, seed=1) + recorded_texts()
    for text in texts:
        assert normalise.__wrapped__(text) == old_normalise(text), text


@settings(max_examples=2000, deadline=None)
@given(text=st.text())
def test_normalise_folds_any_text_as_before(text: str) -> None:
    assert normalise.__wrapped__(text) == old_normalise(text)


# -- the needles -----------------------------------------------------------------------------


def _all_needles(lexicon: CrisisLexicon) -> set[str]:
    needles: set[str] = set()
    for compiled in (lexicon._phrases, lexicon._excludes):
        if compiled is not None:
            needles.update(old_needle(phrase) for _, phrase in compiled.names)
    for doc_pairs in lexicon._pairs:
        needles.update(doc_pairs.risk_literals.needles)
    return needles


@pytest.mark.parametrize("doc", [packaged_doc(), ODD_DOC], ids=["packaged", "odd"])
def test_needles_found_are_the_ones_a_test_of_each_finds(
    doc: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    lexicon = parse_lexicon(doc, source="test")
    reference = Reference(lexicon)
    assert lexicon._phrases is not None
    assert lexicon._phrases.literals.needles == tuple(reference.needles)
    needles = _all_needles(lexicon)
    texts = generated_texts(doc, 8000, seed=2) + recorded_texts()
    for keep in (lexicon_module._NeedleIndex._WORDS_KEPT, 7):
        # A small memory of runs: the index starts afresh often, and must not care.
        monkeypatch.setattr(lexicon_module._NeedleIndex, "_WORDS_KEPT", keep)
        # Each text also once more with a few words added, which shares words with the text
        # before it: an index that starts afresh in between must still find their needles.
        for text in [v for t in texts for v in (t, f"{t} so it goes")]:
            folded = old_normalise(text)
            present = lexicon._needles.present(folded)
            assert present == {n for n in needles if n in folded}, folded
            assert [
                i for i, needle in enumerate(reference.needles) if needle in present
            ] == reference.present(folded)


def test_the_needle_index_starting_afresh_forgets_nothing_a_text_needs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(lexicon_module._NeedleIndex, "_WORDS_KEPT", 3)
    index = lexicon_module._NeedleIndex(["suicidal", "overdose"])
    assert index.present("i am not suicidal today") == {"suicidal"}
    # Too many new words: the index starts afresh, and still knows about "suicidal".
    assert index.present("suicidal one two three") == {"suicidal"}
    assert index.present("suicidal overdose") == {"suicidal", "overdose"}


def test_the_needle_index_takes_any_needle(monkeypatch: pytest.MonkeyPatch) -> None:
    needles = [
        "abc def", "ab", "a", "", " x", "x ", "don't", "was", "wasn't", "n'en", "-x-", "…",
        "\u3000ab", "e\u0301t", "死にたい", "死", "aaa", "aaaa",
    ]  # fmt: skip
    texts = generated_texts(packaged_doc(), 3000, seed=6)
    texts += [f"{a}{b}" for a in needles for b in needles] + [" ".join(needles)]
    for keep in (lexicon_module._NeedleIndex._WORDS_KEPT, 5):
        monkeypatch.setattr(lexicon_module._NeedleIndex, "_WORDS_KEPT", keep)
        index = lexicon_module._NeedleIndex(needles)
        for text in texts:
            for variant in (text, text.casefold(), f"{text} aaab abc defg"):
                assert index.present(variant) == {n for n in needles if n in variant}


@settings(max_examples=300, deadline=None)
@given(
    text=st.lists(
        st.one_of(
            st.sampled_from(_vocabulary(packaged_doc())[1] + _OTHER + _GLUE + _SEPARATORS),
            st.text(max_size=4),
        ),
        max_size=20,
    ).map("".join)
)
def test_needles_found_in_any_text_are_the_ones_a_test_of_each_finds(text: str) -> None:
    folded = normalise(text)
    needles = _all_needles(PACKAGED)
    assert PACKAGED._needles.present(folded) == {n for n in needles if n in folded}


# -- find ------------------------------------------------------------------------------------


@pytest.mark.parametrize("doc", [packaged_doc(), ODD_DOC], ids=["packaged", "odd"])
def test_find_gives_what_it_gave_before(doc: dict[str, Any]) -> None:
    lexicon = parse_lexicon(doc, source="test")
    reference = Reference(lexicon)
    texts = generated_texts(doc, 8000, seed=3) + recorded_texts()
    found = 0
    for text in texts:
        want = reference.find(text)
        assert lexicon.find(text) == want, text
        found += want is not None
    # The texts reach both outcomes, often.
    assert len(texts) * 0.1 < found < len(texts) * 0.9


@pytest.mark.parametrize("doc", [packaged_doc(), ODD_DOC], ids=["packaged", "odd"])
def test_find_gives_what_the_one_alternation_gives(doc: dict[str, Any]) -> None:
    lexicon = parse_lexicon(doc, source="test")
    reference = Reference(lexicon)
    for text in generated_texts(doc, 400, seed=4):
        assert lexicon.find(text) == reference.find(text, alternation=True), text


def test_the_pairs_and_the_exclusions_are_still_reached() -> None:
    """The shortcuts skip work only where nothing can match; where something can, it does."""
    lexicon = PACKAGED
    assert lexicon.find("I keep thinking about the knife tonight") == CrisisMatch(
        language="en", phrase="self + knife"
    )
    assert lexicon.find("if you feel suicidal, please call someone") is None
    assert lexicon.find("if you feel suicidal, call. I am suicidal") == CrisisMatch(
        language="en", phrase="suicidal"
    )
    assert lexicon.find("A1 sleep has been rough but today was kinder #MHChat") is None


# -- the spam check --------------------------------------------------------------------------


def _spam_items(count: int, seed: int) -> list[TriageInput]:
    rng = random.Random(seed)
    bases = [
        "Great tips for your wellbeing here",
        "thank you for a lovely chat tonight everyone",
        "A1 Sleep has been rough but today was kinder",
        "short one",
        "Ça va très bien, merci à tous pour ce soir",
    ]
    tags = ["#MHChat", "#mhchat", "@host", "#", "@", "#a#b", "a#b", "email@x.example", "\uff03x"]
    at = datetime(2026, 11, 25, 20, 0, tzinfo=UTC)
    items: list[TriageInput] = []
    for i in range(count):
        words = rng.choice(bases).split()
        for _ in range(rng.randrange(4)):
            words.insert(rng.randrange(len(words) + 1), rng.choice(tags))
        text = "".join(w + rng.choice(_SEPARATORS[:8]) for w in words)
        if rng.random() < 0.3:
            text += " https://spam.example/" + str(rng.randrange(3))
        author = None if rng.random() < 0.05 else (rng.choice("xbf"), f"a{rng.randrange(12)}")
        items.append(TriageInput(text=text, author=author, at=at + timedelta(seconds=7 * i)))
    return items


def _state(tracker: SpamTracker) -> tuple[object, ...]:
    return (
        list(tracker._counts.items()),
        list(tracker._texts.items()),
        [(k, list(v)) for k, v in tracker._link_times.items()],
    )


@pytest.mark.parametrize("capacity", [50_000, 5])
def test_the_spam_check_gives_what_it_gave_before(capacity: int) -> None:
    new = SpamTracker(repeat_limit=3, capacity=capacity)
    old = OldSpamTracker(repeat_limit=3, capacity=capacity)
    reasons = 0
    for i, item in enumerate(_spam_items(5000, seed=5)):
        links = item.text.count("http")
        want = old.check(item, links)
        assert new.check(item, links) == want, item.text
        reasons += want is not None
        if i % 100 == 0:
            # The digests of the text cores are the keys: the same keys, the same cores.
            assert _state(new) == _state(old)
    assert _state(new) == _state(old)
    assert 10 < reasons < 4500
