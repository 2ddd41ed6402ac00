"""``lamina.testing``: the suites' names load lazily, their flows ship, and they catch broken adapters.

The suites themselves run in each adapter's tests (tests/versioning, tests/runtime, tests/dask,
tests/aws, contrib/lamina-sqlite); here the kit is tested as a third party meets it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from lamina.hookspecs import AdapterContext
from lamina.plugins.local_versioning import LocalVersioning, LocalVersioningSettings


def test_importing_the_kit_loads_neither_pytest_nor_a_suite() -> None:
    code = """
import json, sys
import lamina
before = sorted(m for m in sys.modules if m.startswith("lamina.testing"))
import lamina.testing
print(json.dumps({"before": before, "loaded": sorted(m for m in sys.modules
      if m == "pytest" or m.startswith(("_pytest", "lamina.testing.")))}))
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    result = json.loads(out.stdout)
    assert result == {"before": [], "loaded": []}


def test_the_kit_exports_every_suite_and_keeps_the_old_data_suite_name() -> None:
    import lamina.testing
    from lamina.testing.data_suite import DataAdapterSuite

    assert set(lamina.testing.__all__) == {
        "DataSuite", "DataAdapterSuite", "VersioningSuite", "ComputeSuite", "StackSuite", "OrchestrationSuite",
    }  # fmt: skip
    for name in lamina.testing.__all__:
        assert isinstance(getattr(lamina.testing, name), type), name
    assert lamina.testing.DataAdapterSuite is lamina.testing.DataSuite is DataAdapterSuite
    with pytest.raises(AttributeError, match="NoSuchSuite"):
        lamina.testing.NoSuchSuite  # noqa: B018


def test_every_shipped_flow_is_a_valid_flow_of_its_own_file() -> None:
    from lamina.runtime.api import resolve_flow
    from lamina.testing.stack_suite import CORPUS
    from lamina.testing.suite_tools import FLOWS, flow_file

    files = sorted(FLOWS.glob("*.py"))
    assert {case.flow for case in CORPUS} <= {f.stem for f in files}
    for path in files:
        flow_cls, _ = resolve_flow(path)
        flow_cls.graph().validate()
    with pytest.raises(FileNotFoundError, match="fan_out"):
        flow_file("no_such_flow")


# -- the suites fail adapters that break their promises ------------------------------------------


class ClobberingVersioning(LocalVersioning):
    """Breaks create-only puts: every put overwrites."""

    def versioning_put(self, key: str, data: Any, path: str | None, overwrite: bool) -> bool:
        return super().versioning_put(key, data, path, True)


class UnsortedVersioning(LocalVersioning):
    """Breaks listing: keys come back in reverse order."""

    def versioning_list(self, prefix: str) -> list[str]:
        return list(reversed(super().versioning_list(prefix)))


class LeakyVersioning(LocalVersioning):
    """Breaks the metadata URL: it carries a password."""

    def versioning_metadata_url(self) -> str:
        return "postgresql://lamina:secret@db/lamina"


@pytest.mark.parametrize(
    ("adapter_class", "test_name"),
    [
        (ClobberingVersioning, "test_create_only_put_keeps_the_first_value"),
        (ClobberingVersioning, "test_concurrent_create_only_writers_never_clobber"),
        (UnsortedVersioning, "test_list_is_sorted_and_matches_any_prefix"),
        (LeakyVersioning, "test_metadata_url_is_a_database_url_without_a_password"),
    ],
)
def test_the_versioning_suite_fails_a_broken_adapter(
    tmp_path: Path, adapter_class: type, test_name: str
) -> None:
    from lamina.testing import VersioningSuite

    adapter = adapter_class(LocalVersioningSettings(), AdapterContext(tmp_path, "local", "local"))
    suite = VersioningSuite()
    arguments = {"versioning_adapter": adapter, "root": "r/", "key": lambda name: "r/" + name}
    test = getattr(suite, test_name)
    wanted = {k: v for k, v in arguments.items() if k in test.__code__.co_varnames}
    with pytest.raises(AssertionError):
        test(**wanted)
    # the same test passes on the adapter as shipped, so it is the breakage that failed it
    wanted["versioning_adapter"] = LocalVersioning(
        LocalVersioningSettings(), AdapterContext(tmp_path / "ok", "local", "local")
    )
    test(**wanted)


def test_results_compare_across_stacks_by_value_with_run_ids_normalised() -> None:
    from lamina.testing.suite_tools import comparable

    array = np.arange(10, dtype=np.float64)
    one = comparable(
        {"id": "run-1", "where": ["run-1/start"], "a": array, "t": pa.table({"X": [1]})}, "run-1"
    )
    two = comparable(
        {"id": "run-2", "where": ["run-2/start"], "a": array.copy(), "t": pa.table({"x": [1]})}, "run-2"
    )
    assert one == two
    assert one["id"] == "<run>" and one["t"] == ("table", ["x"], [{"x": 1}])
    changed = array.copy()
    changed[3] = -1
    assert comparable(changed, "r") != comparable(array, "r")  # a digest of the bytes, not the shape
    assert comparable(ValueError("boom"), "r") == ("exception", "ValueError", "boom")
