"""`kb`: the command line, one module per noun.

Errors derived from `KbError` are printed as one line (what happened, what to do)
with exit code 1; nothing prints a traceback for them.
"""

from __future__ import annotations

import sys

import typer

from chat_app.cli import (
    ask_cmd,
    db_cmd,
    eval_cmd,
    ingest_cmd,
    jobs_cmd,
    migrate_cmd,
    notion_cmd,
    serve_cmd,
    setup_cmd,
    sources_cmd,
    spaces_cmd,
    stats_cmd,
    users_cmd,
    worker_cmd,
)
from chat_app.cli.output import fail

app = typer.Typer(
    name="kb",
    help="Knowledge-base chat on one PostgreSQL: set up, ingest, ask, serve.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
setup_cmd.register(app)
serve_cmd.register(app)
worker_cmd.register(app)
app.add_typer(db_cmd.app, name="db")
app.add_typer(users_cmd.app, name="users")
ask_cmd.register(app)
app.add_typer(eval_cmd.app, name="eval")
ingest_cmd.register(app)
app.add_typer(sources_cmd.app, name="sources")
app.add_typer(spaces_cmd.app, name="spaces")
app.add_typer(notion_cmd.app, name="notion")
app.add_typer(jobs_cmd.app, name="jobs")
migrate_cmd.register(app)
stats_cmd.register(app)


def main() -> None:
    from db.errors import KbError

    try:
        app()
    except KbError as exc:
        fail(exc)
    except KeyboardInterrupt:
        sys.stderr.write("Interrupted.\n")
        sys.exit(130)
