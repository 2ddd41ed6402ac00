"""The client API under the names Metaflow users know, over runs of a real flow."""

from __future__ import annotations

import pytest
from lamina import (
    DataArtifact,
    Flow,
    Metaflow,
    Run,
    Step,
    Task,
    default_metadata,
    default_namespace,
    get_metadata,
    get_namespace,
    metadata,
    namespace,
)
from lamina.errors import NotFound, ProfileError
from mf_helpers import FLOWS


@pytest.fixture
def runs(run_flow, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("LAMINA_USER", "alice")
    good = run_flow(FLOWS / "client_flow.py", tags=["exp:1"])
    bad = run_flow(FLOWS / "client_flow.py", {"fail": True})
    assert good.ok and not bad.ok
    yield good.run_id, bad.run_id
    default_namespace()
    default_metadata()


def test_flow_runs_and_their_properties(runs) -> None:
    good, bad = runs
    flow = Flow("ClientFlow")
    assert [r.id for r in flow.runs()] == [bad, good]
    assert [r.id for r in flow] == [bad, good]
    assert flow.latest_run.id == bad and flow.latest_successful_run.id == good
    assert [r.id for r in flow.runs("exp:1")] == [good]
    assert flow[good].id == good
    run = Run(f"ClientFlow/{good}")
    assert run.successful and run.finished and run.finished_at >= run.created_at
    assert not Run(f"ClientFlow/{bad}").successful
    assert run.data.result == 14
    assert [s.id for s in run] == ["start", "square", "join", "end"]
    assert [m.id for m in Metaflow()] == ["ClientFlow"]
    assert run["start"].task.data.context == {
        "username": "alice",
        "tags": ["exp:1"],
        "namespace": "user:alice",
        "tempdir": True,
        "run": True,
        "pathspec": f"ClientFlow/{good}/start/0",
    }


def test_step_task_and_artifact_pathspecs(runs) -> None:
    good, bad = runs
    step = Step(f"ClientFlow/{good}/square")
    assert [t.data.value for t in step] == [1, 4, 9]
    task = Task(f"ClientFlow/{good}/square/2")
    assert task.successful and task.index == 2
    assert task["value"].data == 9 and "value" in task
    assert {a.id for a in task} >= {"value", "items"}
    artifact = DataArtifact(f"ClientFlow/{good}/join/0/total")
    assert artifact.data == 14 and artifact.pathspec == f"ClientFlow/{good}/join/0/total" and artifact.sha
    with pytest.raises(NotFound, match="no step 'nope'"):
        Step(f"ClientFlow/{good}/nope")


def test_task_logs_and_exception(runs) -> None:
    good, bad = runs
    assert "starting" in Task(f"ClientFlow/{good}/start/0").stdout
    failed = Task(f"ClientFlow/{bad}/end/0")
    assert "almost done" in failed.stderr
    assert failed.exception == "ValueError: asked to fail" and not failed.successful
    assert Task(f"ClientFlow/{good}/end/0").exception is None


def test_tags(runs) -> None:
    good, _ = runs
    run = Run(f"ClientFlow/{good}")
    assert run.tags == ["exp:1"] and run.user_tags == ["exp:1"]
    assert "user:alice" in run.system_tags and "stack:local" in run.system_tags
    run.add_tags(["a", "b"])
    run.replace_tag("a", "c")
    assert sorted(Run(good).tags) == ["b", "c", "exp:1"]
    run.remove_tags(["b", "c"])
    assert Run(good).tags == ["exp:1"]


def test_namespaces(runs, monkeypatch: pytest.MonkeyPatch) -> None:
    good, _ = runs
    assert get_namespace() == "user:alice"
    namespace("user:bob")
    with pytest.raises(NotFound, match="outside the current namespace"):
        Run(good)
    assert Flow("ClientFlow").latest_run is None
    namespace(None)
    assert Run(good).id == good
    assert default_namespace() == "user:alice" and get_namespace() == "user:alice"


def test_a_metadata_provider_is_a_stack(runs, lamina_project) -> None:
    here = get_metadata()
    assert here.startswith("local@sqlite:///") and here.endswith("metadata.db")
    assert metadata("local") == here
    assert metadata("local@/somewhere/.metaflow") == here  # Metaflow's spelling: the stack before '@'
    with pytest.raises(ProfileError, match="no-such-stack"):
        metadata("no-such-stack")
    assert default_metadata() == here
