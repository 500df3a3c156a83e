"""Alembic environment: always run with a connection handed in by `formation_mcp.db.migrate`."""

from alembic import context

from formation_mcp.db.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through `fmcp db upgrade`, which supplies the connection")

context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
context.run_migrations()
