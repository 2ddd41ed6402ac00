"""The plugin Lamina loads from the ``lamina`` entry-point group: one data adapter, one profile.

It only declares what it offers; the adapter's module imports nothing heavier than ``sqlite3``
and pydantic, and pyarrow is imported when data is first touched.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from lamina.hookspecs import hookimpl
from lamina.models import AdapterInfo

from .adapter import ADAPTER_NAME, SQLiteData, SQLiteSettings

PROFILE_NAME = "sqlite-local"


@hookimpl
def lamina_adapters() -> list[AdapterInfo]:
    return [
        AdapterInfo(
            layer="data",
            name=ADAPTER_NAME,
            settings=SQLiteSettings,
            factory=SQLiteData,
            requires=("pyarrow",),
            description="tables in a SQLite database file (stdlib sqlite3 + pyarrow)",
        )
    ]


@hookimpl
def lamina_stack_profiles() -> dict[str, Path]:
    return {PROFILE_NAME: Path(str(files("lamina_sqlite") / "stacks" / f"{PROFILE_NAME}.toml"))}
