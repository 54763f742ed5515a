"""Text as categorical sequences: fixed windows of characters, or one sequence per line.

A text file is read either as one long stream cut into windows of ``seq_len`` characters
(split by position: :func:`text_dataset`), or as one variable-length sequence per line, of
characters or of whitespace-separated words (split by line: :func:`lines_dataset`). The
built-in ``unicode-words`` corpus is a set of short lines of the second kind that ships with
Python itself (:func:`unicode_words`). In every case ``extra["vocab"]`` lists what the
tokens stand for, and :func:`ptheta.data.sequences.decode` turns tokens back into text.
"""

from __future__ import annotations

import os
import unicodedata
from pathlib import Path

import numpy as np

from ptheta.data.ragged import Sequences, sequence_dataset
from ptheta.data.spec import Dataset, DataSpec, Split
from ptheta.errors import DataError

# Text files are split by position: the first 80 % train, the next 10 % validation, the rest.
TEXT_FRACTIONS = (0.80, 0.10)
TEXT_SEQ_LEN = 64
# How a line becomes a sequence: one token per character, or per whitespace-separated word.
LINE_MODES: dict[str, str] = {"chars": "", "words": " "}  # mode -> separator when decoding
# The fixed shuffle that splits the built-in word list by word.
UNICODE_WORDS_SEED = 0


def _vocabulary(tokens: set[str], name: str, unit: str) -> tuple[list[str], dict[str, int]]:
    vocab = sorted(tokens)
    if len(vocab) < 2:
        found = f" ({vocab[0]!r})" if vocab else ""
        raise DataError(
            f"{name} uses a single {unit}{found}; a text data set needs at least 2 distinct {unit}s"
        )
    return vocab, {c: i for i, c in enumerate(vocab)}


def text_dataset(text: str, *, seq_len: int = TEXT_SEQ_LEN, name: str = "text") -> Dataset:
    """Characters of ``text`` as a categorical sequence data set of fixed-length windows.

    The vocabulary is the sorted set of characters of the whole text (token i is
    ``vocab[i]``). The text is cut by position into train (first 80 %), validation (next
    10 %) and test (last 10 %), and each part into non-overlapping windows of ``seq_len``
    characters (a part's last, incomplete window is dropped).

    Arguments:
        text: the characters.
        seq_len: characters per example (T).
        name: the data set's name.

    Returns:
        the `Dataset` (kind categorical(len(vocab)), event shape (seq_len,)); ``extra`` holds
        ``vocab`` (a list of characters), ``bounds`` and ``seq_len``.

    Example:
        >>> from ptheta.data.sequences import decode
        >>> data = text_dataset("abracadabra " * 20, seq_len=8)
        >>> data.extra["vocab"], data.event_shape, decode(data, data.train.x[:1])
        ([' ', 'a', 'b', 'c', 'd', 'r'], (8,), ['abracada'])
    """
    if isinstance(seq_len, bool) or not isinstance(seq_len, (int, np.integer)) or seq_len < 1:
        raise DataError(f"seq_len must be a positive whole number, got {seq_len!r}")
    if not text:
        raise DataError(f"{name} is empty: a text data set needs characters")
    vocab, lookup = _vocabulary(set(text), name, "character")
    n = len(text)
    a = int(TEXT_FRACTIONS[0] * n)
    b = int(sum(TEXT_FRACTIONS) * n)
    shortest = min(b - a, n - b)
    if seq_len > shortest:
        fix = f"or seq_len <= {shortest}" if shortest else "(at least 10 characters)"
        raise DataError(
            f"{name} is too short for windows of seq_len={seq_len}: its {n} characters leave "
            f"{shortest} for the validation or test part (10 % each), which must hold a whole "
            f"window; use a longer text {fix}"
        )
    tokens = np.fromiter((lookup[c] for c in text), dtype=np.int64, count=n)
    spec = DataSpec("categorical", (seq_len,), len(vocab))
    splits = {}
    for split, lo, hi in (("train", 0, a), ("val", a, b), ("test", b, n)):
        whole = (hi - lo) // seq_len * seq_len  # a part's last, incomplete window is dropped
        splits[split] = Split(tokens[lo : lo + whole].reshape(-1, seq_len), None, spec)
    return Dataset(
        name=name,
        spec=spec,
        description=f"characters of {name}: vocabulary of {len(vocab)}, windows of {seq_len}",
        extra={"format": "text", "vocab": vocab, "bounds": (a, b), "seq_len": seq_len},
        **splits,
    )


def lines_dataset(
    text: str,
    *,
    lines: str = "chars",
    name: str = "text",
    seed: int = 0,
    kind: str | None = None,
    description: str = "",
) -> Dataset:
    """Each non-blank line of ``text`` as one variable-length sequence of tokens.

    A line is read as its characters (``lines="chars"``; spaces inside it are characters
    too) or as its whitespace-separated words (``lines="words"``); the line break is not a
    token (each sequence's end is scored by the models that take variable-length data).
    Blank lines (empty or only whitespace) are skipped. The sequences are shuffled with
    ``seed`` and split 80 / 10 / 10 by line: a line is never cut between splits.

    Arguments:
        text: the lines.
        lines: ``chars`` or ``words``.
        name: the data set's name.
        seed: the shuffle that splits the lines.
        kind: ``categorical:K`` (K at least the vocabulary size) instead of
            categorical(vocabulary size).
        description: the data set's description; a summary by default.

    Returns:
        the variable-length `Dataset` (kind categorical(len(vocab)), one sequence per line);
        ``extra`` holds ``vocab`` (token i is ``vocab[i]``), ``lines`` and ``separator``
        (what joins decoded tokens: nothing for characters, a space for words).

    Example:
        >>> from ptheta.data.sequences import decode
        >>> data = lines_dataset("the cat\\nthe dog\\n\\nsat on the mat\\na cat", lines="words")
        >>> data.extra["vocab"], data.spec.variable_length
        (['a', 'cat', 'dog', 'mat', 'on', 'sat', 'the'], True)
        >>> sorted(decode(data, s)[0] for split in ("train", "val", "test")
        ...        for s in data.split(split).sequences)
        ['a cat', 'sat on the mat', 'the cat', 'the dog']
    """
    if lines not in LINE_MODES:
        raise DataError(
            f"lines must be 'chars' (one token per character) or 'words' (one per "
            f"whitespace-separated word), got {lines!r}"
        )
    rows = [line for line in text.splitlines() if line.strip()]
    if len(rows) < 3:
        raise DataError(
            f"{name} has {len(rows)} non-blank line(s); one sequence per line needs at least 3 "
            "(one each for train, validation and test)"
        )
    seqs = [list(row) if lines == "chars" else row.split() for row in rows]
    unit = "character" if lines == "chars" else "word"
    vocab, lookup = _vocabulary({tok for s in seqs for tok in s}, name, unit)
    tokens = Sequences.from_list(
        [np.fromiter((lookup[t] for t in s), dtype=np.int64, count=len(s)) for s in seqs], name
    )
    lo, hi = int(tokens.lengths.min()), int(tokens.lengths.max())
    return sequence_dataset(
        tokens,
        name=name,
        kind=f"categorical:{len(vocab)}" if kind is None else kind,
        seed=seed,
        description=description
        or f"lines of {name} as {unit}s: {len(rows)} sequences of {lo}-{hi} {unit}s, "
        f"vocabulary of {len(vocab)}",
        extra={"format": "text", "lines": lines, "separator": LINE_MODES[lines], "vocab": vocab},
    )


def load_text(
    path: str | os.PathLike,
    *,
    seq_len: int | None = None,
    lines: str | None = None,
    seed: int = 0,
    kind: str | None = None,
) -> Dataset:
    """Load a UTF-8 text file as windows of characters (:func:`text_dataset`) or, with
    ``lines``, as one sequence per line (:func:`lines_dataset`).

    Arguments:
        path: the .txt file.
        seq_len: characters per window; default 64. Not with ``lines``.
        lines: ``chars`` or ``words``: one variable-length sequence per non-blank line.
        seed: the shuffle that splits the lines (windows are split by position).
        kind: with ``lines``, ``categorical:K`` instead of categorical(vocabulary size);
            (`ptheta.data.load` applies a kind to windows after reading them).
    """
    path = Path(path)
    if lines is not None and seq_len is not None:
        raise DataError(
            "seq_len cuts a text into fixed windows of characters, lines reads one sequence "
            "per line: give one of the two (--seq-len or --lines)"
        )
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise DataError(f"{path} is not UTF-8 text ({e}); save it as UTF-8") from None
    except OSError as e:
        raise DataError(f"could not read {path}: {e}") from None
    if lines is None:
        data = text_dataset(
            text, seq_len=TEXT_SEQ_LEN if seq_len is None else seq_len, name=path.name
        )
    else:
        data = lines_dataset(text, lines=lines, name=path.name, seed=seed, kind=kind)
        data.extra["seed"] = seed
    data.extra["path"] = str(path)
    return data


# ---------------------------------------------------------------------------------------
# A built-in corpus of short lines


def unicode_words() -> list[str]:
    """The distinct words of the Unicode character names, lower-cased and sorted.

    The names are those of Unicode 3.2.0, the frozen copy of the database that every Python
    ships as ``unicodedata.ucd_3_2_0`` (Python's own ``unicodedata`` follows newer Unicode
    versions, so its word list changes from one Python version to the next; this one does
    not). Names made up by rule rather than listed (``CJK UNIFIED IDEOGRAPH-4E00``, the
    Hangul syllables) are left out. The words use the 37 characters a-z, 0-9 and ``-``.

    Example:
        >>> words = unicode_words()
        >>> len(words), words[:3], "hiragana" in words
        (4724, ['-a', '-chal', '-char'], True)
    """
    db = unicodedata.ucd_3_2_0
    words: set[str] = set()
    for code in range(0x110000):
        name = db.name(chr(code), "")
        if name and not name.endswith(f"-{code:04X}") and not name.startswith("HANGUL SYLLABLE "):
            words.update(name.lower().split())
    return sorted(words)


UNICODE_WORDS_DESCRIPTION = (
    "the 4,724 distinct words of the Unicode 3.2 character names (Python's unicodedata."
    "ucd_3_2_0, the same on every Python version; newer Pythons name more characters), "
    "lower-cased, e.g. latin, capital, hiragana: one sequence of characters (a-z, 0-9, -) "
    "per word, 1-24 long; split by word 80 / 10 / 10"
)


def unicode_words_dataset() -> Dataset:
    """The built-in ``unicode-words``: :func:`unicode_words`, one character sequence per
    word, split 80 / 10 / 10 by word with a fixed seed."""
    data = lines_dataset(
        "\n".join(unicode_words()),
        lines="chars",
        name="unicode-words",
        seed=UNICODE_WORDS_SEED,
        description=UNICODE_WORDS_DESCRIPTION,
    )
    data.extra.update(source="unicodedata.ucd_3_2_0", seed=UNICODE_WORDS_SEED)
    return data
