"""Spam/ham word-presence data: a SYNTHETIC labelled corpus with known word correlations, or a CSV.

No spam corpus ships offline, so the explorer's "discriminative vs generative" view uses a
generator whose word statistics are stated here exactly. Given the class, every word is
present independently with its class rate, except the words of a *correlated pair*
(a, b): a is drawn with its class rate, and b copies a with probability ``copy``
(else b is drawn independently with the same rate). Within each class both words then
have the same rate q, and their correlation (phi coefficient) is exactly ``copy``:

    Cov(a, b | y) = P(a = b = 1 | y) − q² = q (copy + (1 − copy) q) − q² = copy · q (1 − q).

Naive Bayes assumes the words independent given the class, so a pair counts twice.
"""

from __future__ import annotations

import csv
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ptheta.errors import DataError

# word -> (P(present | spam), P(present | ham)); drawn independently given the class
WORD_RATES: dict[str, tuple[float, float]] = {
    "free": (0.50, 0.08),
    "winner": (0.30, 0.02),
    "cash": (0.35, 0.05),
    "offer": (0.40, 0.10),
    "click": (0.40, 0.05),
    "urgent": (0.25, 0.05),
    "credit": (0.25, 0.05),
    "meeting": (0.05, 0.40),
    "project": (0.05, 0.35),
    "report": (0.05, 0.30),
    "lunch": (0.03, 0.20),
    "schedule": (0.05, 0.30),
    "team": (0.08, 0.35),
    "family": (0.05, 0.20),
    "weekend": (0.10, 0.25),
    "thanks": (0.15, 0.45),
    "today": (0.30, 0.30),
    "please": (0.30, 0.30),
    "new": (0.25, 0.25),
    "time": (0.20, 0.20),
}
# (a, b) -> the class rates both words share; b copies a with probability `copy`
PAIR_RATES: dict[tuple[str, str], tuple[float, float]] = {
    ("viagra", "pills"): (0.25, 0.02),
    ("lottery", "jackpot"): (0.20, 0.02),
    ("invoice", "attached"): (0.05, 0.25),
}
SPAM_PRIOR = 0.4
# words between the vocabulary words of a synthetic text; none of them is in the vocabulary
FILLER = ("the", "a", "and", "to", "you", "for", "is", "on", "with", "your")
STOPWORDS = frozenset(FILLER) | {"of", "in", "it", "i", "we", "be", "at", "this", "that", "are"}
SPAM_LABELS = {"spam": 1, "1": 1, "true": 1, "yes": 1, "ham": 0, "0": 0, "false": 0, "no": 0}


@dataclass
class SpamCorpus:
    """Labelled texts with the vocabulary they are featurised over.

    Attributes:
        texts: the e-mails, one string each.
        labels: (N,) int64, 1 = spam, 0 = ham.
        vocabulary: the words whose presence makes the features (column order).
        correlated_pairs: word pairs strongly correlated within each class (known for the
            synthetic corpus, measured for a CSV).
        synthetic: whether the corpus came from :func:`generate`.
        source: where it came from, in words.
    """

    texts: list[str]
    labels: np.ndarray
    vocabulary: list[str]
    correlated_pairs: list[tuple[str, str]] = field(default_factory=list)
    synthetic: bool = True
    source: str = ""

    def features(self) -> np.ndarray:
        """Word presence (N, V) int64 over :attr:`vocabulary`."""
        return features(self.texts, self.vocabulary)


def tokenize(text: str) -> list[str]:
    """Lower-case words of letters (and inner apostrophes)."""
    return re.findall(r"[a-z]+(?:'[a-z]+)?", text.lower())


def features(texts: list[str], vocabulary: list[str]) -> np.ndarray:
    """Presence (1) or absence (0) of each vocabulary word in each text, shape (N, V)."""
    index = {w: j for j, w in enumerate(vocabulary)}
    x = np.zeros((len(texts), len(vocabulary)), dtype=np.int64)
    for i, text in enumerate(texts):
        for word in set(tokenize(text)):
            j = index.get(word)
            if j is not None:
                x[i, j] = 1
    return x


def generate(n: int = 2000, *, seed: int = 0, copy: float = 0.95) -> SpamCorpus:
    """Draw a SYNTHETIC spam/ham corpus with the word statistics of this module.

    Arguments:
        n: number of e-mails.
        seed: seed of the generator (same seed, same corpus).
        copy: within-class correlation (phi) of the words of each pair in ``PAIR_RATES``,
            in [0, 1]: the second word copies the first with this probability.

    Returns:
        a :class:`SpamCorpus` (``synthetic=True``); about ``SPAM_PRIOR`` of it is spam.

    Example:
        >>> corpus = generate(200, seed=1)
        >>> corpus.features().shape, sorted(set(corpus.labels.tolist()))
        ((200, 26), [0, 1])
    """
    if not 0 <= copy <= 1:
        raise DataError(f"copy must lie in [0, 1] (a correlation), got {copy!r}")
    if n < 2:
        raise DataError(f"n must be at least 2 e-mails, got {n!r}")
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < SPAM_PRIOR).astype(np.int64)  # (N,)
    columns: dict[str, np.ndarray] = {}
    for word, (p_spam, p_ham) in WORD_RATES.items():
        columns[word] = rng.random(n) < np.where(y == 1, p_spam, p_ham)
    for (a, b), (p_spam, p_ham) in PAIR_RATES.items():
        rate = np.where(y == 1, p_spam, p_ham)  # (N,)
        columns[a] = rng.random(n) < rate
        own = rng.random(n) < rate
        columns[b] = np.where(rng.random(n) < copy, columns[a], own)
    vocabulary = list(columns)
    texts = []
    for i in range(n):
        words = [w for w in vocabulary if columns[w][i]]
        words += list(rng.choice(FILLER, size=int(rng.integers(2, 6))))
        rng.shuffle(words)
        texts.append(" ".join(words))
    return SpamCorpus(
        texts=texts,
        labels=y,
        vocabulary=vocabulary,
        correlated_pairs=list(PAIR_RATES),
        synthetic=True,
        source=(
            f"SYNTHETIC corpus of {n} e-mails from ptheta.explorer.spam.generate(seed={seed}); "
            f"word pairs correlated within each class with phi = {copy}"
        ),
    )


def load_csv(path: str | os.PathLike, *, max_words: int = 40, min_count: int = 2) -> SpamCorpus:
    """Read a CSV of e-mails with columns ``text`` and ``label``.

    Labels: ``spam``/``ham`` (any case), ``1``/``0``, ``true``/``false`` or ``yes``/``no``;
    both classes must occur. The vocabulary is the ``max_words`` words (stop words left
    out) found in the most texts, each in at least ``min_count`` texts; the correlated
    pairs are the (at most 5) pairs of vocabulary words with a measured within-class
    correlation above 0.5 (see :func:`measured_pairs`).

    Returns:
        a :class:`SpamCorpus` (``synthetic=False``).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(
            f"spam CSV {str(path)!r} not found; give a CSV file with columns text,label"
        )
    try:
        with path.open(newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            columns = [c.strip().lower() for c in (reader.fieldnames or [])]
            rows = list(reader)
    except (UnicodeDecodeError, csv.Error) as e:
        raise DataError(f"spam CSV {str(path)!r} could not be read as UTF-8 CSV ({e})") from None
    missing = [c for c in ("text", "label") if c not in columns]
    if missing:
        raise DataError(
            f"spam CSV {str(path)!r} has no {' or '.join(missing)} column (columns: "
            f"{', '.join(columns) or 'none'}); its header must name the columns text,label"
        )
    keys = {c.strip().lower(): c for c in reader.fieldnames or []}
    texts, labels = [], []
    for line, row in enumerate(rows, start=2):
        raw = (row.get(keys["label"]) or "").strip().lower()
        if raw not in SPAM_LABELS:
            raise DataError(
                f"spam CSV {str(path)!r} line {line}: label {raw!r} is not spam/ham (or 1/0, "
                "true/false, yes/no); fix that row"
            )
        texts.append(row.get(keys["text"]) or "")
        labels.append(SPAM_LABELS[raw])
    y = np.asarray(labels, dtype=np.int64)
    if len(set(labels)) < 2:
        raise DataError(
            f"spam CSV {str(path)!r} needs e-mails of both classes (spam and ham); it has "
            f"{len(labels)} rows of {'no class' if not labels else 'one class only'}"
        )
    counts: dict[str, int] = {}
    for text in texts:
        for word in set(tokenize(text)) - STOPWORDS:
            counts[word] = counts.get(word, 0) + 1
    ranked = sorted((w for w, c in counts.items() if c >= min_count), key=lambda w: -counts[w])
    vocabulary = ranked[:max_words]
    if len(vocabulary) < 2:
        raise DataError(
            f"spam CSV {str(path)!r} has fewer than 2 words found in {min_count} or more texts; "
            "give more (or longer) texts"
        )
    x = features(texts, vocabulary)
    return SpamCorpus(
        texts=texts,
        labels=y,
        vocabulary=vocabulary,
        correlated_pairs=measured_pairs(x, y, vocabulary),
        synthetic=False,
        source=f"user CSV {path.name} ({len(texts)} e-mails)",
    )


def within_class_phi(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Correlation matrix (V, V) of the word presences within each class, averaged over
    the two classes (words constant within a class count as uncorrelated there)."""
    out = np.zeros((x.shape[1], x.shape[1]))
    for c in (0, 1):
        rows = x[y == c].astype(np.float64)
        centred = rows - rows.mean(axis=0)
        std = np.sqrt((centred**2).mean(axis=0))
        cov = centred.T @ centred / max(len(rows), 1)
        with np.errstate(invalid="ignore", divide="ignore"):
            phi = cov / np.outer(std, std)
        out += np.nan_to_num(phi, nan=0.0, posinf=0.0, neginf=0.0) / 2
    return out


def measured_pairs(
    x: np.ndarray, y: np.ndarray, vocabulary: list[str], *, threshold: float = 0.5, top: int = 5
) -> list[tuple[str, str]]:
    """Up to ``top`` word pairs whose within-class correlation exceeds ``threshold``."""
    phi = within_class_phi(x, y)
    i, j = np.triu_indices(len(vocabulary), k=1)
    keep = np.argsort(-phi[i, j])[:top]
    return [(vocabulary[i[k]], vocabulary[j[k]]) for k in keep if phi[i[k], j[k]] > threshold]
