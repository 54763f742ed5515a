"""`ptheta eval`: NLL of a fitted run on each split, in nats and bits/dim, with its kind."""

from __future__ import annotations

import click

from ptheta.cli.common import POSITIVE, console, data_options, print_table


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
@click.option(
    "--score-rows",
    type=click.IntRange(min=1),
    default=None,
    metavar="N",
    help="Score at most N examples of each split, a seeded random subset (said under the "
    "table; the NLL is then an estimate of the split's mean, with its standard error).",
)
@click.option(
    "--max-time",
    type=POSITIVE,
    default=None,
    metavar="SECONDS",
    help="Score for about SECONDS in all (once the run and data are loaded), shared equally "
    "by the splits: each split's rows in a seeded random order until its share is spent, "
    "and at least two rows (said under the table, with the standard error). For slow "
    "scorers: an ODE family on 28×28 images takes seconds per row.",
)
@click.option("--quiet", is_flag=True, help="No progress bar while scoring.")
def command(run, data, data_opts, splits, score_rows, max_time, quiet) -> None:
    """Evaluate the fitted model in RUN: NLL in nats per example and bits per dimension.

    A model of variable-length sequences gets NLL per sequence, per step (nats/step) and
    bits per step (bits/token for tokens); each sequence's end counts as one step, since
    the model scores where a sequence stops.

    The likelihood column says what the number is: exact, a bound (the true NLL is at
    most this), or an estimate; "density" marks a continuous log-density, comparable only
    with other densities of the same data.
    """
    from ptheta.eval.likelihood import describe_kind, describe_solver
    from ptheta.eval.per_step import END_NOTE, per_step_unit
    from ptheta.runs.fitting import describe_subset, evaluate_run, load_run_data
    from ptheta.runs.store import load_run, read_config

    model = load_run(run)
    dataset = load_run_data(
        run,
        data,
        **data_opts,
    )
    rows = evaluate_run(model, dataset, list(splits) or ["train", "val", "test"],
                        rows=score_rows, seconds=max_time, verbose=not quiet)  # fmt: skip
    fitted_on = read_config(run).get("data", {}).get("fingerprint")
    same = fitted_on == dataset.fingerprint()
    notes = [] if same else ["note: this is not the data the model was fitted on."]
    notes += [n for r in rows if (n := describe_subset(r, r["split"])) is not None]
    unit = per_step_unit(model.fitted_spec)
    if unit is None:
        columns = ["split", "n", "NLL (nats)", "± s.e.", "bits/dim", "likelihood"]
        cells = [[r["split"], r["n"], r["nll_nats"], r["std_err"], r["bits_per_dim"]] for r in rows]
    else:  # variable-length sequences: per sequence, and per step with each end a step
        columns = ["split", "n", "steps", "NLL (nats/seq.)", "± s.e.", "nats/step", unit,
                   "likelihood"]  # fmt: skip
        cells = [[r["split"], r["n"], r.get("n_steps"), r["nll_nats"], r["std_err"],
                  r.get("nll_per_step"), r["bits_per_dim"]] for r in rows]  # fmt: skip
        notes.insert(0, f"steps: Σ lengths + one end per sequence; {END_NOTE}.")
    print_table(
        f"{model.name} on {dataset.name}",
        columns,
        [
            [*c, describe_kind(r["likelihood"], r["units"])]
            for c, r in zip(cells, rows, strict=True)
        ],
        caption="\n".join(notes) or None,
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
