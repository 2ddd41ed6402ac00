"""How fast `lamina ui` answers with 10,000 runs recorded.

Fills the metadata store of a fresh local project with N runs (5 flows, 3 users, every third run
tagged, realistic parameters, stack snapshots and package lists, recorded through
``MetadataStore.create_run`` as the scheduler records them), serves the UI on 127.0.0.1 and times
each request over a real socket, then (with ``--browser``) the runs page in headless chromium from
navigation until its rows are drawn.

    python benchmarks/ui_runs.py [--runs 10000] [--repeat 30] [--browser] [--keep DIR]

Target (issue 14): the runs page answers in under 200 ms.
"""

from __future__ import annotations

import argparse
import http.client
import os
import platform
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

FLOWS = ["TrainFlow", "ScoreFlow", "FeaturesFlow", "EvalFlow", "ExportFlow"]
USERS = ["alice", "bob", "carol"]


def fill(meta: Any, n: int) -> list[str]:
    from lamina.versioning.layout import new_run_id

    packages = {f"package-{i}": f"{i % 7}.{i % 13}.{i % 3}" for i in range(180)}
    stack = {
        "name": "local",
        "layers": {layer: {"adapter": "local"} for layer in ("data", "compute", "orchestration", "versioning")},
        "options": {"retry_attempts": 5},
    }
    ids = []
    for i in range(n):
        run_id = new_run_id()
        meta.create_run(
            flow_name=FLOWS[i % len(FLOWS)],
            run_id=run_id,
            params={"alpha": i / n, "epochs": 10 + i % 5, "dataset": f"s3://bucket/data/{i % 11}.parquet"},
            stack=stack,
            code_key=None,
            user=USERS[i % len(USERS)],
            tags=[f"branch:{'main' if i % 2 else 'candidate'}"] if i % 3 == 0 else [],
            python_version=platform.python_version(),
            packages=packages,
        )
        if i % 10:
            meta.finish_run(run_id, ok=i % 17 != 0)
        ids.append(run_id)
    return ids


def serve(data: Any) -> tuple[Any, threading.Thread, int]:
    import uvicorn
    from lamina.ui.app import build_app

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    server = uvicorn.Server(uvicorn.Config(build_app(data), log_level="warning", lifespan="off", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    return server, thread, sock.getsockname()[1]


def timed_get(port: int, path: str) -> tuple[float, int, int]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    start = time.perf_counter()
    conn.request("GET", path)
    response = conn.getresponse()
    body = response.read()
    elapsed = time.perf_counter() - start
    conn.close()
    assert response.status == 200, (path, response.status, body[:200])
    return elapsed, response.status, len(body)


def report(name: str, times: list[float], size: int) -> None:
    ms = sorted(t * 1000 for t in times)
    p95 = ms[min(len(ms) - 1, int(round(0.95 * (len(ms) - 1))))]
    print(f"| {name} | {statistics.median(ms):.1f} | {p95:.1f} | {ms[-1]:.1f} | {size / 1024:.1f} |", flush=True)


def browser_page(port: int, repeat: int) -> tuple[list[float], list[float], list[float]]:
    """Per load of the runs page: from navigation start until the page had drawn its rows (the
    page's own ``performance`` mark), the same seen from Playwright (its round trips included),
    and, as the browser's floor, Playwright's navigation to a static file."""
    from playwright.sync_api import sync_playwright

    marks, times, floor = [], [], []
    with sync_playwright() as p:
        profile = tempfile.mkdtemp(prefix="lamina-bench-chromium-")
        ctx = p.chromium.launch_persistent_context(
            profile,
            executable_path="/usr/bin/chromium",
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"],
        )
        try:
            page = ctx.new_page()
            for i in range(repeat + 1):
                page.goto("about:blank")
                start = time.perf_counter()
                page.goto(f"http://127.0.0.1:{port}/#/runs?r={i}")
                page.wait_for_selector("#runs-table tbody tr[data-run-id]")
                if i:  # the first load warms the browser's own caches
                    times.append(time.perf_counter() - start)
                    marks.append(page.evaluate(
                        "performance.getEntriesByName('lamina:runs-drawn')[0].startTime") / 1000)
                page.goto("about:blank")
                start = time.perf_counter()
                page.goto(f"http://127.0.0.1:{port}/static/favicon.svg?r={i}")
                if i:
                    floor.append(time.perf_counter() - start)
        finally:
            ctx.close()
            shutil.rmtree(profile, ignore_errors=True)
    return marks, times, floor


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--browser", action="store_true", help="also time the page in headless chromium")
    parser.add_argument("--keep", help="use (and keep) this project folder instead of a temporary one")
    args = parser.parse_args()

    from lamina.stack import resolve_stack
    from lamina.ui.queries import UIData
    from lamina.versioning.artifacts import ArtifactStore
    from lamina.versioning.metadata import MetadataStore

    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="lamina-ui-bench-"))
    (root / ".lamina").mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("LAMINA_CONFIG_DIR", str(root / "user-config"))
    stack = resolve_stack("local", root)
    meta = MetadataStore(stack.versioning.metadata_url())
    try:
        have = meta.count_runs()
        if have < args.runs:
            start = time.perf_counter()
            fill(meta, args.runs - have)
            print(f"recorded {args.runs - have} runs in {time.perf_counter() - start:.1f}s", file=sys.stderr)
        total = meta.count_runs()
        data = UIData(meta, ArtifactStore(stack.versioning, cache_dir=root / ".lamina" / "cache"), stack.name)
        server, thread, port = serve(data)
        try:
            print(f"{total} runs; {platform.python_version()}; load average {os.getloadavg()}\n")
            print("| request | median ms | p95 ms | max ms | KiB |")
            print("|---|---|---|---|---|")
            paths = {
                "GET / (the page)": "/",
                "GET /static/app.js": "/static/app.js",
                "GET /api/flows": "/api/flows",
                "GET /api/runs (first 50)": "/api/runs?limit=50",
                "GET /api/runs, last page": f"/api/runs?limit=50&offset={max(0, total - 50)}",
                "GET /api/runs?flow=&status=failed": "/api/runs?flow=TrainFlow&status=failed",
                "GET /api/runs?tag=branch:main&user=": "/api/runs?tag=branch:main&user=alice",
                "GET /api/runs?limit=500": "/api/runs?limit=500",
            }
            for name, path in paths.items():
                timed_get(port, path)  # warm
                results = [timed_get(port, path) for _ in range(args.repeat)]
                report(name, [r[0] for r in results], results[-1][2])
            page_loads = []
            assets = ["/", "/static/style.css", "/static/app.js", "/static/dag.js", "/static/plot.js",
                      "/api/flows", "/api/runs?limit=50&offset=0", "/api/flows"]
            for _ in range(args.repeat):
                page_loads.append(sum(timed_get(port, a)[0] for a in assets))
            report("runs page: its 8 requests in sequence", page_loads, 0)
            if args.browser:
                marks, drawn, floor = browser_page(port, args.repeat // 3 or 1)
                report("runs page in chromium: navigation start to rows drawn (page's mark)", marks, 0)
                report("runs page in chromium, as Playwright sees it", drawn, 0)
                report("chromium's floor: navigation to a static SVG", floor, 0)
        finally:
            server.should_exit = True
            thread.join(15)
    finally:
        meta.close()
        stack.close()
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
