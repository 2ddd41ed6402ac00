"""What went wrong, in words: driver and SQLAlchemy exceptions turned into Lamina's errors.

Transient (retried by the layer facade): a dropped connection, a server that is restarting or
unreachable, a deadlock. Not transient: a refused login, an unknown database, bad SQL.
Classification uses SQLSTATE codes (PostgreSQL, ADBC) and MySQL error numbers where the driver
gives them, and SQLAlchemy's own disconnect detection.
"""

from __future__ import annotations

import re
from typing import Any

from lamina.errors import DataError, TransientError

DRIVERS: dict[str, tuple[str, str]] = {
    # dialect -> (URL to write, what to install)
    "postgresql": ("postgresql+psycopg://user@host:5432/db", "pip install 'lamina[postgres]'"),
    "mysql": ("mysql+pymysql://user@host:3306/db", "pip install 'lamina[mysql]'"),
    "mariadb": ("mariadb+pymysql://user@host:3306/db", "pip install 'lamina[mysql]'"),
    "mssql": ("mssql+pyodbc://user@dsn", "pip install pyodbc (and Microsoft's ODBC driver)"),
    "oracle": ("oracle+oracledb://user@host:1521/?service_name=svc", "pip install oracledb"),
    "sqlite": ("sqlite:///path/to/file.db", "nothing: sqlite3 ships with Python"),
    "snowflake": ("snowflake://user@account/db/schema?warehouse=wh", "pip install snowflake-sqlalchemy"),
    "redshift": (
        "redshift+redshift_connector://user@host:5439/db",
        "pip install sqlalchemy-redshift redshift_connector",
    ),
    "trino": ("trino://user@host:8080/catalog/schema", "pip install trino"),
    "databricks": ("databricks://token@host?http_path=...", "pip install databricks-sqlalchemy"),
    "bigquery": ("bigquery://project/dataset", "pip install sqlalchemy-bigquery"),
}


class ConnectionDropped(DataError, TransientError):
    """The database was unreachable or dropped the connection; the layer facade retries."""


class LoginRefused(DataError):
    """The database refused the credentials or the database name; retrying will not help."""


_LOGIN_MESSAGES = re.compile(
    r"password authentication failed|no password supplied|authentication failed|access denied|"
    r"role \S+ does not exist|database \S+ does not exist|unknown database|pg_hba\.conf|"
    r"login failed|invalid username|not authorized",
    re.I,
)
_DROPPED_MESSAGES = re.compile(
    r"server closed the connection|terminating connection|connection refused|could not connect|"
    r"connection reset|broken pipe|lost connection|server has gone away|can't connect|"
    r"connection (is )?closed|timeout expired|timed out|the database system is (starting up|shutting down)|"
    r"connection to server .* failed",
    re.I,
)
_MYSQL_LOGIN = {1044, 1045, 1049, 1698}
_MYSQL_DROPPED = {1040, 1053, 1205, 1213, 2002, 2003, 2006, 2013, 2055}


def _sqlstate(exc: BaseException) -> str:
    for candidate in (exc, getattr(exc, "orig", None), exc.__cause__):
        state = getattr(candidate, "sqlstate", None) or getattr(candidate, "pgcode", None)
        if isinstance(state, str) and state:
            return state
    return ""


def _mysql_code(exc: BaseException) -> int | None:
    for candidate in (getattr(exc, "orig", None), exc):
        args = getattr(candidate, "args", ())
        if args and isinstance(args[0], int):
            return args[0]
    return None


def classify(exc: BaseException) -> str:
    """``"login"``, ``"dropped"`` or ``"other"`` for a driver or SQLAlchemy exception."""
    state = _sqlstate(exc)
    code = _mysql_code(exc)
    text = str(getattr(exc, "orig", None) or exc)
    if state.startswith("28") or state in ("3D000",) or code in _MYSQL_LOGIN or _LOGIN_MESSAGES.search(text):
        return "login"
    if (
        state.startswith("08")
        or state in ("57P01", "57P02", "57P03", "40001", "40P01", "53300")
        or code in _MYSQL_DROPPED
        or getattr(exc, "connection_invalidated", False)
        or _DROPPED_MESSAGES.search(text)
    ):
        return "dropped"
    return "other"


def driver_message(exc: BaseException) -> str:
    """The database's own words, without SQLAlchemy's boilerplate (background links, the SQL)."""
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc).strip()
    text = re.sub(r"\n\(Background on this error at: [^)]*\)", "", text)
    return text.split("\n[SQL:")[0].strip()


def translate(
    exc: BaseException, doing: str, where: str, sql: str = "", secret: str | None = None
) -> DataError:
    """A Lamina error for ``exc``, raised while ``doing`` (e.g. "reading table 'x'") on ``where``.

    :param secret: the password, masked wherever a driver quoted it (connectorx repeats its URL).
    """
    kind = classify(exc)
    message = driver_message(exc)
    if secret:
        message = message.replace(secret, "***")
    if kind == "login":
        return LoginRefused(
            f"{where} refused the login while {doing}: {message}. Check the user, the database name "
            "and the password (data.password_env or the variable in data.url), then run `lamina stack check`."
        )
    if kind == "dropped":
        return ConnectionDropped(
            f"{doing} failed: {where} was unreachable, dropped the connection or asked for a retry "
            f"(a deadlock, a server restarting): {message}"
        )
    shown = f"\n  sql: {sql}" if sql else ""
    return DataError(f"{doing} failed on {where}: {message}{shown}")


def unknown_dialect(url: Any, exc: BaseException) -> DataError:
    """The error for a URL whose dialect or driver SQLAlchemy cannot load."""
    backend = url.get_backend_name()
    known = DRIVERS.get(backend)
    if known is None:
        names = ", ".join(sorted(DRIVERS))
        return DataError(
            f"data.url names the SQLAlchemy dialect {url.drivername!r}, which is not installed ({exc}). "
            f"Dialects with known drivers: {names}; a third-party dialect is a pip package (its "
            "documentation names the URL scheme)."
        )
    example, install = known
    return DataError(
        f"data.url uses {url.drivername!r}, whose driver is not installed ({exc}): {install}, "
        f"and write the URL as {example}."
    )
