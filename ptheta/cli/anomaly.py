"""`ptheta anomaly`: how well a model's scores tell anomalies from normal data (ROC AUC)."""

from __future__ import annotations

import io
from pathlib import Path

import click
import numpy as np

from ptheta.cli.common import SEED, CliError, parse_value, print_table, resolve_params
from ptheta.data import load
from ptheta.eval.anomaly import SCENARIOS, anomaly_scenario, detect, fit_for, score_histogram
from ptheta.io import atomic_write_bytes
from ptheta.models import make
from ptheta.runs.fitting import load_run_data
from ptheta.runs.pictures import save_figure
from ptheta.runs.store import load_run

SCORES_CSV = "anomaly_scores.csv"
HISTOGRAM_PNG = "anomaly_hist.png"


def _normal_classes(text: str) -> list:
    classes = [parse_value(c.strip()) for c in text.split(",") if c.strip()]
    if not classes:
        raise CliError(f"--normal takes classes separated by commas (e.g. 0,1,2,3,4), got {text!r}")
    return classes


@click.command("anomaly")
@click.argument("run", required=False, type=click.Path())
@click.option(
    "--fit",
    "fit_model",
    default=None,
    metavar="MODEL",
    help="Fit MODEL here (on the scenario's training data) instead of loading RUN.",
)
@click.option(
    "--set",
    "sets",
    multiple=True,
    metavar="KEY=VALUE",
    help="A hyper-parameter of the --fit model (repeatable).",
)
@click.option(
    "--config",
    "config_file",
    default=None,
    type=click.Path(dir_okay=False),
    help="TOML/JSON file of hyper-parameters for the --fit model.",
)
@click.option(
    "--in-data",
    "--data",
    "in_data",
    default=None,
    metavar="NAME|PATH",
    help="In-distribution data; its test split is scored as normal. Default: the "
    "data set RUN was fitted on (required with --fit).",
)
@click.option(
    "--out-data",
    default=None,
    metavar="NAME|PATH",
    help="Anomalies: every example of this data set or file (same shape and kind).",
)
@click.option(
    "--scenario",
    default=None,
    type=click.Choice(list(SCENARIOS)),
    help="Built-in anomalies made from the in-distribution data instead of "
    "--out-data (held-out-classes needs --fit).",
)
@click.option(
    "--normal",
    default="0,1,2,3,4",
    show_default=True,
    metavar="C1,C2,...",
    help="Normal classes of the held-out-classes scenario.",
)
@click.option(
    "--seed",
    default=0,
    show_default=True,
    type=SEED,
    help="Seed of the noise and permutation scenarios.",
)
@click.option(
    "--out",
    default=None,
    type=click.Path(file_okay=False),
    help=f"Folder for {SCORES_CSV} (one row per example) and {HISTOGRAM_PNG}.",
)
def command(
    run, fit_model, sets, config_file, in_data, out_data, scenario, normal, seed, out
) -> None:
    """Anomaly detection: score normal test data against anomalies and report the ROC AUC.

    The model is either a fitted run (RUN) or fitted here (--fit MODEL --data D). The
    anomalies come from --out-data, or from a built-in --scenario:

    \b
      held-out-classes  fit on some classes (--normal), the other classes are anomalies
      noise             uniform noise of the data's kind
      flipped           images flipped up-down and left-right
      shuffled          each example's pixels randomly permuted

    The score is −log p where the model has a likelihood (exact, a bound or an
    estimate: the table says which), else its energy, else minus a GAN discriminator's
    realness, else the size of a learned score field (score_norm, e.g. ncsn). AUROC =
    the chance that an anomaly scores higher than a normal example (1 perfect, 0.5
    chance).

    \b
    Examples:
      ptheta anomaly runs/cl --scenario shuffled --out reports/anomaly
      ptheta anomaly --fit chow-liu --data digits-binary --scenario held-out-classes
    """
    if (run is None) == (fit_model is None):
        raise CliError("give either a RUN directory or --fit MODEL (one of the two)")
    if (out_data is None) == (scenario is None):
        raise CliError("give either --out-data NAME|PATH or --scenario NAME (one of the two)")
    if run is not None and (sets or config_file):
        raise CliError("--set and --config apply to --fit MODEL, not to a fitted RUN")
    if run is not None:
        if scenario == "held-out-classes":
            raise CliError(
                "held-out-classes needs a model fitted on the normal classes only: use "
                "--fit MODEL --data D --scenario held-out-classes"
            )
        model = load_run(run)
        data = load_run_data(run, in_data)
    else:
        if in_data is None:
            raise CliError("--fit needs --data NAME|PATH: the in-distribution data to fit on")
        params = resolve_params(fit_model, config_file, sets)
        model = make(fit_model, **params)
        data = load(in_data)
    if scenario is not None:
        sc = anomaly_scenario(scenario, data, normal=_normal_classes(normal), random_state=seed)
        data, inliers, outliers, what = sc.data, sc.inliers, sc.outliers, scenario
    else:
        other = load(out_data)
        outliers = np.concatenate([other.train.x, other.val.x, other.test.x])
        inliers, what = data.test.x, other.name
    if run is None:
        model = fit_for(model, data)
    result = detect(model, inliers, outliers)
    written = []
    if out is not None:
        folder = Path(out)
        buf = io.StringIO()
        table = np.column_stack(
            [
                np.r_[np.zeros(result.n_in), np.ones(result.n_out)],
                np.r_[result.in_scores, result.out_scores],
            ]
        )
        np.savetxt(
            buf, table, delimiter=",", header="is_anomaly,score", comments="", fmt=["%d", "%.10g"]
        )
        atomic_write_bytes(folder / SCORES_CSV, buf.getvalue().encode())
        title = f"{model.name}: {data.name} vs {what}, AUROC {result.auroc:.3f}"
        save_figure(score_histogram(result, title), folder / HISTOGRAM_PNG)
        written = [str(folder / SCORES_CSV), str(folder / HISTOGRAM_PNG)]
    print_table(
        f"Anomaly detection with {model.name}",
        ["in-distribution", "anomalies", "score", "AUROC", "n in", "n out"],
        [[data.name, what, result.score_kind, f"{result.auroc:.3f}", result.n_in, result.n_out]],
        caption="AUROC: chance that an anomaly scores higher than a normal test example "
        "(1 perfect, 0.5 chance)." + (f" Written: {', '.join(written)}." if written else ""),
    )
