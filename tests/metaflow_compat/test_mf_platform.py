"""``@batch``/``@kubernetes`` as portable resource requests, and ``--with`` on the command line."""

from __future__ import annotations

from pathlib import Path

import pytest
from lamina import Run, batch, kubernetes, resources
from lamina.errors import FlowDefinitionError, ParameterError
from lamina.flow.decorators import decorations
from mf_helpers import FLOWS, flow_cli


def test_kubernetes_and_batch_numbers_become_resources() -> None:
    @kubernetes(cpu=1, memory=500, disk=20480)
    def a(self): ...

    @batch(cpu="4", gpu=0, memory=16000, queue=None, iam_role=None)  # unset platform settings are fine
    def b(self): ...

    @resources(cpu=2, memory=1000)
    @batch(cpu=1, memory=4000)
    def c(self): ...

    assert decorations(a)["resources"] == {"cpu": 1.0, "memory": 500, "gpu": None, "disk": 20}
    assert decorations(b)["resources"] == {"cpu": 4.0, "memory": 16000, "gpu": 0, "disk": None}
    assert decorations(c)["resources"] == {"cpu": 2, "memory": 4000, "gpu": None, "disk": None}  # the larger
    assert decorations(a)["platform"] == ["kubernetes"]


@pytest.mark.parametrize(
    ("decorator", "setting", "replacement"),
    [
        (batch, {"queue": "gpu-queue"}, "instance_type"),
        (batch, {"iam_role": "arn:aws:iam::1:role/x"}, "[compute] role"),
        (kubernetes, {"namespace": "ml"}, "compute_target"),
        (kubernetes, {"service_account": "runner"}, "[compute] role"),
        (kubernetes, {"image": "python:3.12"}, "[compute] image"),
    ],
)
def test_settings_without_a_portable_meaning_name_the_profile_setting(
    decorator, setting, replacement
) -> None:
    key = next(iter(setting))
    with pytest.raises(FlowDefinitionError, match=rf"{key}=.*step 'train'.*no portable meaning") as err:

        @decorator(**setting)
        def train(self): ...

    assert replacement in str(err.value)


def test_an_unknown_setting_lists_the_portable_ones() -> None:
    with pytest.raises(FlowDefinitionError, match="unknown setting 'cpus'.*cpu, gpu, memory, disk"):

        @kubernetes(cpus=2)
        def train(self): ...


def test_the_cloud_hello_world_runs_locally_with_a_one_line_notice(lamina_project: Path) -> None:
    done = flow_cli("hello_cloud.py", "run", "--run-id-file", "rid")
    assert done.returncode == 0, done.stderr
    assert "Using metadata provider: local@sqlite:///" in done.stdout
    assert "Metaflow says: Hi from the cloud!" in done.stdout
    notices = [line for line in done.stderr.splitlines() if "@kubernetes" in line]
    assert notices == [
        "lamina: @kubernetes (step 'hello') is read as @resources(cpu=1, memory=500), "
        "run on the stack's compute (local)"
    ]
    run = Run(Path("rid").read_text())
    assert run["hello"].task.data.message == "Hi from the cloud!"


def test_a_request_the_stack_cannot_meet_fails_before_any_task(lamina_project: Path) -> None:
    done = flow_cli("hello_cloud.py", "run", "--with", "kubernetes:cpu=4096")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "cpu=4096" in done.stderr and "cannot be met on the local stack" in done.stderr


def test_with_retry_and_environment_reach_the_tasks(lamina_project: Path, tmp_path: Path) -> None:
    counts = tmp_path / "counts"
    counts.mkdir()
    env = {"COUNTS_DIR": str(counts)}
    failed = flow_cli("flaky_flow.py", "run", env=env)
    assert failed.returncode == 1 and "first attempt fails" in failed.stderr
    (counts / "start").unlink()
    done = flow_cli("flaky_flow.py", "run", "--with", "retry:times=1", "--run-id-file", "rid", env=env)
    assert done.returncode == 0, done.stderr
    assert (counts / "start").read_text() == "2"
    run = Run(Path("rid").read_text())
    assert run["configured"].task.data.kind == "tree"
    assert run.data.kind_after is None


def test_with_catch_is_applied_inside_the_task(run_flow, tmp_path: Path, monkeypatch) -> None:
    counts = tmp_path / "counts"
    counts.mkdir()
    monkeypatch.setenv("COUNTS_DIR", str(counts))
    outcome = run_flow(FLOWS / "flaky_flow.py", with_decorators=["catch:var=problem"])
    assert outcome.ok, outcome.message
    assert Run(outcome.run_id)["start"].task.data.problem == "RuntimeError: first attempt fails"


def test_a_bad_with_is_a_clear_error(run_flow) -> None:
    with pytest.raises(ParameterError, match="unknown decorator 'retries'"):
        run_flow(FLOWS / "flaky_flow.py", with_decorators=["retries"])
    with pytest.raises(ParameterError, match="KEY=VALUE"):
        run_flow(FLOWS / "flaky_flow.py", with_decorators=["retry:2"])
