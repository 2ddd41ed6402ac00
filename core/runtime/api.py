"""Run flows from Python: notebooks, tests, other tools.

```python
from lamina import run_flow
outcome = run_flow("flows/train.py", {"alpha": 0.3}, stack="local")
```
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import LaminaError, ParameterError, RunFailed
from ..models import RunOutcome

if TYPE_CHECKING:
    from ..flow.spec import FlowSpec
    from ..stack import Stack


def resolve_flow(flow: str | Path | type[FlowSpec]) -> tuple[type[FlowSpec], str]:
    from .task import load_flow_class

    if isinstance(flow, str | Path):
        path = str(Path(flow).resolve())
        return load_flow_class(path, as_main=False), path
    source = inspect.getsourcefile(flow)
    if source is None:
        raise LaminaError(
            f"cannot find the file that defines {flow.__name__}: flows must live in a .py file."
        )
    return flow, str(Path(source).resolve())


def run_flow(
    flow: str | Path | type[FlowSpec],
    params: dict[str, Any] | None = None,
    *,
    stack: str | Stack | None = None,
    max_workers: int | None = None,
    max_splits: int | None = None,
    tags: list[str] | None = None,
    echo: bool = True,
    origin_run_id: str | None = None,
    resume_step: str | None = None,
    resume: bool = False,
    raise_on_failure: bool = False,
    with_decorators: list[str] | None = None,
) -> RunOutcome:
    """Run (or, with ``resume``/``origin_run_id``, resume) a flow and wait for it to finish.

    ``with_decorators`` adds decorators to every step, as ``--with`` does on the command line:
    ``["retry", "kubernetes:cpu=2,memory=4000"]``.
    """
    from ..flow.spec import check_flow_names
    from ..stack import Stack, resolve_stack
    from .scheduler import DEFAULT_MAX_SPLITS, RunDriver

    flow_cls, flow_file = resolve_flow(flow)
    check_flow_names(flow_cls)
    for option, value in (("max_workers", max_workers), ("max_splits", max_splits)):
        if value is not None and (not isinstance(value, int) or value < 1):
            raise ParameterError(f"run_flow(): {option} must be a whole number of at least 1, got {value!r}.")
    flow_cls.graph().validate()
    resolved = stack if isinstance(stack, Stack) else resolve_stack(stack)
    owned = not isinstance(stack, Stack)
    try:
        given = dict(params or {})
        if resume or origin_run_id:
            origin = origin_run(resolved, flow_cls.graph().name, origin_run_id)
            if origin.succeeded and not resume_step:
                raise NothingToResume(
                    f"resume: run {flow_cls.graph().name}/{origin.id} succeeded, so there is nothing to "
                    "resume. Start a new run with `python flow.py run`, or re-run it from a step with "
                    f"`python flow.py resume --origin-run-id {origin.id} STEP` (tasks before STEP are reused)."
                )
            origin_run_id = origin.id
            given = {**origin.params, **given}  # a resumed run keeps its origin's parameters
        values = flow_cls.resolve_parameters(given)
        driver = RunDriver(
            flow_cls,
            flow_file,
            resolved,
            values,
            max_workers=max_workers,
            max_splits=max_splits or DEFAULT_MAX_SPLITS,
            origin_run_id=origin_run_id,
            resume_step=resume_step,
            tags=tags,
            echo=echo,
            with_decorators=with_decorators,
        )
        driver.start()
        outcome = driver.walk()  # the built-in scheduler walks every interactive run
    finally:
        if owned:
            resolved.close()
    if not outcome.ok and raise_on_failure:
        raise RunFailed(outcome.message)
    return outcome


class NothingToResume(LaminaError):
    """``resume`` without a step, of a run that succeeded."""

    exit_code = 2


@dataclass
class Origin:
    id: str
    params: dict[str, Any]
    succeeded: bool = False


def origin_run(stack: Stack, flow_name: str, run_id: str | None) -> Origin:
    """The run to resume: the given one, else the latest of this flow by this user.

    Read from the run's manifest in the blob store (no database on the critical path); runs
    recorded before manifests existed are looked up in the metadata store.
    """
    from ..versioning.runstore import RunStore
    from .scheduler import current_user

    runs = RunStore(stack.versioning)
    run_id = run_id or runs.latest_run(flow_name, current_user())
    if run_id:
        manifest = runs.load_manifest(flow_name, run_id)
        if manifest is not None:
            return Origin(
                run_id, dict(manifest.get("params", {})), runs.step_succeeded(flow_name, run_id, "end")
            )
    return _origin_from_metadata(stack, flow_name, run_id)


def _origin_from_metadata(stack: Stack, flow_name: str, run_id: str | None) -> Origin:
    from ..errors import NotFound
    from ..versioning.metadata import MetadataStore
    from .scheduler import current_user

    store = MetadataStore(stack.versioning.metadata_url())
    if run_id:
        try:
            run = store.get_run(run_id)
        except NotFound:
            raise LaminaError(
                f"resume: no run {run_id!r} of {flow_name} on stack {stack.name}; `lamina runs {flow_name}` lists them."
            ) from None
        if run.flow != flow_name:
            raise LaminaError(f"resume: run {run_id} is a run of {run.flow}, not {flow_name}.")
        return Origin(run.id, dict(run.params), run.status == "succeeded")
    runs = store.runs(flow_name, user=current_user(), limit=1)
    if not runs:
        raise LaminaError(
            f"resume: {flow_name} has no earlier run on stack {stack.name}; start one with `run`."
        )
    return Origin(runs[0].id, dict(runs[0].params), runs[0].status == "succeeded")
