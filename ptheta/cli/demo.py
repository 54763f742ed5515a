"""`ptheta demo`: a quick `ptheta compare` on built-in data, printing its tables."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ptheta.cli.common import console
from ptheta.cli.compare import print_report
from ptheta.data import load
from ptheta.eval.compare import compare, parse_budget
from ptheta.models import REGISTRY

# Model → hyper-parameters for the digits comparison (None: the class's quick_params);
# families not registered in this installation are left out. Small enough that every
# neural model converges usefully within the budget on two CPU cores.
DEMO_MODELS: dict[str, dict[str, Any] | None] = {
    # which dependencies to keep: none, a chain, a tree, a latent class
    "independent": {},
    "markov": {"order": 2},
    "chow-liu": {},
    "gmm": {"n_components": 10, "random_state": 0},
    # an ordering of the pixels and a neural conditional: exact by the chain rule
    # (pixelcnn is left out: its sequential sampler alone takes longer than the budget)
    "made": {"hidden": [256], "lr": 3e-3, "batch_size": 64, "device": "cpu"},
    # a latent variable (IWAE estimate), a flow (dequantisation bound)
    "vae": {"latent_dim": 8, "hidden": [128], "lr": 3e-3, "batch_size": 64, "device": "cpu"},
    "realnvp": {
        "hidden": 32,
        "n_layers": 4,
        "n_dequant_samples": 4,
        "lr": 3e-3,
        "batch_size": 64,
        "device": "cpu",
    },
    # a diffusion bound (a short schedule: scoring costs T network passes per example)
    "ddpm": {"timesteps": 100, "hidden": 32, "lr": 2e-3, "sampler": "ddim", "device": "cpu"},
    # no likelihood at all: judged by its samples (DCGAN-style on the 8×8 images)
    "gan": {"device": "cpu"},
}
DEMO_DATA = "digits"
# Data from a known tree: the true entropy is the floor of any NLL.
DEMO_TRUTH = ("groundtruth-tree", ("independent", "chow-liu"))


@click.command("demo")
@click.option(
    "--out",
    default="runs/demo",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Folder for the demo's reports (one sub-folder per data set).",
)
@click.option(
    "--budget",
    default="10s",
    show_default=True,
    metavar="TIME",
    help="Training time per neural model (e.g. 10s, 1m).",
)
@click.option("--force", is_flag=True, help="Refit every model (otherwise runs are cached).")
def command(out: str, budget: str, force: bool) -> None:
    """Compare the registered families on the 8×8 digits (a quick `ptheta compare`), and
    two models against the true entropy of data from a known tree; print both tables."""
    seconds = parse_budget(budget)
    root = Path(out)
    names = [m for m in DEMO_MODELS if m in REGISTRY]
    params = {m: p for m in names if (p := DEMO_MODELS[m])}
    quick = {m for m in names if DEMO_MODELS[m] is None}
    for data_name, models, kwargs in (
        (DEMO_DATA, names, {"overrides": params, "quick": quick}),
        (DEMO_TRUTH[0], list(DEMO_TRUTH[1]), {}),
    ):
        data = load(data_name)
        console.print(f"[bold]{data.name}[/]: {', '.join(models)}", highlight=False)
        report = compare(
            data, models, root / data.name, budget_seconds=seconds, force=force, n_samples=300,
            log=lambda line: console.print(f"  {line}", highlight=False), **kwargs,
        )  # fmt: skip
        print_report(report, f"ptheta demo: test NLL on {data.name}", root / data.name)
