"""lamina-sqlite: a Lamina data adapter over a SQLite database file.

Installing the distribution is all it takes: Lamina finds the plugin through the ``lamina``
entry-point group (``lamina_sqlite.plugin``). Name the adapter in a stack profile::

    [data]
    adapter = "sqlite"
    path = ".lamina/data/sqlite.db"   # relative to the project directory
"""

__version__ = "0.1.0"
