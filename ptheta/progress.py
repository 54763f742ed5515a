"""Progress bars (rich) for anything that takes more than a moment; silent unless enabled."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)


class Advance(Protocol):
    def __call__(self, steps: int = 1, **fields: Any) -> None: ...


@contextmanager
def progress_bar(total: int | None, description: str, *, enabled: bool = True) -> Iterator[Advance]:
    """Yield ``advance(steps=1, **fields)``; ``fields`` are shown after the bar (e.g. loss)."""
    if not enabled:
        yield lambda steps=1, **fields: None
        return
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[info]}"),
    )
    with Progress(*columns, console=Console(stderr=True), transient=False) as bar:
        task = bar.add_task(description, total=total, info="")

        def advance(steps: int = 1, **fields: Any) -> None:
            info = "  ".join(
                f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in fields.items()
            )
            bar.update(task, advance=steps, info=info)

        yield advance
