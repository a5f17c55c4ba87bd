"""Console output shared by the commands: one error line, tables, progress."""

from __future__ import annotations

import sys
from typing import NoReturn

from rich.console import Console

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
