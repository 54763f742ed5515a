"""`ptheta eval`: NLL of a fitted run on each split, in nats and bits/dim, with its kind."""

from __future__ import annotations

import click

from ptheta.cli.common import console, data_options, print_table


@click.command("eval")
@click.argument("run", type=click.Path())
@data_options(required=False)
@click.option(
    "--split",
    "splits",
    multiple=True,
    type=click.Choice(["train", "val", "test"]),
    help="Splits to evaluate (repeatable). Default: all three.",
)
def command(run, data, data_opts, splits) -> None:
    """Evaluate the fitted model in RUN: NLL in nats per example and bits per dimension.

    The likelihood column says what the number is: exact, a bound (the true NLL is at
    most this), or an estimate; "density" marks a continuous log-density, comparable only
    with other densities of the same data.
    """
    from ptheta.eval.likelihood import describe_kind, describe_solver
    from ptheta.runs.fitting import evaluate_run, load_run_data
    from ptheta.runs.store import load_run, read_config

    model = load_run(run)
    dataset = load_run_data(
        run,
        data,
        **data_opts,
    )
    rows = evaluate_run(model, dataset, list(splits) or ["train", "val", "test"])
    fitted_on = read_config(run).get("data", {}).get("fingerprint")
    same = fitted_on == dataset.fingerprint()
    print_table(
        f"{model.name} on {dataset.name}",
        ["split", "n", "NLL (nats)", "± s.e.", "bits/dim", "likelihood"],
        [
            [
                r["split"],
                r["n"],
                r["nll_nats"],
                r["std_err"],
                r["bits_per_dim"],
                describe_kind(r["likelihood"], r["units"]),
            ]
            for r in rows
        ],
        caption=None if same else "note: this is not the data the model was fitted on.",
    )
    caps = model.capabilities()
    if not caps.has_likelihood:
        console.print(
            f"{model.name} has no likelihood, so there is no NLL to report; compare its "
            "samples with `ptheta compare` (sample metrics)"
            + (", and score anomalies with `ptheta anomaly`" if caps.anomaly_score else ""),
            highlight=False,
        )
    solver = describe_solver(rows[-1]) if rows else None
    if solver is not None:
        console.print(solver, highlight=False)
    if dataset.entropy is not None:
        console.print(
            f"true entropy of the generating distribution: {dataset.entropy:.4f} nats "
            "(the floor of any model's expected NLL)",
            highlight=False,
        )
