"""Benchmark: synthetic-table quality of ptheta's table models against SDV's
GaussianCopulaSynthesizer and CTGAN on the same real tables (issue 17).

Data (offline): scikit-learn's diabetes table unscaled (442 × 11: age, sex, body
measurements, the disease progression) and a simulated census-like table (5,000 rows;
20,000 with --full: region, ordinal education, age, income, married, children, with
dependencies and 5% missing income) whose dependencies the metrics should see.

Protocol: each table is shuffled (seed 0) and split 50 / 25 / 25 into train, holdout and
reference rows. Every synthesizer fits the training rows and samples as many rows as the
reference part has; the reference rows themselves are the "real (reference)" line — a
perfect generator, so its numbers are the noise floor of each metric at that size. Every
line is scored by ``ptheta.eval.synth.synth_report`` against the same training and
holdout rows: column fidelity (mean KS / TV, 0 best), pair association difference (mean
|Δ|, 0 best), detection AUC of logistic regression and gradient boosting (5-fold, 0.5
best), the share of synthetic rows closer to training than the holdout's 5th percentile
(≈ the holdout's own share: no copying), and ptheta's held-out log-likelihood per row
(SDV exposes none). Fit and sample times are wall-clock seconds with every thread pool
pinned to --threads (both sides). SDV's models take their column types from the same
schema (label columns categorical, counts and reals numerical). CTGAN trains --ctgan-epochs
epochs (default 50 here, 300 with --full; its own default is 300).

    .venv-bench/bin/python bench/synth_vs_sdv.py [--full] [--threads 1] [--no-ctgan]

Peers only in .venv-bench: ``.venv-bench/bin/pip install -c constraints.txt sdv``.
"""

from __future__ import annotations

import argparse
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from harness import append_record, load_average, machine, pinned, script_name
from rich.console import Console
from rich.table import Table
from sklearn.datasets import load_diabetes

import ptheta
from ptheta.data.spec import Split
from ptheta.data.table import LABEL_TYPES, decode, infer_schema, table_dataset
from ptheta.eval.synth import synth_report
from ptheta.models import REGISTRY

console = Console(width=170)
SEED = 0


# --------------------------------------------------------------------------- data
def census(n: int, seed: int = 0) -> pd.DataFrame:
    """A simulated census-like table with dependencies across every type of column."""
    rng = np.random.default_rng(seed)
    region = rng.choice(
        ["north", "south", "east", "west", "centre"], n, p=[0.3, 0.25, 0.2, 0.15, 0.1]
    )
    age = rng.integers(18, 80, n)
    edu_p = np.where((region == "centre")[:, None], [0.1, 0.3, 0.3, 0.3], [0.3, 0.4, 0.2, 0.1])
    education = np.array([rng.choice(4, p=p) for p in edu_p])
    log_income = 9.5 + 0.35 * education + 0.02 * np.minimum(age, 55) + rng.normal(0, 0.4, n)
    income = np.round(np.exp(log_income), 2)
    income[rng.random(n) < 0.05] = np.nan
    married = rng.random(n) < 1 / (1 + np.exp(-(age - 35) / 6))
    children = np.where(married, rng.poisson(1.8, n), rng.poisson(0.2, n))
    levels = np.array(["none", "school", "college", "degree"])
    return pd.DataFrame({
        "region": region, "education": levels[education], "age": age, "income": income,
        "married": np.where(married, "yes", "no"), "children": children,
    })  # fmt: skip


SCHEMAS = {
    "census": [
        {"name": "education", "type": "ordinal", "levels": ["none", "school", "college", "degree"]},
        {"name": "income", "type": "continuous", "lower": 0},
    ],
}


def tables(full: bool) -> dict[str, pd.DataFrame]:
    diabetes = load_diabetes(as_frame=True, scaled=False).frame
    return {"diabetes": diabetes, "census": census(20_000 if full else 5_000)}


# --------------------------------------------------------------------------- sides
def sdv_frame(frame: pd.DataFrame, columns: Any) -> pd.DataFrame:
    """A decoded table in plain dtypes: labels as text, counts as int (float with NaN)."""
    out = {}
    for col in columns:
        v = frame[col.name]
        if col.type in LABEL_TYPES:
            out[col.name] = v.astype(object).where(v.notna(), np.nan)
        elif col.type == "count":
            out[col.name] = v.astype("float64") if v.isna().any() else v.astype("int64")
        else:
            out[col.name] = v.astype("float64")
    return pd.DataFrame(out)


def sdv_metadata(columns: Any) -> Any:
    from sdv.metadata import Metadata

    spec = {}
    for col in columns:
        if col.type in LABEL_TYPES:
            spec[col.name] = {"sdtype": "categorical"}
        else:  # SDV learns rounding (counts stay whole) and the range from the data
            spec[col.name] = {"sdtype": "numerical"}
    return Metadata.load_from_dict({"tables": {"table": {"columns": spec}}})


def sdv_side(kind: str, epochs: int) -> Callable[..., tuple[pd.DataFrame, float, float, None]]:
    def run(train: pd.DataFrame, columns: Any, n: int) -> tuple[pd.DataFrame, float, float, None]:
        from sdv.single_table import CTGANSynthesizer, GaussianCopulaSynthesizer

        metadata = sdv_metadata(columns)
        if kind == "copula":
            model = GaussianCopulaSynthesizer(metadata)
        else:
            model = CTGANSynthesizer(metadata, epochs=epochs, enable_gpu=False)
        frame = sdv_frame(train, columns)
        start = time.perf_counter()
        model.fit({"table": frame})  # SDV 2: a single table is a dict of one table
        fit_s = time.perf_counter() - start
        start = time.perf_counter()
        rows = model.sample(n)
        rows = rows["table"] if isinstance(rows, dict) else rows
        return rows, fit_s, time.perf_counter() - start, None

    return run


def ptheta_side(name: str) -> Callable[..., tuple[Any, float, float, Any]]:
    def run(train_x: Split, columns: Any, n: int) -> tuple[Any, float, float, Any]:
        model = ptheta.make(name)
        start = time.perf_counter()
        model.fit(train_x)
        fit_s = time.perf_counter() - start
        start = time.perf_counter()
        rows = model.sample(n, random_state=SEED)
        return rows, fit_s, time.perf_counter() - start, model

    return run


def table_models() -> list[str]:
    """ptheta's registered models that fit a whole table (no labels needed)."""
    out = []
    for name in REGISTRY:
        caps = REGISTRY[name]().capabilities()
        if caps.fits("table") and not caps.needs_labels:
            out.append(name)
    return out


# --------------------------------------------------------------------------- main
def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--full", action="store_true", help="20,000 census rows; CTGAN 300 epochs")
    p.add_argument("--threads", type=int, default=1, help="thread pools of both sides")
    p.add_argument("--ctgan-epochs", type=int, default=None)
    p.add_argument("--no-ctgan", action="store_true")
    p.add_argument("--only", default=None, help="one table: diabetes or census")
    p.add_argument("--no-record", dest="record", action="store_false")
    args = p.parse_args()
    epochs = args.ctgan_epochs or (300 if args.full else 50)
    warnings.filterwarnings("ignore")
    peers: dict[str, Callable[..., Any]] = {"SDV GaussianCopula": sdv_side("copula", epochs)}
    if not args.no_ctgan:
        peers[f"SDV CTGAN ({epochs} epochs)"] = sdv_side("ctgan", epochs)
    ours = {f"ptheta {name}": ptheta_side(name) for name in table_models()}
    for data_name, frame in tables(args.full).items():
        if args.only and data_name != args.only:
            continue
        schema = SCHEMAS.get(data_name)
        columns = infer_schema(frame, schema)
        data = table_dataset(frame, name=data_name, schema=schema, seed=SEED)
        x = np.concatenate([data.train.x, data.val.x, data.test.x])  # shuffled rows
        n_train, n_hold = len(x) // 2, len(x) // 4
        train, hold, ref = x[:n_train], x[n_train : n_train + n_hold], x[n_train + n_hold :]
        train_frame = decode(train, columns)
        lines: list[dict[str, Any]] = []
        with pinned(args.threads):
            load_before = load_average()
            runs = [("real (reference)", lambda *a, rows=ref: (rows, 0.0, 0.0, None))]
            runs += [(k, v) for k, v in ours.items()] + list(peers.items())
            for label, side in runs:
                given = train_frame if label.startswith("SDV") else Split(train, None, data.spec)
                try:
                    rows, fit_s, sample_s, model = side(given, columns, len(ref))
                except Exception as e:  # a peer's failure is a line, not the end
                    console.print(f"{data_name}: {label} failed: {type(e).__name__}: {e}")
                    continue
                report = synth_report(train, hold, rows, columns, model=model, seed=SEED)
                ll = report["likelihood"]
                lines.append({
                    "method": label,
                    "fit_s": fit_s if not label.startswith("real") else None,
                    "sample_s": sample_s if not label.startswith("real") else None,
                    "column_fidelity": report["column_fidelity"],
                    "pair_diff": report["pairs"]["mean_abs_diff"],
                    "auc_logistic": report["detection"]["logistic"]["auc"],
                    "auc_boosting": report["detection"]["boosting"]["auc"],
                    "dcr_share": report["dcr"]["share_synthetic"],
                    "dcr_share_holdout": report["dcr"]["share_holdout"],
                    "dcr_median_ratio": report["dcr"]["median_ratio"],
                    "heldout_ll": None if ll is None else ll["mean"],
                    "heldout_ll_se": None if ll is None else ll["std_err"],
                })  # fmt: skip
        result = {
            "comparison": f"synthetic {data_name}: {data.spec.describe()}",
            "n_train": len(train), "n_holdout": len(hold), "n_synthetic": len(ref),
            "threads": args.threads, "ctgan_epochs": epochs, "lines": lines,
            "load": [load_before, load_average()], "machine": machine(),
        }  # fmt: skip
        show(result)
        if args.record:
            append_record(script_name(__file__), result)


def _f(value: float | None, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def show(result: dict[str, Any]) -> None:
    table = Table(title=f"{result['comparison']} — {result['n_train']} train, "
                  f"{result['n_holdout']} holdout, {result['n_synthetic']} synthetic rows, "
                  f"{result['threads']} thread(s)", title_justify="left")  # fmt: skip
    heads = ["method", "fit s", "sample s", "col. fidelity ↓", "pair |Δ| ↓", "AUC logistic",
             "AUC boosting", "DCR share (holdout)", "held-out LL / row"]  # fmt: skip
    for h in heads:
        table.add_column(h, justify="left" if h == "method" else "right")
    for r in result["lines"]:
        ll = "—" if r["heldout_ll"] is None else f"{r['heldout_ll']:.3f} ± {r['heldout_ll_se']:.3f}"
        table.add_row(
            r["method"], _f(r["fit_s"], 2), _f(r["sample_s"], 2), _f(r["column_fidelity"]),
            _f(r["pair_diff"]), _f(r["auc_logistic"]), _f(r["auc_boosting"]),
            f"{r['dcr_share']:.1%} ({r['dcr_share_holdout']:.1%})", ll,
        )  # fmt: skip
    console.print(table)


if __name__ == "__main__":
    main()
