"""Alembic environment of the metadata store.

Lamina runs migrations itself (:meth:`lamina.versioning.metadata.MetadataStore`), handing over an
open connection inside a locked transaction in ``config.attributes["connection"]``. For
developers, ``alembic -x url=sqlite:///path/metadata.db -c <an ini with script_location> upgrade
head`` works too. Batch mode is on so that ``ALTER`` migrations also work on SQLite.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

config = context.config


def _run(connection) -> None:  # type: ignore[no-untyped-def]
    context.configure(connection=connection, target_metadata=None, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option("sqlalchemy.url")
    if not url:
        raise SystemExit("pass the database with `alembic -x url=...`")
    engine = create_engine(url)
    with engine.begin() as conn:
        _run(conn)
    engine.dispose()
