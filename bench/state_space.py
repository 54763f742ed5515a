"""Test NLL per step (nats) of state-space vs continuous baselines on the built-in real series."""

import sys
import time
import warnings

import numpy as np

import ptheta
from ptheta.data.sequences import builtin_series


def windows(name):
    data = builtin_series(name)
    series, starts = np.asarray(data.extra["series"]), data.extra["window_starts"]
    t_len = data.extra["seq_len"]
    return {s: series[np.asarray(starts[s])[:, None] + np.arange(t_len)] for s in starts}


MODELS = [
    ("independent", {}),
    ("gmm", {"n_components": 1}),  # a full Gaussian over the window
    ("markov", {"order": 2, "homogeneous": True}),
    ("state-space", {"latent_dim": 1, "max_iter": 500}),
    ("state-space", {"latent_dim": 2, "max_iter": 500}),
    ("state-space", {"latent_dim": 4, "max_iter": 500}),
]


def fit(model, x):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        model.fit(x)
        return time.perf_counter() - t0


for name in sys.argv[1:] or ("nile", "sunspots", "co2"):
    w = windows(name)
    t_len = w["train"].shape[1]
    held = np.concatenate([w["val"], w["test"]])
    print(f"{name}: train {w['train'].shape}, held-out (val+test) {held.shape}")
    for family, params in MODELS:
        m = ptheta.make(family, **params)
        seconds = fit(m, w["train"])
        nll = -m.score_samples(held) / t_len
        print(
            f"  {family:12s} {params!s:45s} fit {seconds:6.2f}s  "
            f"train {-m.score(w['train']) / t_len:7.3f}  held-out {nll.mean():7.3f} ± "
            f"{nll.std(ddof=1) / np.sqrt(len(nll)):.3f} nats/step  p={m.n_parameters()}"
        )

# data sampled from a known model (k = 2, D = 2, T = 20): the fitted vs the true parameters
truth = ptheta.make("state-space", latent_dim=2, covariance_type="full", max_iter=1)
fit(truth, np.random.default_rng(0).normal(size=(10, 20, 2)))
truth.transition_ = np.array([[0.8, 0.3], [-0.2, 0.7]])
truth.transition_cov_ = np.array([[0.5, 0.1], [0.1, 0.3]])
truth.observation_ = np.array([[1.0, -0.5], [0.4, 1.2]])
truth.observation_offset_ = np.array([3.0, -2.0])
truth.observation_cov_ = np.array([[0.4, 0.15], [0.15, 0.7]])
truth.initial_mean_ = np.array([0.5, -1.0])
truth.initial_cov_ = np.array([[1.0, 0.3], [0.3, 0.6]])
train, test = truth.sample(200, random_state=1), truth.sample(200, random_state=2)
print(f"known model: true parameters, test {-truth.score(test) / 20:.4f} nats/step")
m = ptheta.make("state-space", latent_dim=2, covariance_type="full", max_iter=500)
seconds = fit(m, train)
print(f"  fitted in {seconds:.2f}s ({m.n_iter_} EM steps): test {-m.score(test) / 20:.4f}")
