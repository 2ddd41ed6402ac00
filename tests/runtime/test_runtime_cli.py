"""``python flow.py run | resume | show | check`` as a user types them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from lamina import Run
from runtime_helpers import FLOWS, flow_cli, read_counts

pytestmark = pytest.mark.usefixtures("lamina_project")


@pytest.mark.parametrize(
    ("flow", "expected"),
    [
        ("bad/no_end.py", "has no 'end' step"),
        ("bad/no_next.py", "step 'middle' (%s:10) never calls self.next"),
        ("bad/unreachable.py", "step 'orphan' (%s:10) is unreachable"),
        ("bad/join_arity.py", "step 'end' (%s:22) is reached from b, join but does not take inputs"),
        ("bad/not_a_join.py", "step 'middle' (%s:10) takes inputs but joins no split"),
        ("bad/bad_target.py", "goes to self.ennd, which is not a step"),
    ],
)
def test_check_reports_graph_errors_with_step_and_line(flow: str, expected: str) -> None:
    result = flow_cli(flow, "check")
    assert result.returncode == 2, result.stderr
    assert (expected % (FLOWS / flow) if "%s" in expected else expected) in result.stderr
    assert "Traceback" not in result.stderr


def test_check_and_show_on_a_valid_flow() -> None:
    check = flow_cli("nested.py", "check")
    assert check.returncode == 0, check.stderr
    assert "the graph is valid (6 steps" in check.stdout
    show = flow_cli("nested.py", "show")
    assert show.returncode == 0
    assert "fan  [foreach]" in show.stdout and "=> foreach self.inner -> leaf" in show.stdout


@pytest.mark.parametrize(
    ("flow", "expected"),
    [
        ("bad/foreach_missing.py", "foreach='items' but self.items was never assigned"),
        ("bad/foreach_scalar.py", "needs something iterable, but self.items is a int"),
    ],
)
def test_foreach_over_a_missing_or_scalar_attribute_names_step_and_line(flow: str, expected: str) -> None:
    result = flow_cli(flow, "run")
    assert result.returncode == 1
    assert expected in result.stderr
    assert f"step 'start' ({FLOWS / flow}:6)" in result.stderr


def test_unsatisfiable_resources_fail_before_anything_runs() -> None:
    result = flow_cli("bad/too_big.py", "run")
    assert result.returncode == 2
    assert "step 'train': @resources cannot be met on the local stack: cpu=4096" in result.stderr
    assert "[start/0]" not in result.stdout + result.stderr  # nothing was submitted
    assert flow_cli("bad/too_big.py", "check").returncode == 2


def test_parameters_on_the_command_line_and_their_errors() -> None:
    ok = flow_cli("linear_params.py", "run", "--n", "3", "--alpha", "0.25", "--flag", "true")
    assert ok.returncode == 0, ok.stderr
    run_id = ok.stderr.split(" · run ")[1].split()[0]
    assert Run(run_id).params["alpha"] == 0.25
    missing = flow_cli("linear_params.py", "run")
    assert missing.returncode == 2 and "required parameter(s) missing: --n" in missing.stderr
    bad = flow_cli("linear_params.py", "run", "--n", "three")
    assert bad.returncode == 2 and "parameter --n: 'three' is not a valid int" in bad.stderr
    assert "Traceback" not in missing.stderr + bad.stderr


def test_output_is_live_prefixed_and_progress_is_shown() -> None:
    result = flow_cli("counted_foreach.py", "run", "--width", "3")
    assert result.returncode == 0, result.stderr
    assert "✓ work  3 tasks" in result.stderr
    assert "✓ run " in result.stderr and "finished" in result.stderr


def test_a_failed_task_shows_its_traceback_once_with_the_resume_command(counts: Path) -> None:
    result = flow_cli("counted_foreach.py", "run", "--broken", "1", "--max-workers", "1")
    assert result.returncode == 1
    err = result.stderr
    assert err.count("ValueError: item 1 is broken") == 2  # the summary line and the traceback's last line
    assert err.count("Traceback (most recent call last)") == 1
    assert 'counted_foreach.py", line 33, in work' in err
    assert "core/runtime" not in err  # only the user's frames
    assert "resume --origin-run-id" in err


def test_resume_reuses_finished_tasks_and_origin_parameters(counts: Path) -> None:
    first = flow_cli("counted_foreach.py", "run", "--broken", "2", "--width", "5", "--max-workers", "1")
    assert first.returncode == 1
    before = read_counts(counts)
    assert before["work-2"] == 1 and "work-4" not in before  # the run stopped at the failure
    resumed = flow_cli("counted_foreach.py", "resume", env={"FIXED": "1"})
    assert resumed.returncode == 0, resumed.stderr
    after = read_counts(counts)
    assert after["start"] == 1 and after["work-0"] == 1 and after["work-1"] == 1  # reused, not re-run
    assert after["work-2"] == 2 and after["work-4"] == 1 and after["end"] == 1
    assert all(after[f"work-{i}"] == before[f"work-{i}"] for i in (0, 1, 3) if f"work-{i}" in before)
    run = Run(resumed.stderr.split(" · run ")[1].split()[0])
    assert run.data.squares == [0, 1, 4, 9, 16]
    assert run.params["width"] == 5  # the origin's parameters
    assert run["work"]["0"].artifacts["square"] == Run(run.origin_run_id)["work"]["0"].artifacts["square"]


def test_resume_from_a_named_step_reruns_it_and_what_follows(counts: Path) -> None:
    assert flow_cli("counted_foreach.py", "run", "--width", "2").returncode == 0
    again = flow_cli("counted_foreach.py", "resume", "join")
    assert again.returncode == 0, again.stderr
    c = read_counts(counts)
    assert c["start"] == 1 and c["work-0"] == 1 and c["join"] == 2 and c["end"] == 2


def test_resume_after_the_runtime_was_killed_mid_foreach(counts: Path) -> None:
    env = {**os.environ}
    proc = subprocess.Popen(
        [
            sys.executable,
            str(FLOWS / "counted_foreach.py"),
            "run",
            "--width",
            "12",
            "--sleep",
            "0.4",
            "--max-workers",
            "2",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        done = [n for n in (p.name for p in counts.iterdir()) if n.startswith("work-")]
        if len(done) >= 5:
            break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    time.sleep(1)  # let the orphaned worker notice and stop
    before = read_counts(counts)
    assert "join" not in before and len([k for k in before if k.startswith("work-")]) < 12
    resumed = flow_cli("counted_foreach.py", "resume")
    assert resumed.returncode == 0, resumed.stderr
    after = read_counts(counts)
    assert after["start"] == 1
    reran = [k for k in before if k.startswith("work-") and after[k] > before[k]]
    finished_before = [k for k in before if k.startswith("work-")]
    assert len(reran) <= 2, f"finished tasks were re-run: {reran}"  # at most the ones killed mid-flight
    assert len(finished_before) - len(reran) >= 3
    assert all(after[f"work-{i}"] >= 1 for i in range(12))
    assert "reused" in resumed.stderr


def test_max_splits_caps_a_foreach() -> None:
    result = flow_cli("counted_foreach.py", "run", "--width", "20", "--max-splits", "10")
    assert result.returncode != 0
    assert "fans out over 20 items, more than the cap of 10" in result.stderr


def test_sync_rebuilds_the_index_from_the_blob_store_alone(lamina_project: Path) -> None:
    result = flow_cli("counted_foreach.py", "run", "--width", "3", "--tag", "nightly")
    assert result.returncode == 0, result.stderr
    run_id = result.stderr.split(" · run ")[1].split()[0]
    for path in (lamina_project / ".lamina").glob("metadata.db*"):
        path.unlink()  # as if the tasks had run where no database was reachable
    synced = subprocess.run(
        [sys.executable, "-m", "lamina", "sync", f"CountedFlow/{run_id}"], capture_output=True, text=True
    )
    assert synced.returncode == 0, synced.stderr
    assert "succeeded" in synced.stdout
    run = Run(run_id)
    assert run.successful and run.tags == ["nightly"] and run.params["width"] == 3
    assert run.data.squares == [0, 1, 4]


def test_sync_is_idempotent_and_keeps_the_times_a_run_really_had(lamina_project: Path) -> None:
    from lamina import client

    result = flow_cli("counted_foreach.py", "run", "--width", "2")
    assert result.returncode == 0, result.stderr
    run_id = result.stderr.split(" · run ")[1].split()[0]
    before = Run(run_id)
    started, finished = before.started_at, before.finished_at
    assert started <= before["start"].task.started_at  # the run began before its first task

    def sync() -> None:
        client.use_store(None, None)  # the next read opens the database afresh
        done = subprocess.run(
            [sys.executable, "-m", "lamina", "sync", f"CountedFlow/{run_id}"], capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr

    sync()
    sync()
    again = Run(run_id)
    assert (again.status, again.started_at, again.finished_at) == ("succeeded", started, finished)
    for path in (lamina_project / ".lamina").glob("metadata.db*"):
        path.unlink()
    time.sleep(0.01)  # a sync time could not be mistaken for the run's own
    sync()
    rebuilt = Run(run_id)
    assert rebuilt.started_at == started
    end_task = rebuilt["end"].task
    assert rebuilt.finished_at == end_task.finished_at and started < rebuilt.finished_at <= finished


def test_quiet_shows_only_the_outcome(tmp_path: Path) -> None:
    id_file = tmp_path / "run-id"
    result = flow_cli("linear_params.py", "run", "--n", "1", "--quiet", "--run-id-file", str(id_file))
    assert result.returncode == 0, result.stderr
    assert "hello from start" not in result.stdout + result.stderr
    run_id = id_file.read_text()
    assert "hello from start" in Run(run_id)["start"].task.stdout


def test_secrets_from_the_environment_are_masked_in_shown_and_stored_logs() -> None:
    secret = "s3cr3t-hunter2"
    result = flow_cli("secret_logs.py", "run", env={"DEMO_PASSWORD": secret})
    assert result.returncode == 1
    assert secret not in result.stdout + result.stderr
    assert "connecting with ***" in result.stdout + result.stderr
    run = Run(result.stderr.split(" · run ")[1].split()[0])
    assert "connecting with ***" in run["start"].task.stdout
    failed = run["end"].task
    assert secret not in failed.stderr + (failed.error or "") + (failed.traceback or "")


SECRET_VALUES = ("Pg-pass-1234", "QUJDREVGR0hJSktM", "SAS%2Bsignature", "ghp-personal-token-42")


def test_passwords_in_urls_account_keys_and_signatures_are_masked_on_console_and_in_logs() -> None:
    result = flow_cli("secret_values.py", "run", env={"MY_SERVICE_PAT": "ghp-personal-token-42"})
    assert result.returncode == 0, result.stderr
    shown = result.stdout + result.stderr
    for secret in SECRET_VALUES:
        assert secret not in shown
    assert "postgresql://lamina:***@db.internal:5432/prod" in shown
    assert "AccountKey=***;EndpointSuffix" in shown and "&sig=***" in shown and "token ***" in shown
    run_id = shown.split(" · run ")[1].split()[0]
    logs = subprocess.run(
        [sys.executable, "-m", "lamina", "logs", f"{run_id}/start"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert logs.returncode == 0
    for secret in SECRET_VALUES:
        assert secret not in logs.stdout
    assert "postgresql://lamina:***@db.internal" in logs.stdout and "token ***" in logs.stdout


@pytest.mark.timeout(120)
def test_fifty_megabytes_without_a_newline_are_shown_and_stored_whole() -> None:
    size = 50_000_000
    result = flow_cli(
        "secret_values.py", "run", env={"MY_SERVICE_PAT": "x" * 8, "LONG_LINE_BYTES": str(size)}
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.count("#") == size
    run_id = result.stderr.split(" · run ")[1].split()[0]
    assert Run(run_id)["end"].task.stdout == "#" * size


def test_the_metadata_url_refusal_does_not_print_the_password(tmp_path: Path) -> None:
    profile = tmp_path / "pw.toml"
    profile.write_text(
        '[data]\nadapter = "duckdb"\n[compute]\nadapter = "local"\n[orchestration]\nadapter = "local"\n'
        '[versioning]\nadapter = "local"\nmetadata_url = "postgresql://lamina:Hunter2-db-pass@127.0.0.1/test"\n'
    )
    result = subprocess.run(
        [sys.executable, "-m", "lamina", "stack", "register", "pw", "--file", str(profile)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert (
        "key 'metadata_url' holds a literal password or another secret inside its value" in result.stderr
        and "PGPASSWORD" in result.stderr
    )
    assert (
        "Hunter2-db-pass" not in result.stderr and "postgresql://lamina:***@127.0.0.1/test" in result.stderr
    )


def test_resume_of_a_run_that_succeeded_says_so_instead_of_making_a_new_run(counts: Path) -> None:
    first = flow_cli("counted_foreach.py", "run")
    assert first.returncode == 0, first.stderr
    run_id = first.stderr.split(" · run ")[1].split()[0]
    for args in ((), ("--origin-run-id", run_id)):
        again = flow_cli("counted_foreach.py", "resume", *args)
        assert again.returncode == 2
        assert f"run CountedFlow/{run_id} succeeded, so there is nothing to resume" in again.stderr
        assert "`python flow.py run`" in again.stderr and "Traceback" not in again.stderr
    listed = subprocess.run(
        [sys.executable, "-m", "lamina", "runs", "--json"], capture_output=True, text=True, timeout=60
    )
    assert [r["id"] for r in json.loads(listed.stdout)] == [run_id]  # no new run


def test_quiet_still_shows_the_error_of_a_failed_run(counts: Path) -> None:
    result = flow_cli("counted_foreach.py", "run", "--quiet", "--broken", "1")
    assert result.returncode == 1
    assert "failed at step 'work' (task 1): ValueError: item 1 is broken." in result.stderr
    assert "resume --origin-run-id" in result.stderr
