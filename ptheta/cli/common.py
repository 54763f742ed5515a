"""Pieces shared by the CLI commands: option groups, parameter parsing, tables, errors."""

from __future__ import annotations

import functools
import json
import math
import tomllib
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from ptheta.errors import ParameterError, PthetaError, unknown_name
from ptheta.models import get_model_class

# Piped output (CI logs, files) gets a wide table instead of rich's 80-column default.
console = Console(width=None if Console().is_terminal else 160)
err_console = Console(stderr=True)


class CliError(click.ClickException):
    """A user-facing error: printed as one line, exit status 2, no traceback."""

    exit_code = 2

    def show(self, file: Any = None) -> None:
        err_console.print(f"[bold red]Error:[/] {self.message}", highlight=False, soft_wrap=True)


class PthetaGroup(click.Group):
    """A click group that turns ptheta's own errors into one readable line."""

    def invoke(self, ctx: click.Context) -> Any:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            try:
                return super().invoke(ctx)
            except PthetaError as e:
                raise CliError(str(e)) from None
            except OSError as e:  # unwritable --out, a full disk, a folder given as a file
                where = f" ({e.filename})" if getattr(e, "filename", None) else ""
                raise CliError(
                    f"{e.strerror or e}{where}; check the path and its permissions"
                ) from None
            except MemoryError:
                raise CliError("out of memory; ask for fewer samples or a smaller batch") from None
            except KeyboardInterrupt:
                raise CliError(
                    "interrupted; a training run keeps its last checkpoint: run the same "
                    "command with --resume to continue"
                ) from None


def _show_warning(message: Any, category: Any, *args: Any, **kwargs: Any) -> None:
    err_console.print(f"[yellow]Warning:[/] {message}", highlight=False, soft_wrap=True)


# --------------------------------------------------------------------------- parameters
def parse_value(text: str) -> Any:
    """``3`` → 3, ``0.5`` → 0.5, ``true`` → True, ``null`` → None, ``[1,2]`` → list, else str."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        lowered = text.strip().lower()
        if lowered in ("true", "false"):
            return lowered == "true"
        if lowered in ("none", "null"):
            return None
        return text


def parse_sets(items: Sequence[str]) -> dict[str, Any]:
    """``["n_components=8", "covariance_type=diag"]`` → dict, with clear errors."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ParameterError(f"--set takes key=value, got {item!r} (e.g. --set n_components=8)")
        out[key.strip()] = parse_value(value.strip())
    return out


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Hyper-parameters from a TOML or JSON file: a flat table, or a ``[params]`` table."""
    path = Path(path)
    if not path.exists():
        raise ParameterError(f"config file {str(path)!r} does not exist")
    try:
        if path.suffix.lower() == ".toml":
            content = tomllib.loads(path.read_text())
        elif path.suffix.lower() == ".json":
            content = json.loads(path.read_text())
        else:
            raise ParameterError(f"config file {str(path)!r} must end in .toml or .json")
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as e:
        raise ParameterError(f"config file {str(path)!r} could not be parsed: {e}") from None
    if not isinstance(content, dict):
        raise ParameterError(f"config file {str(path)!r} must hold a table of key = value")
    params = content.get("params", content)
    if not isinstance(params, dict):
        raise ParameterError(f"'params' in {str(path)!r} must be a table of key = value")
    return dict(params)


def resolve_params(model: str, config_file: str | None, sets: Sequence[str]) -> dict[str, Any]:
    """Hyper-parameters by precedence: the model's defaults < config file < ``--set`` flags."""
    cls = get_model_class(model)
    params: dict[str, Any] = {}
    if config_file:
        params.update(read_config_file(config_file))
    params.update(parse_sets(sets))
    valid = cls._get_param_names()
    for key in params:
        if key not in valid:
            raise unknown_name(
                f"parameter of {model!r}:", key, valid, hint=f"see `ptheta models {model}`"
            )
    return params


# --------------------------------------------------------------------------- options
def data_options(required: bool) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The options that say which data to use, shared by the commands that load data.

    The command receives ``data`` (the name or path) and ``data_opts``: the other options
    given, as keyword arguments of ``ptheta.data.load``.
    """

    def decorate(f: Callable[..., Any]) -> Callable[..., Any]:
        options = [
            click.option(
                "--data",
                "data",
                required=required,
                metavar="NAME|PATH",
                help="A built-in data set (see `ptheta datasets`) or a path to a .npy, .npz, "
                ".csv or .txt file or an image folder."
                + ("" if required else " Default: the data set the run was fitted on."),
            ),
            click.option(
                "--kind",
                default=None,
                metavar="KIND",
                help="Read the data as binary, categorical, categorical:K or continuous "
                "instead of the inferred kind.",
            ),
            click.option(
                "--label-column", default=None, metavar="NAME", help="CSV column holding labels."
            ),
            click.option(
                "--image-size",
                default=None,
                type=int,
                metavar="N",
                help="Resize images of an image folder to N×N pixels.",
            ),
            click.option(
                "--seq-len",
                default=None,
                type=click.IntRange(min=1),
                metavar="T",
                help="Characters per example when --data is a .txt file (default 64).",
            ),
            click.option(
                "--data-seed",
                default=None,
                type=int,
                metavar="SEED",
                help="Seed of the 80/10/10 split of a user's file "
                "(built-in sets have fixed splits).",
            ),
        ]

        @functools.wraps(f)
        def command(*args: Any, **kwargs: Any) -> Any:
            given = {name: kwargs.pop(name) for name in _DATA_OPTIONS}
            return f(*args, data_opts=data_kwargs(**given), **kwargs)

        for option in reversed(options):
            command = option(command)
        return command

    return decorate


_DATA_OPTIONS = ("kind", "label_column", "image_size", "seq_len", "data_seed")


def data_kwargs(**options: Any) -> dict[str, Any]:
    """The data options given on the command line, as keyword arguments of `data.load`."""
    renamed = {"data_seed": "seed"}
    return {renamed.get(k, k): v for k, v in options.items() if v is not None}


# --------------------------------------------------------------------------- tables
def fmt(value: Any, digits: int = 2) -> str:
    """Cell text: numbers rounded, None as an em dash."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if abs(value) >= 1e5 or (value != 0 and abs(value) < 10 ** (-digits)):
            return f"{value:.{digits + 1}g}"
        return f"{value:.{digits}f}"
    if isinstance(value, (list, tuple)):
        return ", ".join(map(str, value))
    return str(value)


def print_table(
    title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], caption: str | None = None
) -> None:
    table = Table(title=title, caption=caption, title_justify="left", caption_justify="left")
    for col in columns:
        numeric = col.lower().startswith(("nll", "bits", "time", "n ", "params", "fit", "log"))
        table.add_column(col, justify="right" if numeric else "left", overflow="fold")
    for row in rows:
        table.add_row(*[fmt(v) for v in row])
    console.print(table)
