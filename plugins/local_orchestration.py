"""The ``local`` orchestration adapter: the built-in scheduler walks the DAG on this machine."""

from __future__ import annotations

from typing import Any

from lamina.errors import LaminaError, NotFound
from lamina.hookspecs import AdapterContext, hookimpl
from lamina.models import AdapterInfo, AdapterSettings, CheckResult, Deployment, DeployResult, RunState


class LocalOrchestrationSettings(AdapterSettings):
    pass


class LocalOrchestration:
    def __init__(self, settings: LocalOrchestrationSettings, context: AdapterContext) -> None:
        self.settings = settings
        self.context = context

    @hookimpl
    def orchestration_deploy(self, flow: dict[str, Any], schedule: str | None, dry_run: bool) -> DeployResult:
        raise LaminaError(
            "the local stack's orchestrator is the built-in scheduler, which runs flows while "
            "`python flow.py run` runs; it has no service to deploy to. Deploy to a stack whose "
            "orchestrator is a service, e.g. `python flow.py deploy --stack aws-sagemaker`."
        )

    @hookimpl
    def orchestration_trigger(self, flow_name: str, parameters: dict[str, Any], branch: str | None) -> str:
        raise LaminaError(
            "the local stack has no deployed flows to trigger: run them with `python flow.py run`."
        )

    @hookimpl
    def orchestration_status(self, flow_name: str, run_id: str, branch: str | None) -> RunState:
        raise NotFound(
            f"the local stack deploys nothing, so it follows no deployed run ({flow_name}/{run_id}): "
            "`lamina show` shows runs of `python flow.py run`."
        )

    @hookimpl
    def orchestration_publish(self, name: str, payload: dict[str, Any]) -> str:
        raise LaminaError(
            f"the local stack has no event bus: nothing deployed can be triggered by {name!r}. Publish events on "
            "a stack whose orchestrator is a service, e.g. `lamina event publish NAME --stack aws-sagemaker`."
        )

    @hookimpl
    def orchestration_deployments(self) -> list[Deployment]:
        return []  # the built-in scheduler deploys nothing

    @hookimpl
    def orchestration_delete(self, flow_name: str, branch: str | None) -> str:
        raise LaminaError(f"the local stack deploys nothing, so there is no deployment of {flow_name} to delete.")

    @hookimpl
    def orchestration_check(self) -> CheckResult:
        return CheckResult(layer="orchestration", adapter="local", ok=True, message="built-in scheduler")

    @hookimpl
    def orchestration_transient_errors(self) -> tuple[type[BaseException], ...]:
        return ()


ADAPTER = AdapterInfo(
    layer="orchestration",
    name="local",
    settings=LocalOrchestrationSettings,
    factory=LocalOrchestration,
    description="the built-in scheduler, on this machine",
    contract=2,
    features=frozenset({"list"}),
)
