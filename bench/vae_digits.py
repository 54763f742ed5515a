"""Benchmark: VAEs on digits (17 levels, standard split), and training throughput vs pythae.

Part 1: the MLP and conv VAEs (categorical decoder) train under the same wall-clock budget
(``--budget`` seconds each) with early stopping on validation; the table gives test −ELBO
and −IWAE_k in nats (k = ``--k``, lowered to what fits in about a minute). Target:
−ELBO ≤ 95 nats (the book code's VAE: ≈ 100.5 on validation).

Part 2 (first): training time of ptheta's VAE vs pythae's VAE with the same MLP
architecture (parameter counts printed), batch size, learning rate and number of epochs,
through bench/harness.py (threads pinned, warm-up, interleaved rounds); next to each time
the −ELBO per training example after training. pythae has no categorical decoder, so both
run on digits-binary with a Bernoulli decoder (pythae: reconstruction_loss="bce"). Target:
ptheta ≥ 1.2× pythae. pythae is only in the bench environment:

    .venv-bench/bin/python bench/vae_digits.py --budget 300 [--skip-quality] [--epochs 5]
"""

from __future__ import annotations

import tempfile
import time
import warnings

import numpy as np
import torch
from harness import Side, compare, console, parser, print_comparison, script_name
from rich.console import Console
from rich.table import Table

import ptheta

MODELS = {
    "vae-mlp": {"latent_dim": 16, "hidden": [512, 256], "architecture": "mlp"},
    "vae-conv": {"latent_dim": 16, "hidden": [32, 32], "architecture": "conv"},
}
TRAIN = {
    "lr": 1e-3,
    "batch_size": 64,
    "epochs": 1000,
    "patience": 30,
    "iwae_samples": 20,
    "device": "cpu",
}


def _largest_k(model, x, k_max: int, seconds: float = 60.0) -> int:
    """The largest k ≤ k_max whose IWAE on x should take about ``seconds``."""
    start = time.perf_counter()
    model.module.k = 50
    model.score_samples(x)
    per_sample = (time.perf_counter() - start) / 50
    return int(min(k_max, max(50, seconds / per_sample)))


def quality(args, console: Console) -> None:
    data = ptheta.datasets.load("digits")
    table = Table(title=f"digits (17 levels), test set, {args.budget:.0f} s budget per model")
    for col in ("model", "−ELBO (nats)", "−IWAE_k (nats)", "k", "KL", "active units",
                "epochs", "train s", "params"):  # fmt: skip
        table.add_column(col, justify="right")
    for name, params in MODELS.items():
        model = ptheta.make("vae", **params, **TRAIN, max_time=args.budget)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit(data.train, validation_data=data.val)
        elbo = -model.elbo(data.test).mean()
        k = _largest_k(model, data.test, args.k)
        model.module.k = k
        iwae = -model.score(data.test)
        table.add_row(name, f"{elbo:.2f}", f"{iwae:.2f}", str(k), f"{model.kl_:.2f}",
                      str(model.active_units_), str(len(model.history_)),
                      f"{model.train_seconds_:.0f}", f"{model.n_parameters():,}")  # fmt: skip
    console.print(table)


def _pythae_vae(latent: int):
    """pythae's VAE with the same MLP as ptheta's: a 128-512-256-(2·latent) encoder of the
    one-hot pixels (64 × 2, as ptheta encodes binary data), a latent-256-512-64 Bernoulli
    decoder (sigmoid outputs, BCE loss)."""
    from pythae.models import VAE as PythaeVAE
    from pythae.models import VAEConfig
    from pythae.models.base.base_utils import ModelOutput
    from pythae.models.nn import BaseDecoder, BaseEncoder

    class Encoder(BaseEncoder):
        def __init__(self) -> None:
            super().__init__()
            self.net = torch.nn.Sequential(
                torch.nn.Linear(128, 512), torch.nn.ReLU(), torch.nn.Linear(512, 256),
                torch.nn.ReLU(), torch.nn.Linear(256, 2 * latent),
            )  # fmt: skip

        def forward(self, x):
            x = x.reshape(len(x), -1)
            onehot = torch.stack([1 - x, x], dim=-1).reshape(len(x), -1)  # as ptheta's input
            mean, logvar = self.net(onehot).chunk(2, dim=1)
            return ModelOutput(embedding=mean, log_covariance=logvar)

    class Decoder(BaseDecoder):
        def __init__(self) -> None:
            super().__init__()
            self.net = torch.nn.Sequential(
                torch.nn.Linear(latent, 256), torch.nn.ReLU(), torch.nn.Linear(256, 512),
                torch.nn.ReLU(), torch.nn.Linear(512, 64), torch.nn.Sigmoid(),
            )  # fmt: skip

        def forward(self, z):
            return ModelOutput(reconstruction=self.net(z).reshape(len(z), 1, 8, 8))

    config = VAEConfig(input_dim=(1, 8, 8), latent_dim=latent, reconstruction_loss="bce")
    return PythaeVAE(config, encoder=Encoder(), decoder=Decoder())


def _pythae_fit(x: np.ndarray, epochs: int, batch_size: int, latent: int):
    from pythae.data.datasets import BaseDataset
    from pythae.trainers import BaseTrainer, BaseTrainerConfig

    torch.manual_seed(0)
    model = _pythae_vae(latent)
    with tempfile.TemporaryDirectory() as out:
        trainer_config = BaseTrainerConfig(
            output_dir=out, num_epochs=epochs, learning_rate=1e-3,
            per_device_train_batch_size=batch_size, per_device_eval_batch_size=batch_size,
            no_cuda=True, steps_saving=None, steps_predict=None,
        )  # fmt: skip
        images = torch.as_tensor(x.reshape(-1, 1, 8, 8), dtype=torch.float32)
        dataset = BaseDataset(images, torch.zeros(len(x)))
        trainer = BaseTrainer(model, dataset, None, training_config=trainer_config)
        trainer.train()
    return trainer.model


def _pythae_neg_elbo(model, x: np.ndarray) -> float:
    """pythae's loss on all of x: the one-sample −ELBO per example (BCE + KL, nats)."""
    images = torch.as_tensor(x.reshape(-1, 1, 8, 8), dtype=torch.float32)
    torch.manual_seed(0)
    with torch.no_grad():
        return float(model.eval()({"data": images}).loss)


def throughput(args, console: Console) -> None:
    """Training time of the same epochs, batch size and learning rate (Adam, constant,
    no clipping; ptheta without a validation hold-out), through bench/harness.py. The
    objective is each side's −ELBO per training example (nats) after training."""
    data = ptheta.datasets.load("digits-binary")
    x, epochs, batch, latent = data.train.x, args.epochs, 64, 16

    def ours():
        model = ptheta.make(
            "vae", latent_dim=latent, hidden=[512, 256], epochs=epochs, batch_size=batch,
            lr=1e-3, schedule="constant", grad_clip=None, validation_fraction=0,
            patience=None, device="cpu", random_state=0,
        )  # fmt: skip
        return model.fit(x)

    sides = [Side("ptheta vae (mlp)", ours, objective=lambda m: -float(m.elbo(x).mean()))]
    try:
        sides[0].info["params"] = f"{ours().n_parameters():,}"
        peer_params = sum(p.numel() for p in _pythae_vae(latent).parameters())
        sides.append(
            Side(
                "pythae VAE",
                lambda: _pythae_fit(x, epochs, batch, latent),
                objective=lambda m: _pythae_neg_elbo(m, x),
                info={"params": f"{peer_params:,}"},
            )
        )
    except ImportError:
        console.print("[yellow]pythae is not installed (make bench-setup); comparison skipped")
        return
    for threads in args.threads:
        result = compare(
            f"vae MLP (64×2 one-hot)-512-256-{latent}, digits-binary {x.shape[0]:,} rows, {epochs} "
            f"epochs, batch {batch}",
            sides,
            threads=threads,
            script=script_name(__file__),
            rounds=args.rounds,
            warmup=args.warmup,
            objective="train −ELBO (nats)",
            rtol=None,
            params={"epochs": epochs, "batch": batch, "latent": latent},
            record=args.record,
        )
        print_comparison(result)
    console.print("target: ptheta ≥ 1.2× pythae (peer / ptheta ≥ 1.2)")


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--budget", type=float, default=300.0, help="seconds per model")
    p.add_argument("--k", type=int, default=5000, help="importance samples (at most)")
    p.add_argument("--epochs", type=int, default=5, help="epochs of the speed test")
    p.add_argument("--skip-quality", action="store_true")
    args = p.parse_args()
    throughput(args, console)
    if not args.skip_quality:
        quality(args, console)


if __name__ == "__main__":
    main()
