"""Conformance tests for orchestration adapters (deployers), in the style of fsspec's.

What every deployer promises (the orchestration contract, :class:`lamina.hookspecs.OrchestrationSpec`):
a definition compiles from every flow shape; ``deploy --dry-run`` has no side effect; ``deploy``
creates the deployment and starts no run; ``trigger`` starts one and returns its run id;
``status`` follows a deployed run to its end. Subclass :class:`OrchestrationSuite` and provide
``orchestration_stack``: the name of a stack whose orchestrator is under test, usable in the
test's environment (an emulator's, for a cloud), in the ``lamina_project`` project::

    from lamina.testing.orchestration_suite import OrchestrationSuite

    class TestMyDeployer(OrchestrationSuite):
        @pytest.fixture
        def orchestration_stack(self, my_emulator_env):
            return "my-cloud"

Set ``executes = False`` on a subclass whose stand-in cannot execute deployed runs to their end.
"""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path
from typing import Any, ClassVar

import pytest
from lamina.errors import LaminaError
from lamina.models import DeployResult

FLOWS = Path(__file__).with_name("orchestration_flows")
RUN_ID = re.compile(r"^\d{8}T\d{6}\.\d{6}\.[0-9a-f]{6}$")


def _deploy(stack: str, flow_file: Path, *, dry_run: bool = False, schedule: str | None = None) -> DeployResult:
    from lamina.runtime.deploy import deploy_flow
    from lamina.runtime.task import load_flow_class

    return deploy_flow(load_flow_class(str(flow_file), as_main=False), str(flow_file), stack=stack,
                       dry_run=dry_run, schedule=schedule)  # fmt: skip


def _stored_runs(stack: str, flow: str) -> list[str]:
    from lamina.stack import resolve_stack
    from lamina.versioning.runstore import RunStore

    with resolve_stack(stack) as resolved:
        return RunStore(resolved.versioning).run_ids(flow)


class OrchestrationSuite:
    """The behaviour every orchestration adapter promises. Subclass it and provide ``orchestration_stack``."""

    executes: ClassVar[bool] = True
    """Whether deployed runs really execute on the stack under test (a stand-in may only record them)."""
    run_timeout: ClassVar[float] = 300.0

    @pytest.fixture
    def orchestration_stack(self) -> str:
        pytest.fail(f"{type(self).__name__} must provide an 'orchestration_stack' fixture")

    @pytest.fixture
    def flows(self, lamina_project: Path) -> Path:
        """The suite's flows, copied into the project (each deploys its own folder as code)."""
        dest = lamina_project / "deployed"
        shutil.copytree(FLOWS, dest)
        return dest

    def test_a_definition_compiles_from_every_flow_shape(self, orchestration_stack: str, flows: Path) -> None:
        for name in ("linear.py", "shapes.py"):
            result = _deploy(orchestration_stack, flows / name, dry_run=True)
            assert isinstance(result, DeployResult) and result.dry_run
            assert result.definition, f"{name}: the dry run compiled no definition"

    def test_a_dry_run_has_no_side_effect(self, orchestration_stack: str, flows: Path) -> None:
        from lamina.stack import resolve_stack

        _deploy(orchestration_stack, flows / "linear.py", dry_run=True)
        with resolve_stack(orchestration_stack) as stack:
            with pytest.raises(LaminaError, match="not deployed"):
                stack.orchestration.trigger("DeployLinearFlow", {})
        assert _stored_runs(orchestration_stack, "DeployLinearFlow") == []

    def test_deploy_creates_the_deployment_and_starts_no_run(self, orchestration_stack: str, flows: Path) -> None:
        result = _deploy(orchestration_stack, flows / "shapes.py")
        assert not result.dry_run and result.target
        again = _deploy(orchestration_stack, flows / "shapes.py")  # deploying twice updates
        assert again.target == result.target
        assert _stored_runs(orchestration_stack, "DeployShapesFlow") == []

    def test_trigger_returns_a_run_id_that_status_follows(self, orchestration_stack: str, flows: Path) -> None:
        from lamina.stack import resolve_stack

        _deploy(orchestration_stack, flows / "linear.py")
        with resolve_stack(orchestration_stack) as stack:
            run_id = stack.orchestration.trigger("DeployLinearFlow", {"n": "4"})
            assert RUN_ID.match(run_id), f"trigger must return the run id, got {run_id!r}"
            state = stack.orchestration.status("DeployLinearFlow", run_id)
        assert state.run_id == run_id and state.status in ("running", "succeeded", "failed")

    def test_a_deployed_run_is_followed_to_its_end(self, orchestration_stack: str, flows: Path) -> None:
        if not self.executes:
            pytest.skip(f"{type(self).__name__}: this stand-in does not execute deployed runs")
        from lamina.stack import resolve_stack

        _deploy(orchestration_stack, flows / "shapes.py")
        with resolve_stack(orchestration_stack) as stack:
            run_id = stack.orchestration.trigger("DeployShapesFlow", {})
            deadline = time.monotonic() + self.run_timeout
            state: Any = None
            while time.monotonic() < deadline:
                state = stack.orchestration.status("DeployShapesFlow", run_id)
                if state.status != "running":
                    break
                time.sleep(0.5)
        assert state is not None and state.status == "succeeded", state
        assert run_id in _stored_runs(orchestration_stack, "DeployShapesFlow")
