"""The pure-Python abuse model gives the probabilities ``profanity_check.predict_prob`` gives.

Compared on every labelled triage text and a few thousand generated ones (known and unknown
words, stop words, repeats, punctuation, emoji, case, other scripts, empty strings), and on small
models fitted here with the other vectorizer settings the class reproduces.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest
from profanity_check import predict_prob
from profanity_check import profanity_check as shipped
from sklearn.calibration import CalibratedClassifierCV  # type: ignore[import-untyped]
from sklearn.feature_extraction.text import TfidfVectorizer  # type: ignore[import-untyped]
from sklearn.svm import LinearSVC  # type: ignore[import-untyped]

from mhchat.facilitation.triage import Triage, load_lexicon
from mhchat.facilitation.triage.abuse_model import AbuseModel
from mhchat.facilitation.triage.classifier import TriageInput

DATA = Path(__file__).parent / "data"
THRESHOLD = 0.9  # Triage's default abuse_threshold
TOLERANCE = 1e-9

UNKNOWN = [
    "zxqv", "blorptastic", "mhchat", "A1", "Q3", "x", "I", "a", "2026", "10pm", "3x",
    "snake_case_word", "don't", "can\u2019t", "self-care", "re-tweet", "e.g.", "#MHChat",
    "@someone", "https://example.org/a?b=c", "www.example.com", "café", "naïve", "ÉCOLE",
    "straße", "STRASSE", "İstanbul", "ǅemal", "ﬁne", "Ⅻ", "½", "²", "٣٤", "pourquoi",
    "vraiment", "gracias", "danke", "obrigada", "привет", "СПАСИБО", "γεια", "שלום",
    "مرحبا", "नमस्ते", "ありがとう", "大丈夫", "안녕하세요", "ไม่เป็นไร", "🙂", "💜💜",
    "🔥🔥🔥", "👍🏽", "❤️", "🏳️‍🌈", "...", "!!!", "?!", "\u2014", "\u2013", "(", ")",
    "[x]", "*", "&amp;", "<3", ":)", "\t", "\n", "  ",
]  # fmt: skip
STOP_WORDS = ["the", "and", "you", "your", "not", "is", "are", "was", "very", "too", "we"]


def labelled_texts() -> list[str]:
    return [
        json.loads(line)["text"]
        for path in sorted(DATA.glob("triage_*.jsonl"))
        for line in path.read_text("utf-8").splitlines()
        if line.strip()
    ]


def generated_texts(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    vocabulary = sorted(shipped.vectorizer.vocabulary_)
    # The words that push a text towards "abuse" most, so many texts land near the threshold.
    weight = {
        term: sum(c.estimator.coef_[0][i] for c in shipped.model.calibrated_classifiers_)
        for term, i in shipped.vectorizer.vocabulary_.items()
    }
    abusive = sorted(vocabulary, key=weight.__getitem__)[-300:]
    texts = ["", " ", "\n", "🙂", "the and you", "x y z"]
    while len(texts) < count:
        words: list[str] = []
        for _ in range(rng.choice([1, 1, 2, 3, 5, 8, 13, 30])):
            pick = rng.random()
            if pick < 0.35:
                word = rng.choice(vocabulary)
            elif pick < 0.5:
                word = rng.choice(abusive)
            elif pick < 0.75:
                word = rng.choice(UNKNOWN)
            elif pick < 0.85:
                word = rng.choice(STOP_WORDS)
            else:
                word = words[-1] if words else rng.choice(vocabulary)  # repeats: counts > 1
            case = rng.random()
            if case < 0.1:
                word = word.upper()
            elif case < 0.2:
                word = word.title()
            words.append(word + rng.choice(["", "", "", ",", ".", "!", "?!", "'s", "…", "🙂"]))
        texts.append(rng.choice([" ", " ", "  ", "\n", ", "]).join(words))
    return texts


@pytest.fixture(scope="module")
def texts() -> list[str]:
    return labelled_texts() + generated_texts(4000, seed=20261125)


@pytest.fixture(scope="module")
def model() -> AbuseModel:
    return AbuseModel()


def test_probabilities_equal_predict_prob(model: AbuseModel, texts: list[str]) -> None:
    expected = [float(p) for p in predict_prob(texts)]
    got = model(texts)
    assert len(texts) >= 4500
    assert len(got) == len(expected)
    worst = max(range(len(texts)), key=lambda i: abs(got[i] - expected[i]))
    assert abs(got[worst] - expected[worst]) <= TOLERANCE, texts[worst]
    assert all(isinstance(p, float) for p in got)


def test_batch_size_does_not_change_a_probability(model: AbuseModel, texts: list[str]) -> None:
    whole = model(texts)
    assert [model([t])[0] for t in texts[:500]] == whole[:500]
    assert [p for i in range(0, 600, 30) for p in model(texts[i : i + 30])] == whole[:600]
    assert model([]) == []


def test_verdicts_at_the_threshold_are_the_same(model: AbuseModel, texts: list[str]) -> None:
    expected = [float(p) >= THRESHOLD for p in predict_prob(texts)]
    got = [p >= THRESHOLD for p in model(texts)]
    assert got == expected
    # Both verdicts occur, and plenty of texts sit close to the line.
    assert 200 < sum(got) < len(got) - 200
    near = [p for p in model(texts) if abs(p - THRESHOLD) < 0.05]
    assert len(near) >= 50


def test_triage_gives_the_same_results_with_either_model(
    model: AbuseModel, texts: list[str]
) -> None:
    def reference(batch: list[str]) -> list[float]:
        return [float(p) for p in predict_prob(batch)]

    items = [TriageInput(text=t) for t in texts]
    old = Triage(load_lexicon(), model=reference).classify_many(items)
    new = Triage(load_lexicon(), model=model).classify_many(items)
    assert [(r.verdict, r.reason) for r in new] == [(r.verdict, r.reason) for r in old]
    assert all(abs(a.score - b.score) <= TOLERANCE for a, b in zip(new, old, strict=True))


def fit(texts: list[str], svc: dict[str, Any], **settings: Any) -> tuple[Any, Any]:
    labels = [int(p >= 0.5) for p in predict_prob(texts)]
    vectorizer = TfidfVectorizer(**settings)
    features = vectorizer.fit_transform(texts)
    # The settings profanity_check was trained with.
    svm = LinearSVC(dual=False, max_iter=100_000, tol=0.01, **svc)
    classifier = CalibratedClassifierCV(svm, cv=3)
    classifier.fit(features, labels)
    return vectorizer, classifier


@pytest.mark.parametrize(
    ("svc", "settings"),
    [
        ({}, {"sublinear_tf": True, "stop_words": "english"}),
        ({"class_weight": "balanced"}, {"binary": True, "use_idf": False}),
        ({}, {"norm": "l1", "smooth_idf": False, "min_df": 2}),
        ({"fit_intercept": False}, {"lowercase": False}),
        ({}, {"norm": None, "lowercase": False}),
        ({}, {"token_pattern": r"(?u)\b\w+\b", "binary": True, "sublinear_tf": True}),
    ],
)
def test_other_vectorizer_settings_are_reproduced(
    texts: list[str], svc: dict[str, Any], settings: dict[str, Any]
) -> None:
    train, check = texts[::2], texts[1::2]
    vectorizer, classifier = fit(train, svc, **settings)
    expected = classifier.predict_proba(vectorizer.transform(check))[:, 1].tolist()
    got = AbuseModel(vectorizer, classifier)(check)
    assert max(abs(a - b) for a, b in zip(got, expected, strict=True)) <= TOLERANCE
    assert 0 < sum(p >= 0.5 for p in got) < len(got)


@pytest.mark.parametrize(
    ("settings", "method", "problem"),
    [
        ({"ngram_range": (1, 2)}, "sigmoid", "ngram_range"),
        ({"analyzer": "char"}, "sigmoid", "analyzer"),
        ({"strip_accents": "unicode"}, "sigmoid", "strip_accents"),
        ({}, "isotonic", "calibration method"),
    ],
)
def test_settings_it_cannot_reproduce_are_refused(
    texts: list[str], settings: dict[str, Any], method: str, problem: str
) -> None:
    train = texts[:600]
    labels = [int(p >= 0.5) for p in predict_prob(train)]
    vectorizer = TfidfVectorizer(**settings)
    classifier = CalibratedClassifierCV(LinearSVC(dual=False), cv=3, method=method)
    classifier.fit(vectorizer.fit_transform(train), labels)
    with pytest.raises(ValueError, match=problem):
        AbuseModel(vectorizer, classifier)


def test_the_vectorizer_and_the_model_come_together() -> None:
    with pytest.raises(ValueError, match="both"):
        AbuseModel(vectorizer=shipped.vectorizer)
