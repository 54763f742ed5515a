"""Classical families under torchrun: each process sums statistics over its share of the
batches, the sums are all-reduced, and the model equals the one a single process fits."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from safetensors.numpy import load_file

FAMILIES = {
    "chow-liu": [],
    "naive-bayes": [],
    "gmm": ["--set", "n_components=2", "--set", "max_iter=20"],
}


def _env() -> dict[str, str]:
    # small batches, so that each process reads several of them
    return {**os.environ, "OMP_NUM_THREADS": "1", "PTHETA_BATCH_BYTES": "4096"}


def _data(tmp_path, name: str):
    rng = np.random.default_rng(0)
    n = 400
    y = rng.integers(0, 2, size=n)
    if name == "gmm":
        x = rng.normal(size=(n, 3)) + 3.0 * y[:, None]
    else:
        first = (rng.random(n) < np.where(y == 1, 0.8, 0.2)).astype(np.int64)
        x = np.stack([first, first ^ (rng.random(n) < 0.1), rng.integers(0, 2, n)], axis=1)
    path = tmp_path / "data.npz"
    np.savez(path, x=x, y=y)
    return path


@pytest.mark.skipif(sys.platform != "linux", reason="torchrun with gloo is tested on Linux")
@pytest.mark.parametrize("name", list(FAMILIES))
def test_two_cpu_processes_fit_the_model_of_one(name, tmp_path):
    data = _data(tmp_path, name)
    fit = ["fit", name, "--data", str(data), "--quiet", *FAMILIES[name]]
    single = subprocess.run(
        [sys.executable, "-m", "ptheta", *fit, "--out", str(tmp_path / "one")],
        capture_output=True, text=True, env=_env(), timeout=300, check=False,
    )  # fmt: skip
    assert single.returncode == 0, single.stderr
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                "--nproc_per_node", "2", "-m", "ptheta"]  # fmt: skip
    ddp = subprocess.run(
        [*launcher, *fit, "--out", str(tmp_path / "two")],
        capture_output=True, text=True, env=_env(), timeout=300, check=False,
    )  # fmt: skip
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    one = load_file(tmp_path / "one" / "weights.safetensors")
    two = load_file(tmp_path / "two" / "weights.safetensors")
    assert one.keys() == two.keys()
    for key in one:  # counts exactly; EM's float sums to rounding
        np.testing.assert_allclose(two[key], one[key], rtol=1e-9, atol=1e-12, err_msg=key)
    assert '"processes": 2' in (tmp_path / "two" / "config.json").read_text()
    assert ddp.stdout.count(name) >= 1
