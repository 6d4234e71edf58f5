"""Alembic environment: the store hands us an open connection (see store.migrate)."""

from alembic import context

from campaign.store import Base

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    render_as_batch=True,
    target_metadata=Base.metadata,  # what `alembic check` compares the migrations with
    # SQLite reads every float column back as FLOAT, a Double in the models: no difference.
    compare_type=connection.dialect.name != "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
