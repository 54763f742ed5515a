"""How well max_time bounds a whole `fit_run` (training + the scoring after it), and the
peak memory of DDPM's bound on 28×28 images at the old fixed 8,192 rows per U-Net call and
at the rows sized to the example (bound_rows).

Run: OMP_NUM_THREADS=1 .venv/bin/python bench/fit_budget.py [budget] (timings are noisy on
a shared machine). The memory part runs each setting in a fresh process (max RSS).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time

import numpy as np
from scipy import ndimage

from ptheta.data import Dataset, DataSpec, Split
from ptheta.data import load as load_data
from ptheta.runs.fitting import fit_run
from ptheta.runs.store import read_metrics


def digits28() -> Dataset:
    """The 8×8 digits upsampled to 28×28 and binarised (a stand-in for binarised MNIST)."""
    base = load_data("digits")
    spec = DataSpec("binary", (1, 28, 28), 2)

    def up(part: Split) -> Split:
        x = np.asarray(part.x, dtype=float).reshape(-1, 8, 8) / 16
        big = np.stack([ndimage.zoom(im, 3.5, order=1) for im in x]) > 0.5
        return Split(big.astype(np.int64)[:, None], part.y, spec)

    return Dataset("digits28", spec, up(base.train), up(base.val), up(base.test))


def budget(name: str, params: dict, data: Dataset, max_time: float) -> None:
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        row = fit_run(name, {**params, "max_time": max_time}, data, out,
                      data_source={"source": data.name}, verbose=False)  # fmt: skip
        wall = time.perf_counter() - start
        evals = {r["split"]: r for r in read_metrics(out) if r.get("event") == "eval"}
    scored = {s: f"{r['n']}/{r['n_split']}" for s, r in evals.items()}
    print(f"{name:8s} max_time={max_time:5.0f}s  training {row['fit_seconds']:6.1f}s  "
          f"whole fit_run {wall:6.1f}s  rows scored {scored}  "
          f"val NLL {row['val_nll']:.2f}")  # fmt: skip


MEMORY = """
import json, resource, sys, numpy as np, torch
from ptheta.models import diffusion
from ptheta.models.diffusion import DDPM
torch.set_num_threads(1)
old = sys.argv[1] == "old"
x = (np.random.default_rng(0).random((200, 1, 28, 28)) < 0.3).astype(np.int64)
model = DDPM(20, hidden=64, epochs=1, batch_size=100, device="cpu").fit(x)
if old:  # the fixed 8,192 rows per call, 1,024 examples per chunk
    diffusion.bound_rows = lambda *a, **k: diffusion.BOUND_ROWS
    model.module.bound_rows = lambda: diffusion.BOUND_ROWS
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t = __import__("time").perf_counter()
scores = model.score_samples(x[:64])
peak = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024
seconds = __import__("time").perf_counter() - t
print(json.dumps({"rows": model.module.bound_rows(), "peak_mb": peak, "seconds": seconds,
                  "mean": float(scores.mean())}))
"""


def memory() -> None:
    for setting in ("new", "old"):
        out = subprocess.run([sys.executable, "-c", MEMORY, setting], capture_output=True,
                             text=True, check=True).stdout  # fmt: skip
        r = json.loads(out.strip().splitlines()[-1])
        print(f"ddpm 28x28 bound, {setting} chunking: {r['rows']} rows per U-Net call, peak "
              f"+{r['peak_mb']:.0f} MB, {r['seconds']:.1f} s for 64 images (T=20), mean "
              f"score {r['mean']:.6f}")  # fmt: skip


if __name__ == "__main__":
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 20.0
    data = digits28()
    budget("realnvp", {"device": "cpu"}, load_data("digits"), seconds)
    budget("made", {"device": "cpu"}, data, seconds)
    budget("ddpm", {"timesteps": 200, "device": "cpu"}, data, seconds)
    memory()
