"""Settings of the ``sqlalchemy`` data adapter, checked without importing SQLAlchemy.

``lamina stack list`` validates every profile, so nothing here may import SQLAlchemy or a
driver: the URL is checked with :mod:`urllib.parse`, and SQLAlchemy parses it when the adapter
first connects.
"""

from __future__ import annotations

import os
import re
from typing import Literal
from urllib.parse import urlsplit

from lamina.models import AdapterSettings
from pydantic import Field, field_validator

_URL_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*(\+[A-Za-z0-9_]+)?://")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def url_password(url: str) -> str | None:
    """The password written in a SQLAlchemy-style URL (``dialect+driver://user:pw@host/db``), if any."""
    try:
        return urlsplit(url).password or None
    except ValueError:  # a malformed netloc: SQLAlchemy reports it when the URL is used
        return None


class SQLAlchemySettings(AdapterSettings):
    """The ``[data]`` table of a profile whose data layer is ``sqlalchemy``."""

    url: str = Field(
        description=(
            "SQLAlchemy URL, e.g. 'postgresql+psycopg://analyst@db.internal:5432/warehouse'. "
            "A password comes from the environment: the whole URL as '${PG_URL}', or `password_env`"
        )
    )
    password_env: str | None = Field(
        default=None,
        description="name of the environment variable holding the password (the URL then has none)",
    )
    schema_: str | None = Field(
        default=None,
        alias="schema",
        description="schema that holds the tables (PostgreSQL, SQL Server); default: the connection's",
    )
    reader: Literal["auto", "adbc", "connectorx", "dbapi"] = Field(
        default="auto",
        description=(
            "how rows reach Arrow: 'auto' takes the fastest installed columnar driver for the "
            "dialect (ADBC for PostgreSQL, connectorx for MySQL/MariaDB), else the DB-API cursor"
        ),
    )
    batch_rows: int = Field(
        default=50_000, ge=1, description="rows fetched per server-side cursor batch, and per INSERT batch"
    )
    connect_timeout: int = Field(default=10, ge=1, description="seconds to wait for a connection")

    model_config = AdapterSettings.model_config | {"populate_by_name": True}

    @field_validator("url")
    @classmethod
    def _a_url_without_literal_password(cls, url: str) -> str:
        if not _URL_SCHEME.match(url):
            raise ValueError(
                "not a SQLAlchemy URL: write dialect[+driver]://user@host:port/database, e.g. "
                "'postgresql+psycopg://analyst@127.0.0.1:5432/warehouse' or 'mysql+pymysql://root@127.0.0.1/test'"
            )
        return url

    @field_validator("password_env")
    @classmethod
    def _an_environment_variable_name(cls, name: str | None) -> str | None:
        if name is not None and not _ENV_NAME.match(name):
            raise ValueError(
                f"password_env names an environment variable (e.g. 'PG_PASSWORD'), not a value; got {name!r}"
            )
        return name or None

    def password(self) -> str | None:
        """The password from ``password_env``, or ``None`` when no variable is named.

        :raises ValueError: the named variable is not set.
        """
        if self.password_env is None:
            return None
        value = os.environ.get(self.password_env)
        if value is None:
            raise ValueError(
                f"data.password_env names {self.password_env}, which is not set: export it "
                "(profiles hold no secrets)"
            )
        return value
