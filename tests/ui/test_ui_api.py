"""The UI's JSON API over real runs, through `lamina ui` on a real socket: shapes, paging and
filters, previews, downloads, metrics, comparisons, and what it refuses."""

from __future__ import annotations

import http.client
import threading
import urllib.parse
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pytest
from lamina.ui.server import is_loopback
from ui_helpers import SECRET, Project, Server, start_server, stop_server


def raw_get(server: Server, path: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    """A request with the path exactly as given (urllib would normalise ``..`` away)."""
    parsed = urllib.parse.urlsplit(server.url)
    conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=30)
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def test_runs_are_listed_newest_first_with_what_the_list_shows(ui_server: Server, ui_project: Project) -> None:
    page = ui_server.json("/api/runs")
    assert page["total"] == 3 and page["limit"] == 50 and page["offset"] == 0
    ids = [r["id"] for r in page["runs"]]
    assert ids == [ui_project.runs["failed"], ui_project.runs["candidate"], ui_project.runs["main"]]
    main = page["runs"][2]
    assert main["flow"] == "UITrainFlow" and main["status"] == "succeeded" and main["branch"] == "main"
    assert main["params"] == {"alpha": 0.5} and main["tags"] == ["branch:main"] and main["project"] is None
    assert main["duration"] > 0 and main["started_at"] < main["finished_at"]
    assert set(main) >= {"user", "origin_run_id"}


def test_runs_page_and_filter_in_the_query(ui_server: Server, ui_project: Project) -> None:
    first = ui_server.json("/api/runs?limit=1")
    second = ui_server.json("/api/runs?limit=1&offset=1")
    assert (first["total"], second["total"]) == (3, 3)
    assert [first["runs"][0]["id"], second["runs"][0]["id"]] == [ui_project.runs["failed"], ui_project.runs["candidate"]]
    assert ui_server.json("/api/runs?offset=3")["runs"] == []
    assert [r["id"] for r in ui_server.json("/api/runs?status=failed")["runs"]] == [ui_project.runs["failed"]]
    assert ui_server.json("/api/runs?flow=UITrainFlow")["total"] == 2
    assert [r["id"] for r in ui_server.json("/api/runs?tag=branch:candidate")["runs"]] == [ui_project.runs["candidate"]]
    user = ui_server.json("/api/runs")["runs"][0]["user"]
    assert ui_server.json(f"/api/runs?user={user}")["total"] == 3
    assert ui_server.json("/api/runs?user=nobody-at-all")["total"] == 0
    assert ui_server.json("/api/flows")["flows"] == ["UIFailFlow", "UITrainFlow"]


@pytest.mark.parametrize(
    "query, message",
    [("status=done", "status must be one of"), ("limit=0", "limit must be"), ("limit=x", "limit must be an integer")],
)
def test_bad_filters_are_refused_with_a_reason(ui_server: Server, query: str, message: str) -> None:
    status, body = ui_server.get(f"/api/runs?{query}")
    assert status == 400 and message in body["error"]


def test_a_run_has_its_dag_with_fan_out_counts_and_step_statuses(ui_server: Server, ui_project: Project) -> None:
    run = ui_server.json(f"/api/runs/{ui_project.runs['main']}")
    dag = run["dag"]
    assert dag["from_manifest"]
    names = [n["name"] for n in dag["nodes"]]
    assert names[:3] == ["start", "fit", "gather"] and names[-2:] == ["merge", "end"]
    assert sorted(names[3:5]) == ["table", "weights"]
    assert ["start", "fit"] in dag["edges"] and ["gather", "table"] in dag["edges"] and ["weights", "merge"] in dag["edges"]
    nodes = {n["name"]: n for n in dag["nodes"]}
    assert nodes["start"]["type"] == "foreach" and nodes["start"]["foreach_count"] == 3
    assert nodes["fit"]["expected"] == 3 and [t["task_id"] for t in nodes["fit"]["tasks"]] == ["0", "1", "2"]
    assert [t["index"] for t in nodes["fit"]["tasks"]] == [0, 1, 2]
    assert nodes["gather"]["type"] == "join" and nodes["merge"]["type"] == "join"
    assert all(n["status"] == "succeeded" for n in dag["nodes"])
    assert all(t["attempts"] == 1 and t["duration"] is not None for n in dag["nodes"] for t in n["tasks"])
    assert run["stack_name"] == "local" and run["code_key"].startswith("code/sha256/")
    assert run["params"] == {"alpha": 0.5}
    reads = [(d["step"], d["kind"], d["target"]) for d in run["data_reads"]]
    assert reads == [("table", "write", "ui_predictions"), ("table", "table", "ui_predictions")]
    assert all(d["version"] and d["adapter"] == "duckdb" for d in run["data_reads"])
    assert run["data_reads"][1]["rows"] == 25


def test_a_failed_run_shows_the_failed_step_and_the_steps_it_never_reached(
    ui_server: Server, ui_project: Project
) -> None:
    run = ui_server.json(f"/api/runs/{ui_project.runs['failed']}")
    statuses = {n["name"]: n["status"] for n in run["dag"]["nodes"]}
    assert statuses == {"start": "succeeded", "explode": "failed", "end": "skipped"}
    task = ui_server.json(f"/api/runs/{ui_project.runs['failed']}/tasks/explode/0")
    assert task["status"] == "failed" and task["error"] == "ZeroDivisionError: division by zero"
    assert "self.ratio = self.rows / 0" in task["traceback"]
    logs = ui_server.json(task["logs"])
    assert "about to divide rows by zero" in logs["stdout"] and "a warning on stderr" in logs["stderr"]


def test_artifacts_come_with_their_recorded_previews_and_download_as_stored(
    ui_server: Server, ui_project: Project
) -> None:
    task = ui_server.json(f"/api/runs/{ui_project.runs['main']}/tasks/merge/0")
    arts = {a["name"]: a for a in task["artifacts"]}
    assert set(arts) >= {"predictions", "weights", "scores"}
    table = arts["predictions"]["preview"]
    assert table["kind"] == "table" and table["rows"] == 25
    assert [f["name"] for f in table["schema"]] == ["id", "label", "p"] and table["head"][1] == ["1", "class-1", "0.04"]
    array = arts["weights"]["preview"]
    assert (array["shape"], array["dtype"], array["min"], array["max"]) == ([10, 100], "float64", -0.5, 0.5)
    assert arts["scores"]["preview"] == {"kind": "value", "repr": "[0.55, 0.65, 0.75]"}
    status, blob = ui_server.get(arts["predictions"]["download"])
    assert status == 200
    downloaded = pa.ipc.open_file(pa.py_buffer(blob)).read_all()  # Arrow IPC: read, never unpickled
    assert downloaded.num_rows == 25 and downloaded.column_names == ["id", "label", "p"]
    status, body = ui_server.get(f"/api/runs/{ui_project.runs['main']}/tasks/merge/0/artifacts/nope")
    assert status == 404 and "no artifact 'nope'" in body["error"]


def test_metrics_are_series_per_task(ui_server: Server, ui_project: Project) -> None:
    metrics = ui_server.json(f"/api/runs/{ui_project.runs['main']}/metrics")["metrics"]
    loss = metrics["loss"]
    assert [s["task"] for s in loss] == ["fit/0", "fit/1", "fit/2"] and [s["index"] for s in loss] == [0, 1, 2]
    assert [p[0] for p in loss[1]["points"]] == [0, 1, 2, 3, 4]
    assert loss[1]["points"][0][1] == 2.0 and loss[1]["points"][4][1] == pytest.approx(2.0 / 3)
    assert metrics["best"][0]["task"] == "end/0"


def test_runs_compare_side_by_side_by_ids_or_by_branch(ui_server: Server, ui_project: Project) -> None:
    main, candidate = ui_project.runs["main"], ui_project.runs["candidate"]
    by_id = ui_server.json(f"/api/compare?runs={main},{candidate}")
    assert [r["id"] for r in by_id["runs"]] == [main, candidate]
    assert by_id["params"] == {"alpha": [0.5, 0.9]} and by_id["params_differ"] == ["alpha"]
    assert by_id["metrics_differ"] == ["best", "loss"] and len(by_id["metrics"]["loss"]) == 2
    assert "predictions" not in by_id["artifacts_differ"]  # equal tables: one content key
    assert {"weights", "scores", "best"} <= set(by_id["artifacts_differ"])
    by_branch = ui_server.json("/api/compare?flow=UITrainFlow&branches=main,candidate")
    assert [r["id"] for r in by_branch["runs"]] == [main, candidate]
    status, body = ui_server.get("/api/compare?runs=" + main)
    assert status == 400 and "two or more runs" in body["error"]
    status, body = ui_server.get("/api/compare?flow=UITrainFlow&branches=main,nope")
    assert status == 404 and "branch 'nope'" in body["error"]


def test_the_code_package_is_browsed_from_the_store(ui_server: Server, ui_project: Project) -> None:
    run_id = ui_project.runs["main"]
    files = [f["path"] for f in ui_server.json(f"/api/runs/{run_id}/code")["files"]]
    assert "train_flow.py" in files and not any(f.startswith(".lamina") for f in files)
    source = ui_server.json(f"/api/runs/{run_id}/code/train_flow.py")
    assert source["text"] == (ui_project.root / "train_flow.py").read_text()
    assert ui_server.json(f"/api/runs/{run_id}/code")["flow_file"] == "train_flow.py"


@pytest.mark.parametrize(
    "path",
    [
        "/api/runs/{run}/code/../../../../etc/passwd",
        "/api/runs/{run}/code/%2e%2e/%2e%2e/etc/passwd",
        "/api/runs/{run}/code//etc/passwd",
        "/api/runs/{run}/code/..%2f..%2fetc%2fpasswd",
        "/static/../../../../etc/passwd",
        "/static/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "/static/..%2f..%2f..%2fqueries.py",
        "/api/../../etc/passwd",
        "/api/blobs?key=../../.lamina/metadata.db",
    ],
)
def test_paths_outside_the_store_are_refused(ui_server: Server, ui_project: Project, path: str) -> None:
    status, body = raw_get(ui_server, path.format(run=ui_project.runs["main"]))
    assert status in (400, 404), (status, body[:200])
    assert b"root:" not in body and b"import" not in body and b"SQLite" not in body


def test_a_request_naming_another_host_is_refused_on_loopback(ui_server: Server) -> None:
    status, body = raw_get(ui_server, "/api/runs", headers={"Host": "evil.example:8765"})
    assert status == 403 and b"127.0.0.1" in body
    assert raw_get(ui_server, "/api/runs", headers={"Host": "localhost"})[0] == 200


def test_no_response_shows_a_secret(ui_server: Server, ui_project: Project) -> None:
    from lamina.stack import resolve_stack
    from lamina.versioning.runstore import RunStore

    failed = ui_project.runs["failed"]
    with resolve_stack("local", ui_project.root) as stack:
        stored = RunStore(stack.versioning).log("UIFailFlow", failed, "explode", "0", 0, "stdout")
    assert SECRET in stored, "the failing flow's log must hold the secret for this test to mean something"
    main = ui_project.runs["main"]
    paths = [
        "/api/runs",
        f"/api/runs/{failed}",
        f"/api/runs/{failed}/tasks/explode/0",
        f"/api/runs/{failed}/tasks/explode/0/logs",
        f"/api/runs/{main}/tasks/start/0/logs",
        f"/api/runs/{main}",
        f"/api/runs/{main}/code/train_flow.py",
        f"/api/compare?runs={main},{failed}",
    ]
    for path in paths:
        status, body = raw_get(ui_server, path)
        assert status == 200, path
        assert SECRET.encode() not in body, f"{path} shows the secret"
    logs = ui_server.json(f"/api/runs/{failed}/tasks/explode/0/logs")
    assert "the leaked value is ***" in logs["stdout"]


def test_hosts_other_than_loopback_need_a_token() -> None:
    assert all(is_loopback(h) for h in ("127.0.0.1", "127.0.0.2", "localhost", "::1", "[::1]"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "::", "192.168.1.20", "example.com"))


@pytest.fixture(scope="module")
def token_server(ui_project: Project) -> Iterator[tuple[str, str]]:
    """The app with a token, as `lamina ui --host 0.0.0.0` builds it, but listening on 127.0.0.1
    only (test servers never bind wider)."""
    import socket

    import uvicorn
    from lamina.stack import resolve_stack
    from lamina.ui.app import build_app
    from lamina.ui.queries import UIData
    from lamina.versioning.artifacts import ArtifactStore
    from lamina.versioning.metadata import MetadataStore

    stack = resolve_stack("local", ui_project.root)
    data = UIData(MetadataStore(stack.versioning.metadata_url()), ArtifactStore(stack.versioning), "local")
    token = "t0k3n-for-the-test"
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    server = uvicorn.Server(uvicorn.Config(build_app(data, token=token), log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        while not server.started:
            thread.join(0.05)
        yield f"127.0.0.1:{sock.getsockname()[1]}", token
    finally:
        server.should_exit = True
        thread.join(15)
        sock.close()
        data.meta.close()
        stack.close()


def _get(address: str, path: str, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    host, port = address.split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        return response.status, (response.read(), response.getheader("set-cookie") or "")
    finally:
        conn.close()


def test_a_token_server_refuses_requests_without_the_token(token_server: tuple[str, str]) -> None:
    address, token = token_server
    for path in ("/", "/api/runs", "/static/app.js", f"/api/runs?token={token}x"):
        status, (body, _) = _get(address, path)
        assert status == 401 and b"token" in body, path
    status, (body, cookie) = _get(address, f"/?token={token}")
    assert status == 200 and b"<title>Lamina</title>" in body
    assert cookie.startswith(f"lamina_ui_token={token}") and "httponly" in cookie.lower()
    assert _get(address, "/api/runs", {"X-Lamina-Token": token})[0] == 200
    assert _get(address, "/api/runs", {"Cookie": f"lamina_ui_token={token}"})[0] == 200


def test_the_command_serves_loopback_without_a_token_and_says_where(ui_project: Project) -> None:
    server = start_server(ui_project, "--host", "127.0.0.1")
    try:
        assert server.url.startswith("http://127.0.0.1:") and "token" not in server.url
        assert server.json("/api/flows")["stack"] == "local"
        status, page = server.get("/")
        assert status == 200 and b'src="/static/app.js"' in page
    finally:
        stop_server(server)


def test_without_the_extra_the_command_says_what_to_install(ui_project: Project, tmp_path: Any) -> None:
    import subprocess
    import sys

    blocker = tmp_path / "block"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('starlette', 'uvicorn'):\n"
        "            raise ImportError(f'No module named {name!r}', name=name)\n"
        "sys.meta_path.insert(0, Block())\n"
    )
    env = {**ui_project.env, "PYTHONPATH": str(blocker)}
    result = subprocess.run(
        [sys.executable, "-m", "lamina", "ui"], cwd=ui_project.root, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "pip install 'lamina[ui]'" in result.stderr and "Traceback" not in result.stderr



def test_keys_in_tampered_metadata_never_reach_outside_the_store(lamina_stack: Any, tmp_path: Any) -> None:
    """Metadata names the blobs the UI reads; a row pointing elsewhere is refused, not followed."""
    from lamina.models import ArtifactRef, TaskRecord
    from lamina.ui.queries import BadRequest, UIData
    from lamina.versioning.artifacts import ArtifactStore
    from lamina.versioning.metadata import MetadataStore

    outside = tmp_path / "outside.txt"
    outside.write_text("not in the store")
    meta = MetadataStore(lamina_stack.versioning.metadata_url())
    meta.create_run("F", "20260101T000000.000000.abcdef", {}, {}, None, "u", [], "3.11", {})
    record = TaskRecord(
        run_id="20260101T000000.000000.abcdef",
        flow_name="F",
        step="start",
        task_id="0",
        attempt=0,
        ok=True,
        artifacts={"x": ArtifactRef(key=f"../../../../../..{outside}", serializer="pickle", size=16)},
        stdout_key=f"../../../../../..{outside}",
    )
    meta.record_task(record, "k")
    data = UIData(meta, ArtifactStore(lamina_stack.versioning), "local")
    try:
        with pytest.raises(BadRequest, match="not a content address"):
            data.artifact("20260101T000000.000000.abcdef", "start", "0", "x")
        with pytest.raises(BadRequest, match="not this task's"):
            data.logs("20260101T000000.000000.abcdef", "start", "0")
    finally:
        meta.close()
