"""The ``sqlalchemy`` data adapter: tables in PostgreSQL, MySQL/MariaDB, SQL Server, Oracle, or any
database with a SQLAlchemy dialect. See :mod:`.adapter` for what it promises, and
``docs/data/sqlalchemy.md`` for profiles.

Importing this package is cheap: SQLAlchemy, pyarrow and the drivers load on first use.
"""

from __future__ import annotations

from lamina.models import AdapterInfo

from .adapter import ADAPTER_NAME, SQLAlchemyData
from .errors import ConnectionDropped, LoginRefused
from .settings import SQLAlchemySettings

__all__ = ["ADAPTER", "ConnectionDropped", "LoginRefused", "SQLAlchemyData", "SQLAlchemySettings"]

ADAPTER = AdapterInfo(
    layer="data",
    name=ADAPTER_NAME,
    settings=SQLAlchemySettings,
    factory=SQLAlchemyData,
    requires=("sqlalchemy", "pyarrow"),
    description="any SQLAlchemy database: columnar reads (ADBC, connectorx), COPY or batched writes, atomic replace",
)
