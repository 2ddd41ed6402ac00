"""The ``sqlite-local`` stack this plugin ships runs Lamina's corpus of flow shapes with the
same results as ``local``: tables through ``current.data`` land in SQLite instead of DuckDB."""

from __future__ import annotations

import pytest
from lamina.testing import StackSuite


class TestSQLiteLocalStack(StackSuite):
    @pytest.fixture
    def stack_name(self) -> str:
        return "sqlite-local"
