"""The abuse model of ``alt-profanity-check``, scored in pure Python from its own fitted weights.

``profanity_check.predict_prob`` runs a scikit-learn ``TfidfVectorizer`` and a
``CalibratedClassifierCV`` over ``LinearSVC``. Each call costs milliseconds of numpy, scipy and
sklearn machinery however few texts it is given, and ingest batches under live load hold a
handful of posts. The model is linear, so the same probabilities come from a dict lookup per word
and one sigmoid per calibrated classifier, with no per-call overhead.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from operator import mul
from typing import Any

import numpy as np

_NORMS = ("l1", "l2", None)


def _sigmoid_of_negative(t: float) -> float:
    """``1 / (1 + exp(t))``, i.e. sklearn's ``expit(-t)``, without overflow for large ``|t|``."""
    if t > 0.0:
        e = math.exp(-t)
        return e / (1.0 + e)
    return 1.0 / (1.0 + math.exp(t))


def _unsupported(vectorizer: Any, model: Any) -> list[str]:
    """Settings this class does not reproduce (it refuses them rather than score differently)."""
    problems = []
    for name, wanted in (
        ("input", "content"),
        ("analyzer", "word"),
        ("preprocessor", None),
        ("tokenizer", None),
        ("strip_accents", None),
        ("ngram_range", (1, 1)),
    ):
        if getattr(vectorizer, name) != wanted:
            problems.append(f"vectorizer {name}={getattr(vectorizer, name)!r}")
    if vectorizer.norm not in _NORMS:
        problems.append(f"vectorizer norm={vectorizer.norm!r}")
    if re.compile(vectorizer.token_pattern).groups > 1:
        problems.append("vectorizer token_pattern with more than one group")
    # float32 features would round differently from the float64 arithmetic here.
    if np.dtype(vectorizer.dtype) != np.float64:
        problems.append(f"vectorizer dtype={vectorizer.dtype!r}")
    classes = list(model.classes_)
    if len(classes) != 2:
        problems.append(f"{len(classes)} classes (only binary models)")
    for calibrated in model.calibrated_classifiers_:
        estimator = calibrated.estimator
        if calibrated.method != "sigmoid":
            problems.append(f"calibration method={calibrated.method!r}")
        if type(estimator).__name__ != "LinearSVC":
            problems.append(f"estimator {type(estimator).__name__}")
        elif estimator.coef_.shape != (1, len(vectorizer.vocabulary_)):
            problems.append(f"coefficients of shape {estimator.coef_.shape}")
        if list(calibrated.classes) != classes or list(estimator.classes_) != classes:
            problems.append("a calibrated classifier with other classes than the model")
    return problems


class AbuseModel:
    """Probability of class 1 (abusive) for each text, as ``profanity_check.predict_prob`` gives.

    Built from a fitted ``TfidfVectorizer`` and a sigmoid-calibrated ``CalibratedClassifierCV``
    over ``LinearSVC``: by default the pair ``profanity_check`` ships. Settings it does not
    reproduce raise ``ValueError`` here, rather than giving other scores later.
    """

    def __init__(self, vectorizer: Any = None, model: Any = None) -> None:
        if (vectorizer is None) != (model is None):
            raise ValueError("give both the vectorizer and the model, or neither")
        if vectorizer is None:
            # Importing the package loads its fitted pair; reuse them rather than load again.
            from profanity_check import profanity_check as shipped  # noqa: PLC0415

            vectorizer, model = shipped.vectorizer, shipped.model
        problems = _unsupported(vectorizer, model)
        if problems:
            raise ValueError("cannot reproduce this model: " + "; ".join(problems))

        self._tokenize = re.compile(vectorizer.token_pattern).findall
        self._lowercase = bool(vectorizer.lowercase)
        self._binary = bool(vectorizer.binary)
        self._sublinear_tf = bool(vectorizer.sublinear_tf)
        self._norm: str | None = vectorizer.norm

        size = len(vectorizer.vocabulary_)
        idf: list[float] = vectorizer.idf_.tolist() if vectorizer.use_idf else [1.0] * size
        slopes: list[float] = []
        columns: list[list[float]] = []
        consts: list[float] = []
        for calibrated in model.calibrated_classifiers_:
            (calibrator,) = calibrated.calibrators
            estimator = calibrated.estimator
            # LinearSVC keeps a plain 0.0 rather than an array when fit without an intercept.
            intercept = estimator.intercept_
            intercept = float(intercept[0] if hasattr(intercept, "__len__") else intercept)
            slope = float(calibrator.a_)
            slopes.append(slope)
            columns.append(estimator.coef_[0].tolist())
            # sklearn's probability is expit(-(a * decision + b)) with decision = x . w + c.
            consts.append(slope * intercept + float(calibrator.b_))
        self._consts = tuple(consts)

        # Per term: its idf, then a * idf * w for each calibrated classifier. tf-idf is scaled
        # per text, so a * decision = (sum of tf * a * idf * w) / norm + a * c: one multiply per
        # term and classifier. Stop words are dropped before the vocabulary lookup: never here.
        stop_words = vectorizer.get_stop_words() or frozenset()
        self._weights: dict[str, tuple[float, ...]] = {
            term: (idf[i], *(a * (idf[i] * w[i]) for a, w in zip(slopes, columns, strict=True)))
            for term, i in vectorizer.vocabulary_.items()
            if term not in stop_words
        }
        # A text with no known word has an all-zero vector: every decision is the intercept.
        self._blank = sum(_sigmoid_of_negative(c) for c in self._consts) / len(self._consts)

    def __call__(self, texts: list[str]) -> list[float]:
        weights = self._weights
        tokenize = self._tokenize
        lowercase = self._lowercase
        binary = self._binary
        sublinear_tf = self._sublinear_tf
        norm = self._norm
        consts = self._consts
        blank = self._blank
        probabilities: list[float] = []
        for text in texts:
            counts: dict[str, int] = {}
            for token in tokenize(text.lower() if lowercase else text):
                if token in weights:
                    counts[token] = counts.get(token, 0) + 1
            if not counts:
                probabilities.append(blank)
                continue
            tfs: Sequence[float] = [1] * len(counts) if binary else list(counts.values())
            if sublinear_tf:
                tfs = [math.log(tf) + 1.0 for tf in tfs]
            columns = zip(*[weights[token] for token in counts], strict=True)
            idfs = next(columns)
            if norm == "l2":
                length = math.hypot(*map(mul, tfs, idfs))
            elif norm == "l1":
                length = sum(map(mul, tfs, idfs))
            else:
                length = 1.0
            total = 0.0
            for column, const in zip(columns, consts, strict=True):
                # Inlined _sigmoid_of_negative: this loop is the whole cost of a short text.
                t = sum(map(mul, tfs, column)) / length + const
                if t > 0.0:
                    e = math.exp(-t)
                    total += e / (1.0 + e)
                else:
                    total += 1.0 / (1.0 + math.exp(t))
            # sklearn sums the classifiers' probabilities in order, then divides by their number.
            probabilities.append(total / len(consts))
        return probabilities
