"""`ptheta models`: the registry, or one model's hyper-parameters."""

from __future__ import annotations

import inspect
import json

import click

from ptheta.cli.common import console, print_table
from ptheta.models import get_model_class, list_models


@click.command("models")
@click.argument("name", required=False)
@click.option(
    "--json", "as_json", is_flag=True, help="Print machine-readable JSON instead of a table."
)
def command(name: str | None, as_json: bool) -> None:
    """List the registered models: name, family, likelihood kind and data kinds.

    The table also says what each family needs of the data (class labels, images,
    sequences) and what it can do.

    With NAME, show that model's hyper-parameters: default, type and range (as the model
    declares them; `fit` refuses other values), and whether each is the model's own or a
    shared training one (set them with `ptheta fit NAME --set key=value`).
    """
    if name is None:
        rows = list_models()
        if as_json:
            console.print_json(json.dumps(rows))
            return
        print_table(
            "Models",
            ["name", "family", "likelihood", "data kinds", "needs", "can", "what it is"],
            [
                [
                    r["name"],
                    r["family"],
                    r["likelihood"],
                    r["data_kinds"],
                    " ".join(needs(r.get("capabilities"))),
                    " ".join(r["can"]),
                    r["summary"],
                ]
                for r in rows
            ],
            caption="likelihood: exact | bound (lower bound on log p) | estimate | none. "
            "A continuous density on discrete data reports a dequantised likelihood. "
            "needs: labels (fit takes class labels y: a classifier), images (examples of "
            "shape (C, H, W), or flat ones with an image shape), sequences (the examples' "
            "first axis is read in order as time). "
            "can: classify (Bayes' rule), sample|y (class-conditional), marginalise (exact "
            "scores with missing entries), impute, fits missing (fit takes NaN: EM over the "
            "missing entries), streams (fit reads big data a batch at a time, and each "
            "process its share under torchrun), steps (trains in steps: time budget, "
            "resume), generate "
            "(temperature, top-k, prompt), any length (variable-length sequences, each "
            "end scored), graph (exports a structure), embed. Defaults of the family; some "
            "follow a hyper-parameter "
            "(e.g. class_conditional=true).",
        )
        return
    cls = get_model_class(name)
    defaults = cls().get_params()  # the family's own and, for neural ones, the training ones
    own = [k for k in inspect.signature(cls.__init__).parameters if k in defaults]
    params = {k: defaults[k] for k in [*own, *sorted(set(defaults) - set(own))]}
    declared = [
        {
            "name": k,
            "default": v,
            "type": cls.parameters[k].describe() if k in cls.parameters else "",
            "kind": "model" if k in own else "training",
        }
        for k, v in params.items()
    ]
    if as_json:
        out = {"name": name, "params": params, "parameters": declared, "renamed": cls.renamed}
        console.print_json(json.dumps(out, default=str))
        return
    renamed = ", ".join(f"{old} → {new}" for old, new in cls.renamed.items())
    print_table(
        f"{name} ({cls.family}, likelihood: {cls.likelihood})",
        ["parameter", "default", "type / range", "kind"],
        [[p["name"], _as_set(p["default"]), p["type"], p["kind"]] for p in declared],
        caption=f"renamed: {renamed}" if renamed else None,
    )
    doc = inspect.getdoc(cls) or ""
    console.print(doc, highlight=False, markup=False)


NEEDS = {"needs_labels": "labels", "needs_image": "images", "needs_sequence": "sequences"}


def needs(capabilities: dict[str, object] | None) -> list[str]:
    """What a family requires of the data, as words: ``labels``, ``images``, ``sequences``
    (from the capabilities of its defaults; none for a broken registry entry).

    Example:
        >>> needs({"needs_labels": False, "needs_image": True, "needs_sequence": False})
        ['images']
    """
    return [word for field, word in NEEDS.items() if (capabilities or {}).get(field)]


def _as_set(value: object) -> str:
    """A default as it is written after --set: text as it is, else JSON (lists in
    brackets, null, true)."""
    if isinstance(value, str):
        return value
    try:
        return json.dumps(list(value) if isinstance(value, tuple) else value)
    except TypeError:
        return repr(value)
