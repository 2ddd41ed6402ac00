"""What the flow-running suites share: their flow files, and reading a run back to compare it.

The flow files live in ``lamina/testing/flows/`` (shipped in the wheel), one flow per file, so
third-party adapters run exactly the flows the first-party ones do. Runs are read back through
the public client API (:mod:`lamina.client`) on the stack that ran them, and turned into plain
values that compare equal across stacks: run ids replaced by ``<run>``, arrays by a digest, tables
by their rows, exceptions by their type and message.
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

FLOWS = Path(__file__).parent / "flows"
RUN_PLACEHOLDER = "<run>"


def flow_file(name: str) -> Path:
    """The shipped flow file ``name`` (without ``.py``)."""
    path = FLOWS / f"{name}.py"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in FLOWS.glob("*.py")))
        raise FileNotFoundError(f"no suite flow {name!r} in {FLOWS}; the shipped flows: {known}")
    return path


@contextmanager
def client_on(stack_name: str) -> Iterator[Any]:
    """The client API (``lamina.client``) reading the stores of ``stack_name``.

    The client reads the project's selected stack; a run on another stack keeps its artifacts
    in that stack's blob store, so the client is pointed at it (``LAMINA_STACK``) for the block.
    """
    from lamina import client

    before = os.environ.get("LAMINA_STACK")
    os.environ["LAMINA_STACK"] = stack_name
    client.use_store(None, None)
    try:
        yield client
    finally:
        if before is None:
            os.environ.pop("LAMINA_STACK", None)
        else:
            os.environ["LAMINA_STACK"] = before
        client.use_store(None, None)


def comparable(value: Any, run_id: str) -> Any:
    """``value`` as plain data that compares equal to the same result from another stack."""
    if isinstance(value, str):
        return value.replace(run_id, RUN_PLACEHOLDER)
    if isinstance(value, dict):
        return {comparable(k, run_id): comparable(v, run_id) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(comparable(v, run_id) for v in value)
    if isinstance(value, BaseException):
        return ("exception", type(value).__name__, comparable(str(value), run_id))
    numpy = sys.modules.get("numpy")  # loaded already if any artifact is an array
    if numpy is not None and isinstance(value, numpy.ndarray):  # memory-mapped ones too
        data = numpy.ascontiguousarray(value)
        return ("ndarray", str(value.dtype), value.shape, hashlib.sha256(data.data).hexdigest())
    pyarrow = sys.modules.get("pyarrow")
    if pyarrow is not None and isinstance(value, pyarrow.Table):
        lowered = value.rename_columns([n.lower() for n in value.column_names])  # dialects' spelling
        return ("table", lowered.column_names, comparable(lowered.to_pylist(), run_id))
    return value


def run_results(run_id: str, stack_name: str) -> dict[str, Any]:
    """Everything a run produced, by ``step/task``: its artifacts and what it printed.

    ``{"status": ..., "tasks": {"step/task_id": {"artifacts": {...}, "stdout": "..."}}}``, with
    values made :func:`comparable`.
    """
    with client_on(stack_name) as client:
        run = client.Run(run_id)
        tasks: dict[str, Any] = {}
        for step in run:
            for task in step:
                tasks[f"{step.name}/{task.id}"] = {
                    "artifacts": {name: comparable(task.data[name], run_id) for name in task.data},
                    "stdout": comparable(task.stdout, run_id),
                }
        return {"status": run.status, "tasks": tasks}


def wait_until(condition: Callable[[], bool], what: str, limit: float) -> None:
    """Poll ``condition`` until it holds; fail the test naming ``what`` after ``limit`` seconds."""
    import pytest

    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up after {limit:g} s waiting for {what}")
        time.sleep(0.05)


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this machine (a zombie counts as stopped)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc (macOS): the signal probe is all there is
    return stat.rsplit(")", 1)[-1].split()[0] not in ("Z", "X")
