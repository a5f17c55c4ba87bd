"""Database layer: engines, embedded server, models, migrations, repositories."""

from db.errors import DatabaseUnavailable, ExtensionMissing, KbError, NotFound, SchemaOutOfDate

__all__ = ["DatabaseUnavailable", "ExtensionMissing", "KbError", "NotFound", "SchemaOutOfDate"]
