"""Large artifacts move by reference: one write, a memory map to read, no second copy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from lamina import Run
from runtime_helpers import FLOWS


def _store_size(project: Path) -> int:
    return sum(p.stat().st_size for p in (project / ".lamina" / "blobs").rglob("*") if p.is_file())


def test_a_400mb_array_and_a_million_row_table_pass_to_the_next_step(run_flow, lamina_project: Path) -> None:
    first = run_flow(FLOWS / "big_artifacts.py", max_workers=1)
    assert first.ok, first.message
    run = Run(first.run_id)
    assert run["check"].task.data.kind == "memmap"  # the next step mapped the stored bytes
    array = run.data.array
    assert array.shape == (50_000_000,) and array[-1] == 49_999_999.0
    assert np.array_equal(array[::1_000_003], np.arange(50_000_000, dtype=np.float64)[::1_000_003])
    table = run.data.table
    assert table.num_rows == 1_000_000 and table.column("id")[999_999].as_py() == 999_999
    refs = run.end_task.artifacts
    assert refs["array"].key == run["start"].task.artifacts["array"].key  # passed on by reference

    before = _store_size(lamina_project)
    again = run_flow(FLOWS / "big_artifacts.py", max_workers=1)
    assert again.ok, again.message
    assert _store_size(lamina_project) - before < 1_000_000  # equal values are stored once
    assert Run(again.run_id).end_task.artifacts["array"].key == refs["array"].key


def test_an_array_changed_in_place_is_stored_and_an_unchanged_one_passes_by_reference(run_flow) -> None:
    outcome = run_flow(FLOWS / "inplace.py")
    assert outcome.ok, outcome.message
    run = Run(outcome.run_id)
    assert run.data.first == 42.0
    start, change = run["start"].task.artifacts, run["change"].task.artifacts
    assert change["arr"].key != start["arr"].key
    assert change["untouched"].key == start["untouched"].key
