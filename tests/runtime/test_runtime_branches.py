"""@project branches: which branch a run or deployment belongs to, and the one naming rule for
deployed resources."""

from __future__ import annotations

import pytest
from lamina import FlowSpec, project, step
from lamina.errors import FlowDefinitionError, ParameterError
from lamina.runtime.branches import deployment_name, resolve_branch


@project(name="churn")
class InProject(FlowSpec):
    @step
    def start(self):
        self.next(self.end)

    @step
    def end(self):
        pass


class NoProject(FlowSpec):
    @step
    def start(self):
        self.next(self.end)

    @step
    def end(self):
        pass


def test_the_branch_defaults_to_the_users_own_and_production_is_prod(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAMINA_USER", "ana")
    assert resolve_branch(InProject, None, False).name == "user.ana"
    assert resolve_branch(InProject, None, True).tags == ["project:churn", "branch:prod"]
    assert resolve_branch(InProject, "exp-2", False).name == "exp-2"
    assert resolve_branch(NoProject, None, False) is None


def test_bad_branch_requests_are_clear_errors() -> None:
    with pytest.raises(ParameterError, match="has no @project"):
        resolve_branch(NoProject, "x", False)
    with pytest.raises(ParameterError, match="not both"):
        resolve_branch(InProject, "x", True)
    with pytest.raises(ParameterError, match="branch 'a/b'"):
        resolve_branch(InProject, "a/b", False)
    with pytest.raises(FlowDefinitionError, match="@project needs a name"):
        project(InProject)
    with pytest.raises(FlowDefinitionError, match="name must be"):
        project(name="has space")(NoProject)


def test_deployed_names_are_cut_to_the_service_limit_without_collisions() -> None:
    assert deployment_name("TrainFlow") == "TrainFlow"
    assert deployment_name("TrainFlow", "churn", "user.ana", prefix="lamina-") == "lamina-churn-user-ana-TrainFlow"
    long_a = deployment_name("F" * 70, "churn", "branch-a", max_length=40)
    long_b = deployment_name("F" * 70, "churn", "branch-b", max_length=40)
    assert len(long_a) == len(long_b) == 40 and long_a != long_b


def test_a_local_run_on_a_branch_is_tagged_with_it(lamina_project, tmp_path) -> None:
    import subprocess
    import sys
    import textwrap

    flow = lamina_project / "flow.py"
    flow.write_text(textwrap.dedent('''
        from lamina import FlowSpec, project, step

        @project(name="churn")
        class BranchedFlow(FlowSpec):
            @step
            def start(self):
                self.next(self.end)

            @step
            def end(self):
                pass

        if __name__ == "__main__":
            BranchedFlow()
    '''))
    done = subprocess.run([sys.executable, str(flow), "run", "--branch", "exp"], capture_output=True, text=True,
                          cwd=lamina_project, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    runs = subprocess.run([sys.executable, "-m", "lamina", "runs", "--project", "churn", "--branch", "exp"],
                          capture_output=True, text=True, cwd=lamina_project, timeout=60)  # fmt: skip
    assert "BranchedFlow" in runs.stdout and "branch:exp" in runs.stdout
    none = subprocess.run([sys.executable, "-m", "lamina", "runs", "--branch", "prod"],
                          capture_output=True, text=True, cwd=lamina_project, timeout=60)  # fmt: skip
    assert "no runs" in none.stdout
