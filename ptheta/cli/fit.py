"""`ptheta fit`: fit a model on a data set and write a run directory."""

from __future__ import annotations

from pathlib import Path

import click

from ptheta.cli.common import console, data_options, escape, print_table, resolve_params


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
@click.option(
    "--resume",
    is_flag=True,
    help="Finish an interrupted run in --out (same model, parameters and data): neural "
    "models continue from their last checkpoint; a run whose final writes were cut off is "
    "completed; a classical fit that never got saved is fitted again.",
)
@click.option(
    "--no-score",
    is_flag=True,
    help="Do not score the train and validation splits after the fit (`ptheta eval RUN` "
    "scores the run later).",
)
@click.option(
    "--score-rows",
    type=click.IntRange(min=1),
    metavar="N",
    help="Score at most N examples of each split after the fit: a seeded random subset, "
    "whose NLL estimates the split's mean (± its standard error). Default: every example, "
    "or as many as the time left of max_time allows.",
)
@click.option("--quiet", is_flag=True, help="No progress bar.")
def command(
    model, data, data_opts, out, sets, config_file, force,
    resume, no_score, score_rows, quiet,
) -> None:  # fmt: skip
    """Fit MODEL on the training split of --data and write a run directory to --out.

    The run directory holds config.json (model, hyper-parameters, data fingerprint,
    versions), weights.safetensors, metrics.jsonl, samples.png and, written last, the
    COMPLETE marker; `ptheta sample`, `score` and `eval` need nothing else and refuse a
    run without the marker. One process writes a run directory at a time.
    Hyper-parameters: the model's defaults, then --config, then --set (see
    `ptheta models MODEL` for the list).

    Neural models train with the validation split for early stopping, write a checkpoint
    every epoch (and every checkpoint_every steps), and continue after an interruption
    with --resume; --resume finishes an interrupted run of any other family too.

    After the run is written (complete: it loads even if what follows fails), the train
    and validation splits are scored with a progress bar: all of each, at most
    --score-rows N examples (a seeded random subset, said under the table), or none with
    --no-score. With --set max_time=S the budget bounds the whole command: scoring takes
    the time left of S (at least a tenth of S), on a subset sized to it.
    Data-parallel training on several processes: launch the same command with torchrun
    (gloo on CPU, nccl on GPUs; --set batch_size is the global batch, and only rank 0
    writes the run directory).

    \b
    Examples:
      ptheta fit gmm --data toy2d-8gaussians --set n_components=8 --out runs/g8
      ptheta fit made --data digits --set epochs=50 --out runs/made
      ptheta fit made --data digits --set epochs=50 --out runs/made --resume
      ptheta fit ddpm --data digits --set max_time=120 --score-rows 500 --out runs/ddpm
      torchrun --nproc_per_node 2 -m ptheta fit made --data digits --out runs/made2
    """
    from ptheta.data import load
    from ptheta.eval.likelihood import describe_kind
    from ptheta.eval.per_step import END_NOTE, per_step_unit
    from ptheta.runs.fitting import fit_run
    from ptheta.train.distributed import init_from_env, shutdown

    params = resolve_params(model, config_file, sets)
    kwargs = data_opts
    dataset = load(data, **kwargs)
    source = {"source": str(Path(data).resolve()) if Path(data).exists() else data, **kwargs}
    world = init_from_env(str(params.get("device", "auto")))  # torchrun: join the group
    try:
        row = fit_run(model, params, dataset, out, data_source=source, force=force,
                      resume=resume, verbose=not quiet, score_rows=score_rows,
                      score_splits=() if no_score else ("train", "val"))  # fmt: skip
    finally:
        # no barrier here: fit_run met the other processes when training ended, and rank
        # 0 may score for longer than a collective's timeout while the others are done
        shutdown(wait=False)
    if row is None or not world.is_main:
        return
    unit = per_step_unit(dataset.spec)
    columns = ["model", "data", "kind", "n train", "params", "fit time (s)", "NLL train",
               "NLL val", "bits/dim val", "likelihood"]  # fmt: skip
    cells = [row["model"], row["data"], row["kind"], row["n_train"], row["parameters"],
             row["fit_seconds"], row["train_nll"], row["val_nll"], row["val_bpd"],
             describe_kind(row["likelihood"], row["units"])]  # fmt: skip
    caption = "NLL in nats per example (lower is better)."
    if unit is not None:  # variable-length sequences: per sequence and per step
        columns[6:9] = ["NLL train (nats/seq.)", "NLL val (nats/seq.)", "nats/step val",
                        f"{unit} val"]  # fmt: skip
        cells[8:9] = [row.get("val_nll_per_step"), row["val_bpd"]]
        caption = f"NLL per sequence, lower is better; {END_NOTE}."
    notes = list(row.get("score_notes", []))
    if no_score:
        notes.append(f"not scored (--no-score): `ptheta eval {row['run_dir']}` scores the run.")
    caption = "\n".join([caption, *notes])
    print_table(f"Fitted {model} on {dataset.name}", columns, [cells], caption=caption)
    console.print(f"run directory: [bold]{escape(str(row['run_dir']))}[/]", highlight=False)
