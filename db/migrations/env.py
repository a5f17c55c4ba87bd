"""Alembic environment: run with a connection passed in `config.attributes`."""

from __future__ import annotations

from alembic import context

from db.models import Base

target_metadata = Base.metadata
config = context.config
connection = config.attributes.get("connection")
if connection is None:  # `alembic` command line: build an engine from the ini URL
    import sqlalchemy as sa

    from db.engine import normalize_url

    engine = sa.create_engine(normalize_url(config.get_main_option("sqlalchemy.url") or ""))
    with engine.begin() as connection:
        context.configure(connection=connection, target_metadata=target_metadata)
        with context.begin_transaction():
            context.run_migrations()
else:
    context.configure(connection=connection, target_metadata=target_metadata)
    with context.begin_transaction():
        context.run_migrations()
