"""The synthetic spam corpus has the statistics it states; the CSV loader's errors are clear."""

from __future__ import annotations

import numpy as np
import pytest

from ptheta.data import spam
from ptheta.errors import DataError


@pytest.fixture(scope="module")
def corpus() -> spam.SpamCorpus:
    return spam.generate(6000, seed=7)


def _phi(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a, b)[0, 1])


def test_pairs_are_correlated_within_each_class_as_stated(corpus):
    x, y = corpus.features(), corpus.labels  # featurised back from the texts
    col = {w: j for j, w in enumerate(corpus.vocabulary)}
    for a, b in spam.PAIR_RATES:
        for c in (0, 1):
            rows = x[y == c]
            # measured co-occurrence: phi = copy = 0.95 (module docstring)
            assert _phi(rows[:, col[a]], rows[:, col[b]]) == pytest.approx(0.95, abs=0.05)
    # words outside the pairs are independent given the class
    for a, b in [("free", "winner"), ("meeting", "project"), ("viagra", "lottery")]:
        for c in (0, 1):
            rows = x[y == c]
            assert abs(_phi(rows[:, col[a]], rows[:, col[b]])) < 0.06


def test_rates_and_prior_as_stated(corpus):
    x, y = corpus.features(), corpus.labels
    n = len(y)
    assert abs(y.mean() - spam.SPAM_PRIOR) < 4 * np.sqrt(0.24 / n)
    rates = {**spam.WORD_RATES, **{w: r for pair, r in spam.PAIR_RATES.items() for w in pair}}
    for j, word in enumerate(corpus.vocabulary):
        for c, rate in ((1, rates[word][0]), (0, rates[word][1])):
            rows = x[y == c, j]
            assert abs(rows.mean() - rate) < 4 * np.sqrt(rate * (1 - rate) / len(rows)) + 1e-3


def test_generator_is_seeded_and_labelled_synthetic():
    a, b = spam.generate(50, seed=3), spam.generate(50, seed=3)
    assert a.texts == b.texts and (a.labels == b.labels).all()
    assert spam.generate(50, seed=4).texts != a.texts
    assert a.synthetic and "SYNTHETIC" in a.source
    assert not set(spam.FILLER) & set(a.vocabulary)
    with pytest.raises(DataError, match="copy"):
        spam.generate(10, copy=1.5)


def test_measured_pairs_finds_the_planted_pairs(corpus):
    found = spam.measured_pairs(corpus.features(), corpus.labels, corpus.vocabulary)
    assert set(found) == set(spam.PAIR_RATES)


def _write(tmp_path, text: str):
    path = tmp_path / "mail.csv"
    path.write_text(text, encoding="utf-8")
    return path


def test_load_csv(tmp_path):
    rows = ["Text,Label"]
    rows += [f'"Win CASH, a prize {i}",SPAM' for i in range(6)]
    rows += [f"team meeting at noon {i},ham" for i in range(6)]
    rows += ["cash or meeting,1", "the meeting,0"]
    corpus = spam.load_csv(_write(tmp_path, "\n".join(rows) + "\n"))
    assert not corpus.synthetic and len(corpus.texts) == 14
    assert corpus.labels.tolist() == [1] * 6 + [0] * 6 + [1, 0]
    assert {"cash", "prize", "team", "meeting"} <= set(corpus.vocabulary)
    assert "the" not in corpus.vocabulary  # stop words are left out
    x = corpus.features()
    assert x[0, corpus.vocabulary.index("cash")] == 1 and x[0, corpus.vocabulary.index("team")] == 0


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("body,label\nhi,spam\n", "no text column"),
        ("text\nhi\n", "no label column"),
        ("text,label\nhi there,spam\nbye there,maybe\n", "line 3: label 'maybe'"),
        ("text,label\nhi there,spam\nhi there,spam\n", "both classes"),
        ("text,label\n", "both classes"),
        ("text,label\nalpha,spam\nbeta,ham\n", "fewer than 2 words"),
    ],
)
def test_load_csv_errors(tmp_path, text, match):
    with pytest.raises(DataError, match=match):
        spam.load_csv(_write(tmp_path, text))


def test_load_csv_missing_file(tmp_path):
    with pytest.raises(DataError, match="not found"):
        spam.load_csv(tmp_path / "nope.csv")
