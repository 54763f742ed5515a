"""Benchmark: ptheta's rbm against scikit-learn's BernoulliRBM, the same PCD training budget.

Both train a Bernoulli RBM with 16 hidden units on digits-binary (train split, 64 visible
units; with --full, the split tiled 10× to 10 000 rows) by persistent contrastive
divergence with one Gibbs step and plain SGD steps (ptheta's ``solver="sgd"``: the classical
update outside the Trainer), the same learning rate, epochs and batch size (one persistent
chain per batch row, as scikit-learn keeps), float32 on both sides. What cannot match:
scikit-learn starts from zero visible biases, ptheta from the base-rate visible biases and
its persistent chains from the data marginals (scikit-learn keeps hidden samples), ptheta
visits the rows in a fresh order each epoch, and ptheta's fit ends by computing log Z
exactly (2^16 hidden states), scikit-learn's computes nothing more. So the number of
gradient steps and Gibbs sweeps is equal, not the iterates: the objectives (the exact mean
test log-likelihood in nats, log Z by enumeration for both, computed outside the timer) are
printed to show what each side bought with its time, and are not expected to be equal.

    .venv-bench/bin/python bench/rbm_vs_sklearn.py [--full] [--epochs 10] [--lr 0.05]
"""

from __future__ import annotations

import itertools

import numpy as np
from harness import Side, compare, console, parser, print_comparison, script_name
from scipy.special import logsumexp
from sklearn.neural_network import BernoulliRBM

import ptheta

H = 16


def exact_log_likelihood(v: np.ndarray, w: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """log p(v) (N,) of the RBM with weights w (H, D), visible biases b (D,) and hidden
    biases c (H,), log Z summed over all 2^H hidden states (float64)."""
    w, b, c, v = (np.asarray(a, dtype=np.float64) for a in (w, b, c, v))
    hidden = np.array(list(itertools.product([0.0, 1.0], repeat=len(c))))  # (2^H, H)
    log_z = logsumexp(hidden @ c + np.logaddexp(0.0, hidden @ w + b).sum(axis=1))
    free = -(v @ b) - np.logaddexp(0.0, v @ w.T + c).sum(axis=1)  # F(v), (N,)
    return -free - log_z


def sides(x: np.ndarray, test: np.ndarray, epochs: int, batch: int, lr: float) -> list[Side]:
    xf = x.astype(np.float32)

    def ours():
        model = ptheta.make(
            "rbm", n_hidden=H, method="pcd", gibbs_steps=1, n_chains=batch, epochs=epochs,
            batch_size=batch, lr=lr, solver="sgd", validation_fraction=0.0,
            dtype="float32", device="cpu", random_state=0,
        )  # fmt: skip
        return model.fit(x)

    def theirs():
        model = BernoulliRBM(
            n_components=H, learning_rate=lr, batch_size=batch, n_iter=epochs, random_state=0
        )
        return model.fit(xf)

    def sklearn_ll(model) -> float:
        w, b, c = model.components_, model.intercept_visible_, model.intercept_hidden_
        return float(exact_log_likelihood(test, w, b, c).mean())

    return [
        Side("ptheta rbm (PCD, SGD)", ours, objective=lambda m: m.score(test)),
        Side("scikit-learn BernoulliRBM (PCD, SGD)", theirs, objective=sklearn_ll),
    ]


def check_formula(test: np.ndarray) -> None:
    """The exact log-likelihood above agrees with ptheta's own on a fitted ptheta RBM."""
    model = ptheta.make("rbm", n_hidden=H, epochs=1, dtype="float64", device="cpu").fit(test)
    net = model.module
    ours = exact_log_likelihood(
        test, net.W.detach().numpy(), net.b.detach().numpy(), net.c.detach().numpy()
    )
    gap = float(np.abs(ours - model.score_samples(test)).max())
    assert gap < 1e-8, f"exact log-likelihood formula disagrees with ptheta's: {gap:.2e}"
    console.print(f"exact log-likelihood formula checked against ptheta's rbm: |Δ| ≤ {gap:.1e}")


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=0.05)
    args = p.parse_args()
    data = ptheta.datasets.load("digits-binary")
    x, test = data.train.x, data.test.x
    if args.full:
        x = np.tile(x, (10, 1))
    check_formula(test)
    for threads in args.threads:
        result = compare(
            f"rbm H={H} PCD-1, {x.shape[0]:,} × {x.shape[1]}, {args.epochs} epochs, "
            f"batch {args.batch}, lr {args.lr}",
            sides(x, test, args.epochs, args.batch, args.lr),
            threads=threads,
            script=script_name(__file__),
            rounds=args.rounds,
            warmup=args.warmup,
            objective="test log-lik (nats, exact)",
            rtol=None,
            params={
                "shape": list(x.shape),
                "epochs": args.epochs,
                "batch": args.batch,
                "lr": args.lr,
                "note": "both SGD; initial biases and visiting order differ",
            },
            record=args.record,
        )
        print_comparison(result)


if __name__ == "__main__":
    main()
