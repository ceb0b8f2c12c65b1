"""The crisis lexicon: reviewed phrases per language, compiled into one pattern per kind.

The phrases live in a TOML data file (``data/crisis_lexicon.toml`` by default, or the host's
own file); this module only loads and matches them.
"""

from __future__ import annotations

import functools
import re
import tomllib
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Any

from mhchat.errors import ConfigError

_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "`": "'"})
_SPACES = re.compile(r"\s+")


@functools.lru_cache(maxsize=1024)
def normalise(text: str) -> str:
    """Lower-case, fold accents and apostrophes, collapse spaces: the form phrases match.

    Cached: triage, the spam check and the opt-out detector each fold the same post."""
    decomposed = unicodedata.normalize("NFKD", text.translate(_APOSTROPHES).casefold())
    folded = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return _SPACES.sub(" ", folded).strip()


def _phrase_pattern(phrase: str, *, boundaries: bool) -> str:
    words = normalise(phrase).split(" ")
    parts = [r"(?:\S+\s+){0,3}?" if w == "*" else re.escape(w) + r"\s+" for w in words]
    body = "".join(parts)
    body = body[: -len(r"\s+")] if body.endswith(r"\s+") else body
    return rf"(?<!\w){body}(?!\w)" if boundaries else body


@dataclass(frozen=True, slots=True)
class CrisisMatch:
    language: str
    phrase: str


@dataclass(frozen=True, slots=True)
class _Compiled:
    pattern: re.Pattern[str]
    names: tuple[tuple[str, str], ...]
    """(language, phrase) of each named group, in group order."""
    singles: tuple[re.Pattern[str], ...] = ()
    """One pattern per phrase, in group order."""
    needles: tuple[str, ...] = ()
    """Per phrase, its longest literal word: a phrase can only match where it occurs."""

    def search(self, text: str, pos: int) -> tuple[int, int, int] | None:
        """(start, end, phrase index) of the match ``pattern.search(text, pos)`` finds.

        Python's ``re`` tries every alternative at every position (no trie), which measured
        about 2.5 ms per post for the packaged lexicon. A substring test of each phrase's
        longest word leaves the few phrases that can match; the leftmost of their matches,
        ties to the earliest phrase, is what the alternation would have returned.
        """
        best: tuple[int, int, int] | None = None
        present = [i for i, needle in enumerate(self.needles) if needle in text]
        for index in present:
            m = self.singles[index].search(text, pos)
            if m is not None and (best is None or m.start() < best[0]):
                best = (m.start(), m.end(), index)
        return best


def _needle(phrase: str) -> str:
    return max((w for w in normalise(phrase).split(" ") if w != "*"), key=len, default="")


def _compile(entries: list[tuple[str, str, bool]]) -> _Compiled | None:
    if not entries:
        return None
    patterns = [_phrase_pattern(p, boundaries=b) for _, p, b in entries]
    groups = [f"(?P<p{i}>{pattern})" for i, pattern in enumerate(patterns)]
    return _Compiled(
        re.compile("|".join(groups)),
        tuple((lang, p) for lang, p, _ in entries),
        tuple(re.compile(pattern) for pattern in patterns),
        tuple(_needle(p) for _, p, _ in entries),
    )


_SENTENCES = re.compile(r"[.!?;\n]+")


@dataclass(frozen=True, slots=True)
class _Pairs:
    """A sentence that speaks of oneself and of a risk, with no "unless" context, matches."""

    language: str
    self_terms: re.Pattern[str]
    risk: re.Pattern[str]
    unless: re.Pattern[str] | None

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

    def find(self, text: str) -> CrisisMatch | None:
        """The first crisis phrase in ``text`` not covered by an exclusion, if any; else the
        first sentence that pairs a self term with a risk term."""
        folded = normalise(text)
        return self._find_phrase(folded) or self._find_pair(folded)

    def _find_pair(self, folded: str) -> CrisisMatch | None:
        for sentence in _SENTENCES.split(folded):
            for pairs in self._pairs:
                term = pairs.find(sentence)
                if term is not None:
                    return CrisisMatch(language=pairs.language, phrase=f"self + {term}")
        return None

    def _find_phrase(self, folded: str) -> CrisisMatch | None:
        if self._phrases is None:
            return None
        covered: list[tuple[int, int]] | None = None
        # Overlapping phrases ("want to die" inside a longer one) are found by restarting the
        # scan one character after each excluded hit.
        pos = 0
        while pos <= len(folded):
            found = self._phrases.search(folded, pos)
            if found is None:
                return None
            start, end, index = found
            if covered is None:
                # Exclusions only matter once a phrase matched (rarely): look for them then.
                covered = []
                if self._excludes is not None:
                    covered = [m.span() for m in self._excludes.pattern.finditer(folded)]
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
            pairs.append(
                _Pairs(
                    language=str(lang),
                    self_terms=_alternation(
                        [str(t) for t in pair_t["self"]], boundaries=boundaries
                    ),
                    risk=_alternation([str(t) for t in pair_t["risk"]], boundaries=boundaries),
                    unless=_alternation(unless, boundaries=boundaries) if unless else None,
                )
            )
    if problems:
        raise ConfigError(problems)
    return CrisisLexicon(
        reviewed=reviewed,
        review_every_days=int(meta.get("review_every_days", 180))
        if isinstance(meta, Mapping)
        else 180,
        languages=tuple(languages),
        notes=str(meta.get("notes", "")) if isinstance(meta, Mapping) else "",
        phrase_count=len(phrases),
        source=source,
        _phrases=_compile(phrases),
        _excludes=_compile(excludes),
        _pairs=tuple(pairs),
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
        try:
            text, source = path.read_text(encoding="utf-8"), str(path)
        except OSError as exc:
            raise ConfigError(
                [f"The crisis lexicon {path} cannot be read: {exc.strerror}."]
            ) from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{source} is not valid TOML: {exc}."]) from None
    return parse_lexicon(doc, source=source)
