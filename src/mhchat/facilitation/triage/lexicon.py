"""The crisis lexicon: reviewed phrases per language, compiled into one pattern per kind.

The phrases live in a TOML data file (``data/crisis_lexicon.toml`` by default, or the host's
own file); this module only loads and matches them.
"""

from __future__ import annotations

import functools
import re
import tomllib
import unicodedata
from collections.abc import Iterable, Mapping, Set
from dataclasses import dataclass, field
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Any

from mhchat.errors import ConfigError
from mhchat.textfiles import read_config_text

_APOSTROPHES = ("\u2019", "\u2018", "\u02bc", "`")
_ASCII = frozenset(map(chr, range(128)))


# A batch of posts is folded three times, for triage, the spam check and the opt-out detector,
# each pass over the whole batch: with fewer entries than posts in a batch (the bus hands over
# up to 2,000 at a time), the least recently used entry is always the next one needed, and
# every lookup after the first pass misses.
@functools.lru_cache(maxsize=4096)
def normalise(text: str) -> str:
    """Lower-case, fold accents and apostrophes, collapse spaces: the form phrases match.

    Cached: triage, the spam check and the opt-out detector each fold the same post."""
    # ``str.translate`` with a mapping costs a failed lookup per character, and these
    # apostrophes are rarely there at all. Replaced before case-folding, which can make a
    # U+02BC (from "ŉ") that must stay as it is.
    for apostrophe in _APOSTROPHES:
        if apostrophe in text:
            text = text.replace(apostrophe, "'")
    folded = text.casefold()
    if not folded.isascii():
        # ASCII is already in NFKD and has no combining marks. Otherwise only the text's
        # distinct non-ASCII characters are asked whether they are combining marks.
        folded = unicodedata.normalize("NFKD", folded)
        for mark in set(folded).difference(_ASCII):
            if unicodedata.combining(mark):
                folded = folded.replace(mark, "")
    # ``str.split`` and ``re``'s ``\s`` agree on what whitespace is (``str.isspace``).
    return " ".join(folded.split())


def _words(phrase: str) -> list[str]:
    return normalise(phrase).split(" ")


def _phrase_pattern(phrase: str, *, boundaries: bool) -> str:
    words = _words(phrase)
    parts = [r"(?:\S+\s+){0,3}?" if w == "*" else re.escape(w) + r"\s+" for w in words]
    body = "".join(parts)
    body = body[: -len(r"\s+")] if body.endswith(r"\s+") else body
    return rf"(?<!\w){body}(?!\w)" if boundaries else body


@dataclass(frozen=True, slots=True)
class CrisisMatch:
    language: str
    phrase: str


_Memory = tuple[set[str], dict[str, tuple[str, ...]], set[str]]
"""Words whose needles are known; the needles starting within each word that has some; those
words again, as a set (an intersection of two sets only goes over the smaller one)."""


class _NeedleIndex:
    """Which of a fixed set of strings (needles) occur in a text, as ``needle in text`` says,
    without testing every needle against every text.

    A needle can only occur where its first three characters do; with no whitespace among
    them, they are within one of the text's words (as ``str.split`` cuts them). Only the
    needles starting with one of the three-character substrings of the text's words are
    tested; the few others (shorter, or with whitespace early on) always are. What a word can
    hold is remembered: a chat's words repeat, and most hold no needle, which leaves set
    operations for a typical post.
    """

    __slots__ = ("_always", "_by_prefix", "_memory")

    _WORDS_KEPT = 20_000
    """Words remembered before starting afresh (a few MB at most)."""

    def __init__(self, needles: Iterable[str]) -> None:
        by_prefix: dict[str, list[str]] = {}
        always: list[str] = []
        for needle in dict.fromkeys(needles):
            prefix = needle[:3]
            if len(prefix) == 3 and prefix.split() == [prefix]:
                by_prefix.setdefault(prefix, []).append(needle)
            else:
                always.append(needle)
        self._always = tuple(always)
        self._by_prefix = {prefix: tuple(found) for prefix, found in by_prefix.items()}
        self._memory: _Memory = (set(), {}, set())

    def present(self, text: str) -> set[str]:
        """The needles that occur in ``text``."""
        present = {needle for needle in self._always if needle in text}
        words = set(text.split())
        seen, holding, holders = self._memory
        new = words - seen
        if new:
            if len(seen) + len(new) > self._WORDS_KEPT:
                # A new memory rather than clearing this one: a caller in another thread
                # keeps using a whole one.
                seen, holding, holders = self._memory = (set(), {}, set())
                new = words
            for word in new:
                found: set[str] = set()
                for i in range(len(word) - 2):
                    found.update(self._by_prefix.get(word[i : i + 3], ()))
                if found:
                    holding[word] = tuple(found)
                    holders.add(word)
                seen.add(word)
        for word in words & holders:
            # The needle's first three characters are in the word; the rest may not be.
            present.update(needle for needle in holding[word] if needle in text)
        return present


@dataclass(frozen=True, slots=True)
class _Literals:
    """The literal words of each of a list of alternatives (phrases or terms).

    An alternative can only match a text that contains every one of its literal words. The
    longest (its needle) is looked up in a ``_NeedleIndex``; the others are then tested.
    """

    needles: tuple[str, ...]
    """Per alternative, its longest literal word (the first of the longest)."""
    others: tuple[tuple[str, ...], ...]
    """Per alternative, its other literal words."""
    by_needle: Mapping[str, tuple[int, ...]] = field(compare=False)

    @classmethod
    def of(cls, alternatives: Iterable[str]) -> _Literals:
        needles: list[str] = []
        others: list[tuple[str, ...]] = []
        by_needle: dict[str, list[int]] = {}
        for i, alternative in enumerate(alternatives):
            words = [w for w in _words(alternative) if w != "*"]
            needle = max(words, key=len, default="")
            needles.append(needle)
            others.append(tuple(w for w in dict.fromkeys(words) if w != needle))
            by_needle.setdefault(needle, []).append(i)
        return cls(
            tuple(needles),
            tuple(others),
            {needle: tuple(indices) for needle, indices in by_needle.items()},
        )

    def candidates(self, text: str, present: Set[str]) -> list[int]:
        """The alternatives, in order, whose literal words all occur in ``text``, given the
        needles ``present`` in it (as ``_NeedleIndex.present`` found them)."""
        found: list[int] = []
        for needle in present:
            found.extend(self.by_needle.get(needle, ()))
        if len(found) > 1:
            found.sort()
        others = self.others
        return [i for i in found if all(word in text for word in others[i])]


@dataclass(frozen=True, slots=True)
class _Compiled:
    pattern: re.Pattern[str]
    names: tuple[tuple[str, str], ...]
    """(language, phrase) of each named group, in group order."""
    singles: tuple[re.Pattern[str], ...]
    """One pattern per phrase, in group order."""
    literals: _Literals

    def search(self, text: str, pos: int, candidates: list[int]) -> tuple[int, int, int] | None:
        """(start, end, phrase index) of the match ``pattern.search(text, pos)`` finds.

        Python's ``re`` tries every alternative at every position (no trie), which measured
        about 2.5 ms per post for the packaged lexicon. Only the ``candidates`` (from
        ``literals.candidates``) can match at all; the leftmost of their matches, ties to
        the earliest phrase, is what the alternation would have returned.
        """
        best: tuple[int, int, int] | None = None
        for index in candidates:
            m = self.singles[index].search(text, pos)
            if m is not None and (best is None or m.start() < best[0]):
                best = (m.start(), m.end(), index)
        return best


def _compile(entries: list[tuple[str, str, bool]]) -> _Compiled | None:
    if not entries:
        return None
    patterns = [_phrase_pattern(p, boundaries=b) for _, p, b in entries]
    groups = [f"(?P<p{i}>{pattern})" for i, pattern in enumerate(patterns)]
    return _Compiled(
        re.compile("|".join(groups)),
        tuple((lang, p) for lang, p, _ in entries),
        tuple(re.compile(pattern) for pattern in patterns),
        _Literals.of(p for _, p, _ in entries),
    )


_SENTENCES = re.compile(r"[.!?;\n]+")


@dataclass(frozen=True, slots=True)
class _Pairs:
    """A sentence that speaks of oneself and of a risk, with no "unless" context, matches."""

    language: str
    self_terms: re.Pattern[str]
    risk: re.Pattern[str]
    unless: re.Pattern[str] | None
    risk_literals: _Literals
    """A sentence is part of the post: no sentence can match a risk term whose words are
    not all in the post."""

    def find(self, sentence: str) -> str | None:
        risk = self.risk.search(sentence)
        if risk is None or self.self_terms.search(sentence) is None:
            return None
        if self.unless is not None and self.unless.search(sentence):
            return None
        return risk[0]


def _alternation(terms: list[str], *, boundaries: bool) -> re.Pattern[str]:
    # The word-boundary tests go around the whole alternation, not into each term: the same
    # matches, but ``re`` no longer re-runs a lookbehind per term at every position (5x faster).
    body = "|".join(_phrase_pattern(t, boundaries=False) for t in terms)
    return re.compile(rf"(?<!\w)(?:{body})(?!\w)" if boundaries else body)


@dataclass(frozen=True, slots=True, kw_only=True)
class CrisisLexicon:
    reviewed: date
    review_every_days: int
    languages: tuple[str, ...]
    notes: str
    phrase_count: int
    source: str
    _phrases: _Compiled | None
    _excludes: _Compiled | None
    _pairs: tuple[_Pairs, ...] = ()
    _needles: _NeedleIndex = field(compare=False)
    """The needles of the phrases, the exclusions and the risk terms."""

    def find(self, text: str) -> CrisisMatch | None:
        """The first crisis phrase in ``text`` not covered by an exclusion, if any; else the
        first sentence that pairs a self term with a risk term."""
        folded = normalise(text)
        present = self._needles.present(folded)
        return self._find_phrase(folded, present) or self._find_pair(folded, present)

    def _find_pair(self, folded: str, present: Set[str]) -> CrisisMatch | None:
        pairs_list = [p for p in self._pairs if p.risk_literals.candidates(folded, present)]
        if not pairs_list:
            return None
        for sentence in _SENTENCES.split(folded):
            for pairs in pairs_list:
                term = pairs.find(sentence)
                if term is not None:
                    return CrisisMatch(language=pairs.language, phrase=f"self + {term}")
        return None

    def _find_phrase(self, folded: str, present: Set[str]) -> CrisisMatch | None:
        if self._phrases is None:
            return None
        candidates = self._phrases.literals.candidates(folded, present)
        if not candidates:
            return None
        covered: list[tuple[int, int]] | None = None
        # Overlapping phrases ("want to die" inside a longer one) are found by restarting the
        # scan one character after each excluded hit.
        pos = 0
        while pos <= len(folded):
            found = self._phrases.search(folded, pos, candidates)
            if found is None:
                return None
            start, end, index = found
            if covered is None:
                # Exclusions only matter once a phrase matched (rarely): look for them then,
                # and only if one could match at all.
                covered = []
                excludes = self._excludes
                if excludes is not None and excludes.literals.candidates(folded, present):
                    covered = [m.span() for m in excludes.pattern.finditer(folded)]
            if not any(s <= start and end <= e for s, e in covered):
                lang, phrase = self._phrases.names[index]
                return CrisisMatch(language=lang, phrase=phrase)
            pos = start + 1
        return None

    def review_due(self, today: date) -> bool:
        return (today - self.reviewed).days > self.review_every_days


def parse_lexicon(doc: Mapping[str, Any], *, source: str) -> CrisisLexicon:
    problems: list[str] = []
    meta = doc.get("meta", {})
    reviewed = meta.get("reviewed") if isinstance(meta, Mapping) else None
    if not isinstance(reviewed, date):
        problems.append(
            f"{source}: [meta] reviewed must be the date of the last review (2026-11-20)."
        )
        reviewed = date(1970, 1, 1)
    phrases: list[tuple[str, str, bool]] = []
    excludes: list[tuple[str, str, bool]] = []
    languages: list[str] = []
    pairs: list[_Pairs] = []
    for lang, table in doc.items():
        if lang == "meta":
            continue
        if not isinstance(table, Mapping) or not isinstance(table.get("phrases"), list):
            problems.append(f"{source}: [{lang}] must have a phrases list.")
            continue
        boundaries = bool(table.get("boundaries", True))
        languages.append(str(lang))
        phrases.extend((str(lang), str(p), boundaries) for p in table["phrases"] if str(p).strip())
        excludes.extend(
            (str(lang), str(p), boundaries) for p in table.get("exclude", []) if str(p).strip()
        )
        pair_t = table.get("pairs")
        if isinstance(pair_t, Mapping):
            if not pair_t.get("self") or not pair_t.get("risk"):
                problems.append(f"{source}: [{lang}.pairs] needs both self and risk lists.")
                continue
            unless = [str(u) for u in pair_t.get("unless", [])]
            risk = [str(t) for t in pair_t["risk"]]
            pairs.append(
                _Pairs(
                    language=str(lang),
                    self_terms=_alternation(
                        [str(t) for t in pair_t["self"]], boundaries=boundaries
                    ),
                    risk=_alternation(risk, boundaries=boundaries),
                    unless=_alternation(unless, boundaries=boundaries) if unless else None,
                    risk_literals=_Literals.of(risk),
                )
            )
    if problems:
        raise ConfigError(problems)
    compiled_phrases, compiled_excludes = _compile(phrases), _compile(excludes)
    needles = [p.risk_literals.needles for p in pairs]
    needles += [c.literals.needles for c in (compiled_phrases, compiled_excludes) if c]
    return CrisisLexicon(
        reviewed=reviewed,
        review_every_days=int(meta.get("review_every_days", 180))
        if isinstance(meta, Mapping)
        else 180,
        languages=tuple(languages),
        notes=str(meta.get("notes", "")) if isinstance(meta, Mapping) else "",
        phrase_count=len(phrases),
        source=source,
        _phrases=compiled_phrases,
        _excludes=compiled_excludes,
        _pairs=tuple(pairs),
        _needles=_NeedleIndex(needle for group in needles for needle in group),
    )


def load_lexicon(path: Path | None = None) -> CrisisLexicon:
    """The host's lexicon file, or the packaged one."""
    if path is None:
        text = (
            resources.files("mhchat.facilitation.data")
            .joinpath("crisis_lexicon.toml")
            .read_text("utf-8")
        )
        source = "<packaged crisis lexicon>"
    else:
        text, source = read_config_text(path, "The crisis lexicon"), str(path)
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{source} is not valid TOML: {exc}."]) from None
    return parse_lexicon(doc, source=source)
