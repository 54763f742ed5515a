"""`ptheta fit / eval / score / sample` on variable-length sequences, end to end.

The stand-in families of ``tests/eval/fake_sequences.py`` have closed-form likelihoods:
the per-step numbers printed are checked against a hand computation, and every file
`ptheta sample` writes is loaded again with ``ptheta.data.load``.
"""

from __future__ import annotations

import csv
import math
import sys
from pathlib import Path

import numpy as np
import pytest
from clirun import run  # tests/cli/clirun.py

import ptheta
from ptheta.runs.store import load_run

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "eval"))
from fake_sequences import registered  # tests/eval/fake_sequences.py

P = np.array([0.5, 0.2, 0.1, 0.1, 0.1])


@pytest.fixture(scope="module")
def fakes():
    with registered() as found:
        yield found


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    rng = np.random.default_rng(0)
    root = tmp_path_factory.mktemp("seq")
    tokens = [rng.choice(5, size=rng.integers(1, 12), p=P) for _ in range(100)]
    offsets = np.concatenate([[0], np.cumsum([len(s) for s in tokens])])
    np.savez(root / "tokens.npz", values=np.concatenate(tokens), offsets=offsets)
    series = [rng.normal(size=(rng.integers(2, 9), 2)) for _ in range(60)]
    lengths = [len(s) for s in series]
    np.savez(root / "series.npz", values=np.concatenate(series), lengths=lengths)
    words = ["abc", "ab", "ba", "abba", "cab", "b", "aa", "bcb"] * 10
    (root / "words.txt").write_text("\n".join(words) + "\n")
    return root


@pytest.fixture(scope="module")
def runs(fakes, files):
    out = files / "runs"
    run("fit", "test-iid-seq", "--data", str(files / "tokens.npz"), "--out", str(out / "tok"))
    run("fit", "test-iid-seq", "--data", str(files / "series.npz"), "--out", str(out / "ser"))
    run("fit", "test-iid-seq", "--data", str(files / "words.txt"), "--lines", "chars",
        "--out", str(out / "words"))  # fmt: skip
    return out


def _hand(run_dir: Path, split) -> np.ndarray:
    """log p(x, L) of each sequence of ``split``, from the fitted parameters by a loop."""
    model = load_run(run_dir)
    theta, q = np.exp(model.log_theta_), model.q_
    return np.array([
        sum(math.log(theta[int(t)]) for t in s) + (len(s) - 1) * math.log(1 - q) + math.log(q)
        for s in split.sequences
    ])  # fmt: skip


def test_fit_and_eval_print_nll_per_sequence_and_per_step(runs, files):
    data = ptheta.data.load(files / "tokens.npz")
    text = run("eval", str(runs / "tok"), "--split", "test").output
    log_p = _hand(runs / "tok", data.test)
    n_steps = data.test.sequences.n_steps + len(data.test)
    for piece in ("NLL (nats/seq.)", "nats/step", "bits/token", "each sequence's end",
                  f"{-log_p.mean():.2f}", f"{-log_p.sum() / n_steps:.2f}",
                  f"{-log_p.sum() / n_steps / math.log(2):.2f}", f"{n_steps}"):  # fmt: skip
        assert piece in text, piece


def test_score_writes_each_sequences_log_p_and_length(runs, files, tmp_path):
    data = ptheta.data.load(files / "tokens.npz")
    out = tmp_path / "scores.csv"
    assert "the sequence's end included" in run("score", str(runs / "tok"), "--out",
                                                str(out)).output  # fmt: skip
    rows = list(csv.DictReader(out.open()))
    assert [int(r["length"]) for r in rows] == data.test.lengths.tolist()
    got = np.array([float(r["log_prob"]) for r in rows])
    np.testing.assert_allclose(got, _hand(runs / "tok", data.test), rtol=1e-8)


def _all_sequences(data) -> list[tuple]:
    seqs = [s for split in (data.train, data.val, data.test) for s in split.sequences]
    return sorted(tuple(np.round(np.asarray(s, dtype=float), 6).ravel()) for s in seqs)


@pytest.mark.parametrize("suffix", [".npz", ".csv"])
@pytest.mark.parametrize("name", ["tok", "ser"])
def test_sampled_sequences_load_again(runs, tmp_path, name, suffix):
    out = tmp_path / f"samples{suffix}"
    text = run("sample", str(runs / name), "-n", "12", "--seed", "3", "--out", str(out)).output
    assert "steps" in text
    drawn = load_run(runs / name).sample(12, random_state=3)
    back = ptheta.data.load(out)
    assert back.spec.variable_length and back.spec.step_shape == drawn.step_shape
    assert _all_sequences(back) == sorted(
        tuple(np.round(np.asarray(s, dtype=float), 6).ravel()) for s in drawn
    )


def test_sampled_text_is_decoded_one_line_per_sequence(runs, tmp_path):
    out = tmp_path / "words.txt"
    run("sample", str(runs / "words"), "-n", "15", "--out", str(out))
    model = load_run(runs / "words")
    vocab = ptheta.data.load(runs.parent / "words.txt", lines="chars").extra["vocab"]
    expected = ["".join(vocab[t] for t in s) for s in model.sample(15, random_state=0)]
    assert out.read_text().splitlines() == expected
    back = ptheta.data.load(out, lines="chars")
    splits = (back.train, back.val, back.test)
    lines = ["".join(back.extra["vocab"][t] for t in s) for x in splits for s in x.sequences]
    assert sorted(lines) == sorted(expected)


def test_sample_pictures_and_refusals(runs, tmp_path):
    for name in ("tok", "ser", "words"):
        png = tmp_path / f"{name}.png"
        run("sample", str(runs / name), "-n", "40", "--out", str(png))
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = run("sample", str(runs / "tok"), "--out", str(tmp_path / "s.npy"), ok=False).output
    assert "variable-length sequences do not fit one .npy array: use .npz" in text
    text = run("sample", str(runs / "ser"), "--out", str(tmp_path / "s.txt"), ok=False).output
    assert "is not one: use .npz, .csv or .png" in text  # not .npy, refused just above
    assert (runs / "tok" / "samples.png").is_file()  # fit drew its token strips too


def test_a_fixed_shape_family_refuses_ragged_data_in_one_line(fakes, files, tmp_path):
    out = tmp_path / "ind"
    text = run("fit", "independent", "--data", str(files / "tokens.npz"), "--out", str(out),
               ok=False).output  # fmt: skip
    assert "'independent' models examples of one fixed shape" in text
    assert "Traceback" not in text and len(text.strip().splitlines()) <= 3


def test_other_text_is_scored_in_the_vocabulary_of_the_runs_training_text(runs, tmp_path):
    # words.txt has the characters a, b, c; this file only b and c, so read on its own
    # its token 0 would be 'b', which the model knows as token 1
    other = tmp_path / "other.txt"
    other.write_text("\n".join(["bc", "cb", "bbb", "c", "cc", "bcb", "cbc", "b"] * 3) + "\n")
    out = tmp_path / "scores.csv"
    run("score", str(runs / "words"), "--data", str(other), "--lines", "chars",
        "--split", "train", "--out", str(out))  # fmt: skip
    got = np.array([float(r["log_prob"]) for r in csv.DictReader(out.open())])
    mine = ptheta.data.load(other, lines="chars")
    trained = ptheta.data.load(runs.parent / "words.txt", lines="chars").extra["vocab"]
    recoded = [np.array([trained.index(mine.extra["vocab"][t]) for t in s])
               for s in mine.train.sequences]  # fmt: skip
    np.testing.assert_allclose(got, load_run(runs / "words").score_samples(recoded), rtol=1e-8)
    (tmp_path / "new.txt").write_text("ab\nxa\nba\nzz\n")
    text = run("score", str(runs / "words"), "--data", str(tmp_path / "new.txt"), "--lines",
               "chars", "--out", str(out), ok=False).output  # fmt: skip
    assert "'x', 'z'" in text and "Traceback" not in text
