"""Database layer: engines, embedded server, models, migrations, repositories."""

import logging

from db.errors import DatabaseUnavailable, ExtensionMissing, KbError, NotFound, SchemaOutOfDate

__all__ = ["DatabaseUnavailable", "ExtensionMissing", "KbError", "NotFound", "SchemaOutOfDate"]

# Alembic 1.17 logs every plugin it sets up at INFO when it is first imported (each
# start of `kb serve`); set before db.schema imports it. "Running upgrade" lines stay.
logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
