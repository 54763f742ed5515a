"""`ptheta demo`: fit a few models on built-in data and print one comparison table."""

from __future__ import annotations

import shutil
from pathlib import Path

import click

from ptheta.cli.common import console, print_table
from ptheta.data import load
from ptheta.eval.likelihood import describe_kind, nll_summary
from ptheta.eval.runs import fit_run
from ptheta.train.rundir import load_run

# (data set, model, hyper-parameters): small enough to run in seconds on two CPU cores.
DEMO_RUNS: list[tuple[str, str, dict]] = [
    # which dependencies to keep: none, a chain, a tree, a latent class
    ("digits-binary", "independent", {}),
    ("digits-binary", "markov", {"order": 2}),
    ("digits-binary", "chow-liu", {}),
    ("digits-binary", "bernoulli-mixture", {"n_components": 10, "random_state": 0}),
    ("digits-binary", "naive-bayes", {}),
    ("digits", "independent", {}),
    ("digits", "chow-liu", {}),
    ("digits", "gmm", {"n_components": 10, "random_state": 0}),
    # an ordering of the pixels and a neural conditional: exact by the chain rule
    (
        "digits",
        "pixelcnn",
        {
            "channels": 32,
            "n_layers": 5,
            "lr": 3e-3,
            "batch_size": 32,
            "max_time": 30,
            "device": "cpu",
        },
    ),
    # data from a known tree: the true entropy is the floor of any NLL
    ("groundtruth-tree", "independent", {}),
    ("groundtruth-tree", "chow-liu", {}),
    ("toy2d-8gaussians", "independent", {}),
    ("toy2d-8gaussians", "gmm", {"n_components": 8, "random_state": 0}),
]


@click.command("demo")
@click.option(
    "--out",
    default="runs/demo",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Folder for the demo's run directories (overwritten).",
)
def command(out: str) -> None:
    """Fit a few models on built-in data, write their runs and sample pictures, and
    print one table of test NLL (nats, bits/dim) with each number's kind."""
    root = Path(out)
    rows = []
    for data_name, model_name, params in DEMO_RUNS:
        data = load(data_name)
        run_dir = root / f"{data_name}-{model_name}"
        if run_dir.exists():
            shutil.rmtree(run_dir)
        console.print(f"fitting [bold]{model_name}[/] on {data_name} …", highlight=False)
        row = fit_run(
            model_name, params, data, run_dir, data_source={"source": data_name}, verbose=False
        )
        test = nll_summary(load_run(run_dir), data.test.x)
        rows.append(
            [
                data_name,
                model_name,
                describe_kind(test["likelihood"], test["units"]),
                test["nll_nats"],
                test["std_err"],
                test["bits_per_dim"],
                row["parameters"],
                row["fit_seconds"],
                data.entropy,
            ]
        )
    print_table(
        "ptheta demo: test NLL on built-in data",
        [
            "data",
            "model",
            "likelihood",
            "NLL test (nats)",
            "± s.e.",
            "bits/dim",
            "params",
            "fit time (s)",
            "true entropy",
        ],
        rows,
        caption="Lower NLL is better. 'bound' is a dequantisation bound on the discrete NLL "
        "(the true NLL is at most this); 'density' rows are continuous log-densities, "
        "comparable only with each other and with the true entropy of that data set.",
    )
    console.print(f"runs and sample pictures (samples.png) in [bold]{root}/[/]", highlight=False)
