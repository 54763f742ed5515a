"""Pieces shared by the CLI commands: option groups, parameter parsing, tables, errors."""

from __future__ import annotations

import functools
import json
import math
import re
import tomllib
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ptheta.errors import ParameterError, PthetaError, unknown_name
from ptheta.models import get_model_class

# Piped output (CI logs, files) gets a wide table instead of rich's 80-column default.
console = Console(width=None if Console().is_terminal else 160)
err_console = Console(stderr=True)

# Seeds of numpy and torch generators: numpy refuses negative ones, torch ones of 2**64 or more.
SEED = click.IntRange(0, 2**32 - 1)


class FiniteFloatRange(click.FloatRange):
    """click's FloatRange that also refuses ``nan`` and ``inf`` (which click parses as
    floats and no range check catches: ``nan`` compares false with every bound)."""

    def convert(self, value: Any, param: Any, ctx: Any) -> Any:
        number = super().convert(value, param, ctx)
        if number is not None and not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return number


POSITIVE = FiniteFloatRange(min=0, min_open=True)  # a positive, finite number


class CliError(click.ClickException):
    """A user-facing error: printed as one line, exit status 2, no traceback."""

    exit_code = 2

    def show(self, file: Any = None) -> None:
        # user text (paths, values) may hold brackets: never read it as rich markup
        err_console.print(
            f"[bold red]Error:[/] {escape(self.message)}", highlight=False, soft_wrap=True
        )


class PthetaGroup(click.Group):
    """A click group that turns ptheta's own errors into one readable line."""

    def invoke(self, ctx: click.Context) -> Any:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            try:
                return super().invoke(ctx)
            except PthetaError as e:
                raise CliError(as_flags(str(e))) from None
            except OSError as e:  # unwritable --out, a full disk, a folder given as a file
                where = f" ({e.filename})" if getattr(e, "filename", None) else ""
                raise CliError(
                    f"{e.strerror or e}{where}; check the path and its permissions"
                ) from None
            except MemoryError:
                raise CliError(_OUT_OF_MEMORY.format(detail="")) from None
            except RuntimeError as e:  # torch's allocators: RuntimeError, torch.OutOfMemoryError
                if not _is_out_of_memory(e):
                    raise
                raise CliError(_OUT_OF_MEMORY.format(detail=_allocation(e))) from None
            except KeyboardInterrupt:
                raise CliError(_interrupted(ctx)) from None


# The data options of the library (load(path, kind=...)) and the CLI flags that set them:
# the library's messages name the first, a user of the command line types the second.
_FLAGS = {"kind": "--kind", "label_column": "--label-column", "seq_len": "--seq-len"}
_NAMES = "|".join(_FLAGS)
_PYTHON_ASIDE = re.compile(rf",? or (?:{_NAMES})=(?:'[^']*'|\w+) in Python")
_OPTION = re.compile(rf"\b({_NAMES})='([^']*)'")


def as_flags(message: str) -> str:
    """A library message as the command line would say it: ``kind='continuous'`` becomes
    ``--kind continuous`` (an aside that already gives both keeps the flag only).

    Example:
        >>> as_flags("load it with kind='categorical:17'")
        'load it with --kind categorical:17'
        >>> as_flags("declare it continuous (--kind continuous, or kind='continuous' in Python)")
        'declare it continuous (--kind continuous)'
    """
    message = _PYTHON_ASIDE.sub("", message)
    message = _OPTION.sub(lambda m: f"{_FLAGS[m.group(1)]} {m.group(2)}", message)
    return message.replace("stream=True", "--stream").replace("stream=False", "--no-stream")


def _interrupted(ctx: click.Context) -> str:
    """What an interruption left, by command: what to run to finish it."""
    command = ctx.invoked_subcommand or ""
    if command == "fit":
        return (
            "interrupted; if the run had started writing to --out, the same command with "
            "--resume finishes it (a training run continues from its last checkpoint)"
        )
    if command in ("compare", "demo"):
        return (
            "interrupted; run the same command again: the models already fitted are cached "
            "and reused, the one being fitted starts again"
        )
    return "interrupted"


class LazyGroup(PthetaGroup):
    """A group whose sub-commands live in modules imported only when a command runs.

    ``lazy_commands`` maps each name to ``(module, short help)``: listing the commands
    (``ptheta --help``) reads the short help from there and imports nothing.
    """

    lazy_commands: dict[str, tuple[str, str]] = {}  # noqa: RUF012 (set once per group)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [*self.lazy_commands, *super().list_commands(ctx)]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy_commands:
            import importlib

            return importlib.import_module(self.lazy_commands[cmd_name][0]).command
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, help_text) for name, (_, help_text) in self.lazy_commands.items()]
        limit = formatter.width - 6 - max(len(name) for name, _ in rows)
        with formatter.section("Commands"):
            formatter.write_dl(
                [(n, click.utils.make_default_short_help(h, limit)) for n, h in rows]
            )


_OUT_OF_MEMORY = (
    "out of memory{detail}: use smaller hyper-parameters (widths such as hidden, steps or "
    "draws: see `ptheta models NAME`), a smaller batch_size, or ask for fewer samples"
)


def _is_out_of_memory(e: RuntimeError) -> bool:
    text = str(e).lower()
    return type(e).__name__ == "OutOfMemoryError" or any(
        s in text for s in ("can't allocate memory", "cannot allocate memory", "out of memory")
    )


def _allocation(e: RuntimeError) -> str:
    """`` (tried to allocate 37.3 GB)`` from torch's message, or nothing."""
    if m := re.search(r"allocate (\d+) bytes", str(e)):
        return f" (tried to allocate {int(m.group(1)) / 1e9:.3g} GB)"
    if m := re.search(r"allocate ([\d.]+ [KMGT]i?B)", str(e)):
        return f" (tried to allocate {m.group(1)})"
    return ""


def _show_warning(message: Any, category: Any, *args: Any, **kwargs: Any) -> None:
    err_console.print(
        f"[yellow]Warning:[/] {escape(str(message))}", highlight=False, soft_wrap=True
    )


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
    cls._refuse_renamed(params)  # an old name: say the new one
    valid = cls._get_param_names()
    for key in params:
        if key not in valid:
            raise unknown_name(
                f"parameter of {model!r}:", key, valid, hint=f"see `ptheta models {model}`"
            )
    return none_or_name(cls, params)


def none_or_name(cls: type, params: dict[str, Any]) -> dict[str, Any]:
    """``params`` with each None (``--set key=none`` or ``null``, or a JSON config
    file's null: ``fit``'s, ``compare``'s) read by what the parameter of ``cls`` takes:
    None where it takes None (``ema_decay=none``), else the choice named "none" where it
    has one (nsf's ``mixing=none``), else None (refused by the parameter's own check)."""
    out = dict(params)
    for key, value in params.items():
        decl = cls.parameters.get(key)
        if value is not None or decl is None:
            continue
        for candidate in (None, "none"):
            try:
                decl.check(cls.name, key, candidate)
            except ParameterError:
                continue
            out[key] = candidate
            break
    return out


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
                ".csv, .parquet or .txt file or an image folder. Variable-length sequences: a "
                ".txt file with --lines, a CSV in long format (columns sequence_id, t and "
                "values), or an .npz of values with offsets or lengths. Tables of typed "
                "columns: a CSV or Parquet file with text columns (or --kind table, --schema). "
                "Standard images (mnist, fashion-mnist, binarized-mnist, cifar10) download on "
                "first use into $PTHETA_DATA (default ~/.cache/ptheta/data); offline, a folder "
                "of their published files (IDX, .amat, CIFAR-10 binary) loads the same data."
                + ("" if required else " Default: the data set the run was fitted on."),
            ),
            click.option(
                "--kind",
                default=None,
                metavar="KIND",
                help="Read the data as binary, categorical, categorical:K, continuous or "
                "table (a CSV or Parquet file, column by column) instead of the inferred kind.",
            ),
            click.option(
                "--schema",
                default=None,
                type=click.Path(dir_okay=False),
                metavar="FILE.json",
                help="Column types of a table (CSV or Parquet), overriding the inferred ones: "
                'a JSON list of {"name", "type"} with type binary, categorical, ordinal, count '
                'or continuous, optional "levels" (in order, lowest first for ordinal) and '
                '"lower" / "upper" (continuous); only the columns named.',
            ),
            click.option(
                "--label-column",
                default=None,
                metavar="NAME",
                help="CSV column holding labels (one per sequence in a long-format CSV).",
            ),
            click.option(
                "--image-size",
                default=None,
                type=click.IntRange(min=1),
                metavar="N",
                help="Resize images of an image folder to N×N pixels (N at most 1024).",
            ),
            click.option(
                "--seq-len",
                default=None,
                type=click.IntRange(min=1),
                metavar="T",
                help="Characters per example when --data is a .txt file read as fixed windows "
                "(the default, 64; split by position).",
            ),
            click.option(
                "--lines",
                default=None,
                type=click.Choice(["chars", "words"]),
                help="Read a .txt file as one variable-length sequence per non-blank line, of "
                "its characters (chars) or whitespace-separated words (words), split 80/10/10 "
                "by line with --data-seed, instead of fixed windows of --seq-len characters.",
            ),
            click.option(
                "--stream/--no-stream",
                "stream",
                default=None,
                help="Read --data a batch at a time (--stream: a memory-mapped .npy, an .npz "
                "or a folder of .npy/.npz shards, an image folder, a CSV or Parquet file) or "
                "whole (--no-stream). Default: stream a folder of shards, and files whose data "
                "take more than 1 GiB in memory. A run records the choice.",
            ),
            click.option(
                "--data-seed",
                default=None,
                type=SEED,
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


_DATA_OPTIONS = (
    "kind", "schema", "label_column", "image_size", "seq_len", "lines", "stream", "data_seed",
)  # fmt: skip


def data_kwargs(**options: Any) -> dict[str, Any]:
    """The data options given on the command line, as keyword arguments of `data.load`."""
    renamed = {"data_seed": "seed"}
    if options.get("schema") is not None:  # absolute: a run records it, to read it again
        options["schema"] = str(Path(options["schema"]).resolve())
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
    """Print a table; every text (titles, cells: paths, names, values) is shown verbatim."""
    table = Table(
        title=escape(title),
        caption=None if caption is None else escape(caption),
        title_justify="left",
        caption_justify="left",
    )
    for col in columns:
        numeric = col.lower().startswith(
            ("nll", "bits", "nats", "steps", "time", "n ", "params", "fit", "log")
        )
        table.add_column(escape(col), justify="right" if numeric else "left", overflow="fold")
    for row in rows:
        table.add_row(*[escape(fmt(v)) for v in row])
    console.print(table)
