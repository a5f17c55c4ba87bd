"""Console output shared by the commands: one error line, tables, progress."""

from __future__ import annotations

import sys
from typing import NoReturn

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from db.errors import KbError

console = Console()
err_console = Console(stderr=True)


def fail(error: KbError | str, *, code: int = 1) -> NoReturn:
    """Print `Error: <what happened> <what to do>` and exit with `code`."""
    if isinstance(error, KbError):
        text = error.message + (f"\n  Fix: {error.hint}" if error.hint else "")
    else:
        text = error
    err_console.print(f"[bold red]Error:[/] {text}", highlight=False, soft_wrap=True)
    sys.exit(code)


def progress_bar(*, transient: bool = False, remaining: bool = False) -> Progress:
    """The commands' bar: what is happening, done/total, and elapsed (or remaining) time."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn() if remaining else TimeElapsedColumn(),
        console=console,
        transient=transient,
    )
