"""Character-level models on short variable-length lines: test NLL per character.

Each line (a word of the built-in ``unicode-words`` corpus, or one line of a text file
given with ``--data FILE.txt``) is one sequence; every model scores p(word, length), its
end included, so the number per character counts the end of each word as one more step
(bits per character in the usual char-LM sense, the newline included).

    .venv/bin/python bench/char_level.py                   # unicode-words, all models
    .venv/bin/python bench/char_level.py --budget 60       # seconds per neural model
    .venv/bin/python bench/char_level.py --data words.txt --only markov,hmm

Prints one row per model: parameters, fit seconds, train and test nats per character,
test bits per character with its standard error (over words), and a few samples.
"""

from __future__ import annotations

import argparse
import math
import time
import warnings

import numpy as np

import ptheta
from ptheta.data import load
from ptheta.data.sequences import decode

MODELS = [
    ("markov", {"order": 1, "homogeneous": True}),
    ("markov", {"order": 2, "homogeneous": True}),
    ("markov", {"order": 3, "homogeneous": True}),
    ("hmm", {"n_states": 16, "max_iter": 50}),
    ("hmm", {"n_states": 32, "max_iter": 50}),
    ("lstm", {}),
    ("transformer", {}),
]


def per_step(model, split) -> tuple[float, float, float]:
    """Nats per step (ends counted), bits per step, standard error of the bits."""
    log_p = model.score_samples(split)
    steps = split.lengths + 1
    nats = float(-log_p.sum() / steps.sum())
    # ratio estimator's standard error over sequences
    per = -log_p / math.log(2.0)
    ratio = per.sum() / steps.sum()
    resid = per - ratio * steps
    se = float(np.sqrt(np.sum(resid**2) / (len(per) - 1) / len(per)) / steps.mean())
    return nats, nats / math.log(2.0), se


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="unicode-words", help="built-in name or .txt file")
    parser.add_argument("--budget", type=float, default=120.0, help="seconds per neural fit")
    parser.add_argument("--only", default="", help="comma-separated family names")
    args = parser.parse_args()

    data = load(args.data, lines="chars") if args.data.endswith(".txt") else load(args.data)
    vocab = data.extra.get("vocab")
    train, test = data.train, data.test
    print(
        f"{data.name}: {len(train)} / {len(data.val)} / {len(test)} sequences, "
        f"{data.spec.describe()}; uniform over {data.n_categories} symbols + end: "
        f"{math.log2(data.n_categories + 1):.3f} bits per step"
    )
    only = {s for s in args.only.split(",") if s}
    for family, params in MODELS:
        if only and family not in only:
            continue
        model = ptheta.make(family, **params)
        if model.capabilities().trains_in_steps:
            model.set_params(max_time=args.budget)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t0 = time.perf_counter()
            if model.capabilities().trains_in_steps:
                model.fit(train, validation_data=data.val)
            else:
                model.fit(train)
            seconds = time.perf_counter() - t0
        tr, _, _ = per_step(model, train)
        te, bits, se = per_step(model, test)
        drawn = model.sample(5, random_state=0)
        words = decode(data, drawn) if vocab is not None else [s.tolist() for s in drawn]
        label = f"{family} {params}" if params else family
        print(
            f"  {label:45s} p={model.n_parameters():>8,d} fit {seconds:7.1f}s  "
            f"train {tr:.3f}  test {te:.3f} nats/char  {bits:.3f} ± {se:.3f} bits/char  "
            f"samples: {', '.join(map(str, words))}"
        )


if __name__ == "__main__":
    main()
