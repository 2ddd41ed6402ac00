"""One rule for a step's inputs: the built-in scheduler and a deployed task (which finds its
inputs in the run store) give every task the same inputs, for every flow shape."""

from __future__ import annotations

from pathlib import Path

import pytest
from lamina.runtime.api import run_flow
from lamina.runtime.deploy import flow_descriptor
from lamina.runtime.deployed import deploy_template, deployed_task_spec, pack, parse_frame, unpack
from lamina.runtime.task import load_flow_class
from lamina.stack import resolve_stack
from lamina.versioning.runstore import RunStore

FLOWS = Path(__file__).parent / "flows"


@pytest.mark.parametrize("flow", ["nested.py", "branches.py", "counted_foreach.py", "decorated.py"])
def test_deployed_tasks_compute_the_inputs_the_scheduler_gave(lamina_project: Path, flow: str) -> None:
    outcome = run_flow(str(FLOWS / flow), echo=False)
    assert outcome.ok, outcome.message
    flow_cls = load_flow_class(str(FLOWS / flow), as_main=False)
    with resolve_stack("local") as stack:
        template = deploy_template(flow_descriptor(flow_cls, str(FLOWS / flow), stack, "code/sha256/00/00.tar.gz"))
        runs = RunStore(stack.versioning)
        records = [r for _, r in runs.records(flow_cls.__name__, outcome.run_id)]
        assert records
        for record in records:
            spec = deployed_task_spec(template, record.step, outcome.run_id, record.foreach_stack, 0, runs)
            assert (spec.task_id, spec.input_paths) == (record.task_id, record.input_paths), record.step


def test_a_packed_boot_round_trips_in_argument_sized_chunks() -> None:
    value = {"stack": {"layers": {"versioning": {"adapter": "s3", "bucket": "b" * 900}}}, "template": "deploy/F/x.json"}
    chunks = pack(value)
    assert all(len(c) <= 250 and not c.startswith("-") for c in chunks)
    assert unpack(chunks) == value
    assert parse_frame("fan:3:10").model_dump() == {"step": "fan", "index": 3, "count": 10}
