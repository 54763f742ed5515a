"""Summary of every peer comparison: one table of the latest ratio of each workload.

Reads ``bench/results/*.jsonl`` (written by bench/harness.py) and keeps, for each script,
workload and thread count, the latest record. One row per peer: ptheta's median time, the
peer's, the ratio peer / ptheta (> 1: ptheta is faster), whether the final objectives
agree (the same work), and the load average before → after. A second table gives the
training efficiency records (bench/made_flops.py): achieved GFLOP/s against the machine's
float32 matmul peak at the same thread count.

    .venv-bench/bin/python bench/summary.py [SCRIPT ...]    (make bench-summary)
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from harness import RESULTS, console
from rich.table import Table


def latest(paths: list[Path]) -> list[dict[str, Any]]:
    """The last record of each (script, workload, threads), in first-seen order."""
    out: dict[tuple[str, str, int], dict[str, Any]] = {}
    for path in paths:
        skipped = 0
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                rec = None
            if not isinstance(rec, dict) or not {"script", "workload", "threads", "sides"} <= set(
                rec
            ):
                skipped += 1  # not a bench/harness.py record
                continue
            out[(rec["script"], rec["workload"], rec["threads"])] = rec
        if skipped:
            console.print(
                f"[yellow]{path.name}: {skipped} line(s) not written by bench/harness.py skipped"
            )
    return list(out.values())


def _load(rec: dict[str, Any]) -> str:
    return f"{rec['load_before'][0]:.2f} → {rec['load_after'][0]:.2f}"


def _seconds(s: float) -> str:
    return f"{s:.4f}" if s < 1 else f"{s:.3f}" if s < 100 else f"{s:.1f}"


def _objectives(side: dict[str, Any]) -> str:
    equal = side.get("objective_equal")
    diff = f"Δ {side['objective_rel_diff']:.0e}"
    if equal is None:
        return f"n/a ({diff})"
    return f"yes ({diff})" if equal else f"[red]NO[/red] ({diff})"


def comparison_table(records: list[dict[str, Any]]) -> Table:
    table = Table(
        title="peer comparisons — latest record of each workload (bench/results/*.jsonl)",
        title_justify="left",
        caption="ratio = peer median / ptheta median: > 1 means ptheta is faster (CPU: the "
        "same for process CPU seconds, less diluted by other load); objectives "
        "equal: the final objectives agree within the workload's tolerance (n/a: not "
        "expected to, e.g. different optimisers); load: 1-min load average before → after",
    )
    for col in ("script", "workload", "thr", "ptheta s", "peer", "peer s", "ratio", "CPU",
                "objectives equal?", "load", "when (UTC)"):  # fmt: skip
        table.add_column(col, justify="left" if col in ("script", "workload", "peer") else "right")
    for rec in records:
        ours = rec["sides"][0]
        for peer in rec["sides"][1:]:
            ratio = peer["ratio"]
            colour = "green" if ratio >= 1 else "red"
            table.add_row(
                rec["script"],
                rec["workload"],
                str(rec["threads"]),
                _seconds(ours["median"]),
                peer["name"],
                _seconds(peer["median"]),
                f"[{colour}]{ratio:.2f}×[/{colour}]",
                "—" if peer.get("cpu_ratio") is None else f"{peer['cpu_ratio']:.2f}×",
                _objectives(peer),
                _load(rec),
                rec.get("time", "?")[5:16].replace("T", " "),
            )
    return table


def efficiency_table(records: list[dict[str, Any]]) -> Table:
    table = Table(
        title="training efficiency — achieved matmul GFLOP/s vs this machine's float32 peak",
        title_justify="left",
        caption="target: ≥ 50 % of peak for the MLP families",
    )
    for col in ("workload", "thr", "loop", "median s", "GFLOP/s", "best round", "peak",
                "% of peak", "best %", "load"):  # fmt: skip
        table.add_column(col, justify="left" if col in ("workload", "loop") else "right")
    for rec in records:
        peak = rec["peak"]["gflops"]
        for side in rec["sides"]:
            best = side.get("gflops_best", side["gflops"])
            table.add_row(
                rec["workload"],
                str(rec["threads"]),
                side["name"],
                _seconds(side["median"]),
                f"{side['gflops']:.1f}",
                f"{best:.1f}",
                f"{peak:.1f}",
                f"{100 * side['gflops'] / peak:.0f} %",
                f"{100 * best / peak:.0f} %",
                _load(rec),
            )
    return table


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("scripts", nargs="*", help="only these scripts (default: every results file)")
    args = p.parse_args()
    paths = sorted(RESULTS.glob("*.jsonl")) if RESULTS.is_dir() else []
    if args.scripts:
        paths = [q for q in paths if q.stem in args.scripts]
    records = latest(paths)
    if not records:
        console.print(f"no results in {RESULTS} yet: run the bench scripts (make bench)")
        return
    comparisons = [r for r in records if r.get("kind", "comparison") == "comparison"]
    efficiency = [r for r in records if r.get("kind") == "efficiency"]
    if comparisons:
        console.print(comparison_table(comparisons))
    if efficiency:
        console.print(efficiency_table(efficiency))
    machine = records[-1]["machine"]
    console.print(
        f"machine: {machine['cpu_count']} CPUs, {machine['processor']}, torch "
        f"{machine['torch']}, numpy {machine['numpy']}"
    )


if __name__ == "__main__":
    main()
