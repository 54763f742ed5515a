"""`ptheta fit`: fit a model on a data set and write a run directory."""

from __future__ import annotations

from pathlib import Path

import click

from ptheta.cli.common import console, data_kwargs, data_options, print_table, resolve_params
from ptheta.data import load
from ptheta.eval.likelihood import describe_kind
from ptheta.eval.runs import fit_run


@click.command("fit")
@click.argument("model")
@data_options(required=True)
@click.option(
    "--out", required=True, type=click.Path(file_okay=False), help="Run directory to write."
)
@click.option(
    "--set",
    "sets",
    multiple=True,
    metavar="KEY=VALUE",
    help="A hyper-parameter (repeatable), e.g. --set n_components=8. Overrides --config.",
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False),
    help="A .toml or .json file of hyper-parameters (flat, or under [params]).",
)
@click.option("--force", is_flag=True, help="Overwrite --out if it already holds a run.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def command(
    model, data, kind, label_column, image_size, data_seed, out, sets, config_file, force, quiet
) -> None:
    """Fit MODEL on the training split of --data and write a run directory to --out.

    The run directory holds config.json (model, hyper-parameters, data fingerprint,
    versions), weights.safetensors, metrics.jsonl and samples.png; `ptheta sample`,
    `score` and `eval` need nothing else. Hyper-parameters: the model's defaults, then
    --config, then --set (see `ptheta models MODEL` for the list).

    \b
    Example:
      ptheta fit gmm --data toy2d-8gaussians --set n_components=8 --out runs/g8
    """
    params = resolve_params(model, config_file, sets)
    kwargs = data_kwargs(kind, label_column, image_size, data_seed)
    dataset = load(data, **kwargs)
    source = {"source": str(Path(data).resolve()) if Path(data).exists() else data, **kwargs}
    row = fit_run(model, params, dataset, out, data_source=source, force=force, verbose=not quiet)
    print_table(
        f"Fitted {model} on {dataset.name}",
        [
            "model",
            "data",
            "kind",
            "n train",
            "params",
            "fit time (s)",
            "NLL train",
            "NLL val",
            "bits/dim val",
            "likelihood",
        ],
        [
            [
                row["model"],
                row["data"],
                row["kind"],
                row["n_train"],
                row["parameters"],
                row["fit_seconds"],
                row["train_nll"],
                row["val_nll"],
                row["val_bpd"],
                describe_kind(row["likelihood"], row["units"]),
            ]
        ],
        caption="NLL in nats per example (lower is better).",
    )
    console.print(f"run directory: [bold]{row['run_dir']}[/]", highlight=False)
