"""Per-step environments: ``@pypi``/``@conda`` steps get their packages, the other steps do not."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from lamina import FlowSpec, Run, conda, pypi, step
from lamina.errors import EnvironmentBuildError, FlowDefinitionError
from lamina.flow.packages import step_environment
from lamina.stack import resolve_stack
from lamina.versioning.runstore import RunStore
from mf_helpers import FLOWS, flow_cli


@pytest.fixture
def env_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """One environment cache for the module's tests, so an environment is built once."""
    cache = tmp_path_factory.getbasetemp() / "lamina-env-cache"
    monkeypatch.setenv("LAMINA_CACHE_DIR", str(cache))
    return cache


def test_only_the_decorated_step_gets_the_package(run_flow, env_cache: Path) -> None:
    outcome = run_flow(FLOWS / "pypi_flow.py")
    assert outcome.ok, outcome.message
    run = Run(outcome.run_id)
    assert run["start"].task.data.start_has_it is False
    writer = run["writer"].task.data
    assert writer.document == "answer = 42\n" and writer.version == "1.0.0"
    assert writer.prefix.startswith(str(env_cache / "envs"))
    assert run.data.end_has_it is False


def test_the_environment_is_recorded_with_the_run_and_reused(run_flow, env_cache: Path) -> None:
    first = run_flow(FLOWS / "pypi_flow.py")
    second = run_flow(FLOWS / "pypi_flow.py")
    assert first.ok and second.ok
    with resolve_stack("local") as stack:
        manifest = RunStore(stack.versioning).load_manifest("PypiFlow", second.run_id)
    recorded = manifest["environments"]
    assert Run(second.run_id).environments == recorded
    assert list(recorded) == ["writer"]
    assert recorded["writer"]["requirements"] == ["tomli-w==1.0.0"]
    assert Run(first.run_id)["writer"].task.data.prefix == Run(second.run_id)["writer"].task.data.prefix
    assert len(list((env_cache / "envs").glob("*/lamina-environment.json"))) >= 1


def test_conda_names_resolve_to_the_index_and_conda_only_packages_are_refused() -> None:
    class Flow(FlowSpec):
        @conda(libraries={"pytorch": "2.3.0", "scikit-learn": "", "py-xgboost": ">=2"})
        @step
        def start(self): ...

    env = step_environment(Flow, "start", Flow.graph()["start"].decorations)
    assert env is not None and env.requirements == ["scikit-learn", "torch==2.3.0", "xgboost>=2"]
    with pytest.raises(FlowDefinitionError, match="'cudatoolkit' exists only on conda channels"):

        class Gpu(FlowSpec):
            @conda(libraries={"cudatoolkit": "11.8"})
            @step
            def start(self): ...

        step_environment(Gpu, "start", Gpu.graph()["start"].decorations)


def test_conda_base_applies_to_every_step_unless_disabled(lamina_project: Path, env_cache: Path) -> None:
    done = flow_cli("conda_flow.py", "--environment=conda", "run", "--run-id-file", "rid")
    assert done.returncode == 0, done.stderr
    assert "asks for Python 3.9.10; its environment uses this interpreter" in done.stderr
    run = Run(Path("rid").read_text())
    assert run["start"].task.data.base == "a = 1\n"
    assert run.data.end_has_it is False


def test_a_package_the_index_lacks_fails_before_any_task(run_flow, env_cache: Path, tmp_path: Path) -> None:
    flow = tmp_path / "bad_flow.py"
    flow.write_text(
        "from lamina import FlowSpec, pypi, step\n\n"
        "class BadFlow(FlowSpec):\n"
        "    @pypi(packages={'tomli-w': '999.0.0'})\n"
        "    @step\n"
        "    def start(self):\n"
        "        self.next(self.end)\n\n"
        "    @step\n"
        "    def end(self):\n"
        "        pass\n"
    )
    with pytest.raises(
        EnvironmentBuildError,
        match=r"step 'start': could not build its @pypi environment \(tomli-w==999.0.0\)",
    ):
        run_flow(flow)


def test_pypi_and_conda_on_one_step_is_an_error() -> None:
    class Both(FlowSpec):
        @pypi(packages={"six": ""})
        @conda(libraries={"six": ""})
        @step
        def start(self): ...

    with pytest.raises(FlowDefinitionError, match="either @pypi or @conda"):
        step_environment(Both, "start", Both.graph()["start"].decorations)


def test_without_uv_pip_builds_the_environment(env_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import subprocess

    from lamina.models import StepEnvironment
    from lamina.runtime import environments

    monkeypatch.setattr(environments, "_uv", lambda: None)
    env = StepEnvironment(packages={"tomli-w": "==1.0.0"}, requirements=["tomli-w==1.0.0"], key="pip" * 10)
    python = environments.ensure_environment(env, "start")
    ready = json.loads((Path(python).parents[1] / "lamina-environment.json").read_text())
    assert ready["installer"] == "pip"
    probe = "import tomli_w, lamina; print(tomli_w.dumps({'x': 1}).strip())"
    assert (
        subprocess.run([python, "-c", probe], capture_output=True, text=True, check=True).stdout == "x = 1\n"
    )


def test_a_deployed_flow_carries_each_step_environment_to_its_tasks(lamina_stack) -> None:
    from lamina.runtime.api import resolve_flow
    from lamina.runtime.deploy import flow_descriptor
    from lamina.runtime.deployed import deploy_template, deployed_task_spec
    from lamina.versioning.runstore import RunStore

    flow_cls, flow_file = resolve_flow(FLOWS / "pypi_flow.py")
    template = deploy_template(flow_descriptor(flow_cls, flow_file, lamina_stack, "code/sha256/ab"))
    assert template["steps"]["writer"]["environment"]["requirements"] == ["tomli-w==1.0.0"]
    assert "environment" not in template["steps"]["start"]
    runs = RunStore(lamina_stack.versioning)
    runs.save_params("PypiFlow", "r1", {})
    assert deployed_task_spec(template, "start", "r1", [], 0, runs).environment is None
