"""The ``dask`` compute adapter on a real Dask cluster, bound to 127.0.0.1.

One cluster serves the module: a LocalCluster of two workers offering ``CPU=2, MEMORY=4e9``, plus
one ``dask worker`` process, started from the command line as a user would, that also offers a
GPU (``GPU=1, CPU=1, MEMORY=2e9``). Most tests reach it through a project profile with its
``address``; one runs the built-in ``dask`` profile, whose adapter starts (and closes) its own
LocalCluster.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from lamina import Run
from lamina.errors import LaminaError, ResourceUnsatisfiable
from lamina.models import TaskSpec
from lamina.testing import ComputeSuite

distributed = pytest.importorskip("distributed")
psutil = pytest.importorskip("psutil")

REPO = Path(__file__).resolve().parents[2]
RUNTIME_FLOWS = REPO / "tests" / "runtime" / "flows"
QUICKSTART = REPO / "examples" / "quickstart" / "flow.py"
STACK = "dask-test"


@dataclass(frozen=True)
class Cluster:
    address: str
    client: Any
    local_workers: frozenset[str]
    gpu_worker: str


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    from distributed import Client, LocalCluster

    local = LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address="127.0.0.1:0",
        resources={"CPU": 2, "MEMORY": 4e9},
        silence_logs=logging.ERROR,
    )
    client = Client(local, set_as_default=False)
    local_workers = frozenset(client.scheduler_info(n_workers=-1)["workers"])
    log = tmp_path_factory.mktemp("dask") / "gpu-worker.log"
    with log.open("wb") as out:
        gpu = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "distributed.cli.dask_worker",
                local.scheduler_address,
                "--host",
                "127.0.0.1",
                "--no-nanny",
                "--no-dashboard",
                "--dashboard-address",  # its HTTP server (metrics, health) too: 0.0.0.0 otherwise
                "127.0.0.1:0",
                "--nthreads",
                "1",
                "--resources",
                "GPU=1 CPU=1 MEMORY=2e9",
                "--name",
                "gpu-worker",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        client.wait_for_workers(3, timeout=60)
        (gpu_worker,) = set(client.scheduler_info(n_workers=-1)["workers"]) - local_workers
        yield Cluster(local.scheduler_address, client, local_workers, gpu_worker)
    finally:
        client.close()
        gpu.terminate()
        try:
            gpu.wait(timeout=30)
        except subprocess.TimeoutExpired:
            gpu.kill()
            gpu.wait()
        local.close()


def write_profile(project: Path, name: str, compute: str) -> str:
    stacks = project / ".lamina" / "stacks"
    stacks.mkdir(parents=True, exist_ok=True)
    (stacks / f"{name}.toml").write_text(
        f'[data]\nadapter = "duckdb"\n[compute]\nadapter = "dask"\n{compute}\n'
        '[orchestration]\nadapter = "local"\n[versioning]\nadapter = "local"\n'
    )
    return name


@pytest.fixture
def dask_stack(lamina_project: Path, cluster: Cluster) -> str:
    """A project profile whose compute is the module's cluster, by address (warm workers)."""
    return write_profile(lamina_project, STACK, f'address = "{cluster.address}"\ntimeout = 30')


@pytest.fixture(params=["auto", "process"])
def each_mode(request: pytest.FixtureRequest, lamina_project: Path, cluster: Cluster) -> str:
    """The module's cluster in each mode: warm forking workers, and a process per task."""
    mode = request.param
    return write_profile(
        lamina_project, f"{STACK}-{mode}", f'address = "{cluster.address}"\ntimeout = 30\nmode = "{mode}"'
    )


def write_flow(project: Path, name: str, source: str) -> Path:
    path = project / f"{name}.py"
    path.write_text(textwrap.dedent(source))
    return path


def results(run_id: str) -> dict[tuple[str, str], dict[str, Any]]:
    """Every artifact of every task of a run, by (step, task id)."""
    return {
        (step.name, task.id): {name: task.data[name] for name in task.data}
        for step in Run(run_id)
        for task in step
    }


def children() -> set[int]:
    return {p.pid for p in psutil.Process().children(recursive=True)}


def warm_workers() -> list[int]:
    """``python -m lamina worker`` processes under this one (the cluster's workers are its children)."""
    found = []
    for proc in psutil.Process().children(recursive=True):
        try:
            if proc.status() != psutil.STATUS_ZOMBIE and proc.cmdline()[1:4] == ["-m", "lamina", "worker"]:
                found.append(proc.pid)
        except psutil.NoSuchProcess:
            pass
    return found


# -- same results as on the local stack --------------------------------------------------------


def test_nested_foreach_gives_the_same_results_as_local(run_flow, dask_stack: str, cluster: Cluster) -> None:
    local = run_flow(RUNTIME_FLOWS / "nested.py", stack="local")
    assert local.ok, local.message
    with distributed.get_task_stream(client=cluster.client) as stream:
        on_dask = run_flow(RUNTIME_FLOWS / "nested.py", stack=dask_stack)
    assert on_dask.ok, on_dask.message

    assert results(on_dask.run_id) == results(local.run_id)
    assert Run(on_dask.run_id)["join_outer"].task.data.all == ["a1", "a2", "a3", "b1", "b2", "b3"]
    # every task went through the cluster: start, 2 fans, 6 leaves, 2 inner joins, the outer join, end
    ran = [t["key"] for t in stream.data if on_dask.run_id in str(t["key"])]
    assert len(ran) == 13
    # the run's warm workers on the cluster's workers stop when it ends
    wait_until(lambda: not warm_workers(), "the run's warm Lamina workers to stop")


def test_quickstart_on_a_local_cluster_the_stack_starts_and_closes(
    run_flow, lamina_project: Path, cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DASK_SCHEDULER_ADDRESS", raising=False)  # the built-in profile's address
    local = run_flow(QUICKSTART, {"count": 3}, stack="local")
    assert local.ok, local.message
    before = children()
    on_dask = run_flow(QUICKSTART, {"count": 3}, stack="dask")
    assert on_dask.ok, on_dask.message

    assert results(on_dask.run_id) == results(local.run_id)
    run = Run(on_dask.run_id)
    assert run.data.squares == [1, 4, 9]
    assert run["square"]["1"].metrics["square"][0].value == 4.0
    assert f"run {on_dask.run_id} on stack dask" in run["start"].task.stdout
    # the LocalCluster's workers are gone once the run ends
    wait_until(
        lambda: not any(alive(pid) for pid in children() - before), "the LocalCluster's workers to exit"
    )


def listening(pids: set[int]) -> set[str]:
    """The addresses ``pids`` listen on (TCP)."""
    return {
        f"{conn.laddr.ip}:{conn.laddr.port}"
        for conn in psutil.net_connections("tcp")
        if conn.status == psutil.CONN_LISTEN and conn.pid in pids
    }


def test_the_local_cluster_listens_on_loopback_only_and_closes_with_the_run(
    lamina_project: Path, cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lamina.stack import resolve_stack

    monkeypatch.delenv("DASK_SCHEDULER_ADDRESS", raising=False)
    before = children()
    with resolve_stack("dask") as stack:
        stack.compute.start("a-run", str(QUICKSTART), stack.snapshot(), 2)
        report = stack.compute.check()
        started = children() - before
        assert started  # the scheduler runs in this process, its workers in child processes
        addresses = listening(started | {os.getpid()})
        assert addresses and all(a.startswith("127.0.0.1:") for a in addresses), addresses
        assert report.ok and "scheduler tcp://127.0.0.1:" in report.message, report.message
        stack.compute.shutdown()
        wait_until(lambda: not any(alive(pid) for pid in started), "the LocalCluster's workers to exit")


# -- @resources --------------------------------------------------------------------------------

BIG_FLOW = """
    import os
    from pathlib import Path

    from lamina import FlowSpec, resources, step


    class BigFlow(FlowSpec):
        @step
        def start(self):
            (Path(os.environ["LAMINA_PROJECT_DIR"]) / "started").write_text("yes")
            self.next(self.train)

        @resources(cpu=64)
        @step
        def train(self):
            self.next(self.end)

        @step
        def end(self):
            pass
"""


def test_an_unsatisfiable_request_fails_before_anything_is_submitted(
    run_flow, lamina_project: Path, dask_stack: str
) -> None:
    flow = write_flow(lamina_project, "big", BIG_FLOW)
    with pytest.raises(ResourceUnsatisfiable) as failure:
        run_flow(flow, stack=dask_stack)
    message = str(failure.value)
    assert "step 'train'" in message and "cpu=64" in message
    assert "largest offer is CPU=2" in message  # the LocalCluster workers offer the most CPU
    assert "--resources" in message  # and how to offer more
    assert not (lamina_project / "started").exists()


def test_a_local_cluster_not_started_yet_is_judged_by_its_settings(run_flow, lamina_project: Path) -> None:
    stack = write_profile(
        lamina_project, "small", "n_workers = 1\nworker_resources = { CPU = 1, MEMORY = 1e9 }"
    )
    flow = write_flow(lamina_project, "big", BIG_FLOW)
    before = children()
    with pytest.raises(ResourceUnsatisfiable, match=r"step 'train'.*cpu=64.*largest offer is CPU=1, MEMORY="):
        run_flow(flow, stack=stack)
    assert children() <= before  # no cluster was started to find out
    assert not (lamina_project / "started").exists()


PLACED_FLOW = """
    import os

    from lamina import FlowSpec, resources, step


    class PlacedFlow(FlowSpec):
        @step
        def start(self):
            self.next(self.on_gpu)

        @resources(gpu=1)
        @step
        def on_gpu(self):
            import psutil

            self.worker = os.environ["LAMINA_DASK_WORKER"]
            self.forked_by = psutil.Process(os.getppid()).cmdline()[1:4]
            print("ran on", self.worker)
            self.next(self.big_memory)

        @resources(memory=3000, cpu=2)
        @step
        def big_memory(self):
            self.worker = os.environ["LAMINA_DASK_WORKER"]
            self.next(self.end)

        @step
        def end(self):
            pass
"""


def test_resources_that_fit_run_on_a_worker_that_offers_them(
    run_flow, lamina_project: Path, dask_stack: str, cluster: Cluster
) -> None:
    outcome = run_flow(write_flow(lamina_project, "placed", PLACED_FLOW), stack=dask_stack)
    assert outcome.ok, outcome.message
    run = Run(outcome.run_id)
    gpu_task = run["on_gpu"].task
    assert gpu_task.data.worker == cluster.gpu_worker
    assert f"ran on {cluster.gpu_worker}" in gpu_task.stdout
    assert gpu_task.data.forked_by == ["-m", "lamina", "worker"]  # a warm worker's child
    # 3000 MiB is more than the GPU worker's 2e9 bytes: only the LocalCluster's workers fit
    assert run["big_memory"].task.data.worker in cluster.local_workers


# -- failures and cancellation -----------------------------------------------------------------

FAILING_FLOW = """
    from lamina import FlowSpec, step


    class FailingFlow(FlowSpec):
        @step
        def start(self):
            self.next(self.boom)

        @step
        def boom(self):
            raise ValueError("broken on purpose")
            self.next(self.end)

        @step
        def end(self):
            pass
"""


def test_a_failing_step_fails_the_run_cleanly(run_flow, lamina_project: Path, dask_stack: str) -> None:
    outcome = run_flow(write_flow(lamina_project, "failing", FAILING_FLOW), stack=dask_stack)
    assert not outcome.ok
    assert outcome.failed_step == "boom"
    assert "resume --origin-run-id" in outcome.message
    run = Run(outcome.run_id)
    assert run.status == "failed"
    assert run["boom"].task.error == "ValueError: broken on purpose"
    assert "broken on purpose" in run["boom"].task.traceback
    assert "end" not in run


def test_a_task_that_crashes_its_process_fails_the_run_and_spares_the_others(
    run_flow, each_mode: str
) -> None:
    outcome = run_flow(RUNTIME_FLOWS / "isolation.py", {"crash": True}, stack=each_mode)
    assert not outcome.ok
    assert outcome.failed_step == "work"
    run = Run(outcome.run_id)
    crashed = run["work"]["2"]
    assert "died" in crashed.error and "signal 11" in crashed.error
    survivors = [t for t in run["work"].tasks if t.successful]
    assert survivors and all(t.data.seen_before is None for t in survivors)  # a fresh process each


SLEEPY_FLOW = """
    import os
    import time
    from pathlib import Path

    from lamina import FlowSpec, step


    class SleepyFlow(FlowSpec):
        @step
        def start(self):
            (Path(os.environ["LAMINA_PROJECT_DIR"]) / "task.pid").write_text(str(os.getpid()))
            time.sleep(300)
            self.next(self.end)

        @step
        def end(self):
            pass
"""


def wait_until(condition: Any, what: str, limit: float = 60.0) -> None:
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.05)


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_cancel_stops_the_task_process_on_its_worker(lamina_project: Path, each_mode: str) -> None:
    from lamina.stack import resolve_stack

    flow = write_flow(lamina_project, "sleepy", SLEEPY_FLOW)
    with resolve_stack(each_mode) as stack:
        spec = TaskSpec(
            run_id="cancelled-run",
            flow_name="SleepyFlow",
            step="start",
            task_id="0",
            flow_file=str(flow),
            stack=stack.snapshot(),
        )
        compute = stack.compute
        compute.start(spec.run_id, str(flow), stack.snapshot(), 1)
        handle = compute.submit(spec)
        pid_file = lamina_project / "task.pid"
        wait_until(lambda: pid_file.exists() and pid_file.read_text(), "the task to start")
        pid = int(pid_file.read_text())
        assert alive(pid)

        compute.cancel(handle)
        (status,) = compute.wait([handle], timeout=60)
        assert status.handle == handle and status.state == "failed"
        wait_until(lambda: not alive(pid), "the task process to stop")


# -- stack check -------------------------------------------------------------------------------


def test_check_reports_the_scheduler_and_its_workers_or_how_to_fix_it(
    lamina_project: Path, dask_stack: str, cluster: Cluster
) -> None:
    from lamina.stack import resolve_stack

    with resolve_stack(dask_stack) as stack:
        result = stack.compute.check()
    assert result.ok, result.message
    assert cluster.address in result.message and "3 worker(s)" in result.message
    assert f"{cluster.gpu_worker}: CPU=1, MEMORY=2000000000 (1907 MiB), GPU=1" in result.message

    with socket.socket() as sock:  # a loopback port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    nowhere = write_profile(lamina_project, "nowhere", f'address = "127.0.0.1:{port}"\ntimeout = 2')
    with resolve_stack(nowhere) as stack:
        result = stack.compute.check()
        assert not result.ok
        assert f"cannot reach the Dask scheduler at tcp://127.0.0.1:{port}" in result.message
        assert "dask scheduler" in result.fix
        with pytest.raises(LaminaError, match="cannot reach the Dask scheduler"):
            stack.compute.start("r", "flow.py", stack.snapshot(), 1)


def test_a_bad_address_is_refused_when_the_profile_loads(lamina_project: Path) -> None:
    from lamina.errors import ProfileError
    from lamina.stack import resolve_stack

    bad = write_profile(lamina_project, "bad", 'address = "tcp://"')
    with pytest.raises(ProfileError, match="address"):
        resolve_stack(bad)


def test_the_adapter_module_imports_no_dask() -> None:
    code = "import sys, lamina.plugins.dask; print(any(m.split('.')[0] in ('dask', 'distributed') for m in sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=os.environ, check=True
    )
    assert out.stdout.strip() == "False"


# -- the compute conformance suite -------------------------------------------------------------


@pytest.mark.slow
class TestDaskComputeConformance(ComputeSuite):
    """What every compute adapter promises, on the module's cluster (warm workers by address)."""

    @pytest.fixture
    def compute_stack(self, dask_stack: str) -> str:
        return dask_stack
