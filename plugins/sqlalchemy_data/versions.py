"""``_lamina_versions``: the version each write gave its table, and when a read may trust it.

A row per table: its content version (``sha256:...``, from :mod:`lamina.data_tools`), its row
count and a token unique to the write. A read takes the recorded version only when the record
is the same before and after the rows were read and counts as many rows; on MySQL, where a
``replace`` swaps tables by ``RENAME`` outside any transaction, the table's comment must also
carry the record's token (the rename moves the comment with the table). Otherwise the reader
hashes the rows it read, which is always right.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import sqlalchemy as sa

VERSIONS_TABLE = "_lamina_versions"
MYSQL = ("mysql", "mariadb")


def table_token_comment(token: str) -> str:
    """The table comment that ties a MySQL table to its version record."""
    return f"lamina:{token}"


@dataclass(frozen=True)
class Record:
    """A table's row in ``_lamina_versions``, and on MySQL the table's comment."""

    version: str
    rows: int
    token: str
    comment: str | None = None


class VersionRecords:
    """The records of one schema (``None``: the connection's default)."""

    def __init__(self, schema: str | None) -> None:
        self.schema = schema

    def table(self) -> Any:
        import sqlalchemy as sa

        return sa.Table(
            VERSIONS_TABLE,
            sa.MetaData(),
            sa.Column("name", sa.String(255), primary_key=True),
            sa.Column("version", sa.String(80), nullable=False),
            sa.Column("rows", sa.BigInteger, nullable=False),
            sa.Column("token", sa.String(40), nullable=False),
            sa.Column("written_at", sa.DateTime(timezone=True), nullable=False),
            schema=self.schema,
        )

    def ensure(self, connection: sa.Connection) -> None:
        """Create the table if it is missing (another process may be creating it at the same time)."""
        import sqlalchemy as sa

        if sa.inspect(connection).has_table(VERSIONS_TABLE, schema=self.schema):
            return
        if connection.in_transaction():
            connection.rollback()
        try:
            with connection.begin():
                self.table().create(connection, checkfirst=True)
        except sa.exc.DBAPIError:  # created meanwhile by another writer
            if not sa.inspect(connection).has_table(VERSIONS_TABLE, schema=self.schema):
                raise

    def read(self, connection: sa.Connection, stored: str) -> Record | None:
        """The record of ``stored`` (with its MySQL comment), ending the read's transaction."""
        import sqlalchemy as sa

        table = self.table()
        query = sa.select(table.c.version, table.c.rows, table.c.token).where(table.c.name == stored.lower())
        try:
            row = connection.execute(query).first()
            comment = self.comment(connection, stored) if connection.dialect.name in MYSQL else None
        except sa.exc.DBAPIError:  # no versions table yet
            return None
        finally:
            if connection.in_transaction():
                connection.rollback()  # a read must not hold locks that block a writer
        return None if row is None else Record(str(row[0]), int(row[1]), str(row[2]), comment)

    def read_locked(self, connection: sa.Connection, stored: str) -> Record | None:
        """The record, locked until the caller's transaction ends (appends to one table queue);
        on MySQL only if the table's comment still carries its token."""
        import sqlalchemy as sa

        table = self.table()
        query = sa.select(table.c.version, table.c.rows, table.c.token).where(table.c.name == stored.lower())
        row = connection.execute(query.with_for_update()).first()
        if row is None:
            return None
        record = Record(str(row[0]), int(row[1]), str(row[2]))
        if connection.dialect.name in MYSQL and self.comment(connection, stored) != table_token_comment(
            record.token
        ):
            return None
        return record

    def comment(self, connection: sa.Connection, stored: str) -> str | None:
        """A MySQL table's comment, from ``information_schema``."""
        import sqlalchemy as sa

        row = connection.execute(
            sa.text(
                "SELECT TABLE_COMMENT FROM information_schema.TABLES "
                "WHERE TABLE_SCHEMA = COALESCE(:schema, DATABASE()) AND TABLE_NAME = :name"
            ),
            {"schema": self.schema, "name": stored},
        ).first()
        return None if row is None else str(row[0])

    @staticmethod
    def trusted(dialect: str, before: Record | None, after: Record | None, rows: int) -> str | None:
        """The recorded version, if the rows read (``rows`` of them) are exactly the ones it describes."""
        if before is None or before != after or before.rows != rows:
            return None
        if dialect in MYSQL and before.comment != table_token_comment(before.token):
            return None
        return before.version

    def write(self, connection: sa.Connection, stored: str, version: str, rows: int, token: str) -> None:
        """Replace the record of ``stored``, inside the caller's transaction."""
        import sqlalchemy as sa

        table = self.table()
        connection.execute(sa.delete(table).where(table.c.name == stored.lower()))
        connection.execute(
            sa.insert(table).values(
                name=stored.lower(),
                version=version,
                rows=rows,
                token=token,
                written_at=dt.datetime.now(dt.UTC),
            )
        )
