"""Query placeholders: the driver's own, or ``?``, which every Lamina data adapter takes.

A flow written on the ``local`` stack binds parameters with ``?`` (DuckDB, SQLite, Snowflake).
So that it runs unchanged here, SQL whose parameters are written as ``?`` is rewritten into
the DB-API driver's positional style (``%s`` for psycopg and PyMySQL, ``:1`` for oracledb); SQL
already written in the driver's style is left alone. Quoted text, quoted names and comments
are skipped, so a ``?`` inside a string literal stays a question mark.
"""

from __future__ import annotations

import re

_SKIP = re.compile(
    r"""'(?:[^']|'')*'       # a string literal
      | "(?:[^"]|"")*"       # a quoted name
      | `[^`]*`              # a MySQL quoted name
      | --[^\n]*             # a line comment
      | /\*.*?\*/            # a block comment
      | \$(\w*)\$.*?\$\1\$   # a PostgreSQL dollar-quoted string
    """,
    re.S | re.X,
)
_NATIVE = {"format": "%s", "pyformat": "%s", "numeric": ":1", "named": ":", "qmark": "?"}


def _code_spans(sql: str) -> list[tuple[bool, str]]:
    """``sql`` cut into (is code, text) pieces: code outside literals, names and comments."""
    pieces: list[tuple[bool, str]] = []
    position = 0
    for match in _SKIP.finditer(sql):
        pieces.append((True, sql[position : match.start()]))
        pieces.append((False, match.group(0)))
        position = match.end()
    pieces.append((True, sql[position:]))
    return pieces


def portable_placeholders(sql: str, paramstyle: str) -> str:
    """``sql`` with ``?`` placeholders in the driver's ``paramstyle``, if it uses ``?`` and not the driver's own."""
    if paramstyle == "qmark":
        return sql
    pieces = _code_spans(sql)
    code = "".join(text for is_code, text in pieces if is_code)
    if "?" not in code:
        return sql
    if paramstyle in ("format", "pyformat") and re.search(r"%s|%\(\w+\)s", code):
        return sql  # already the driver's style
    out: list[str] = []
    counter = 0
    for is_code, text in pieces:
        if paramstyle in ("format", "pyformat"):
            text = text.replace("%", "%%")  # with parameters, the driver reads every % as a marker
        if is_code:
            parts = text.split("?")
            rebuilt = parts[0]
            for part in parts[1:]:
                counter += 1
                marker = {"format": "%s", "pyformat": "%s", "numeric": f":{counter}", "named": f":p{counter}"}
                rebuilt += marker.get(paramstyle, "?") + part
            text = rebuilt
        out.append(text)
    return "".join(out)
