#!/usr/bin/env python
"""Where Lamina spends its time in the benchmark scenarios: the evidence behind RESULTS.md.

    python benchmarks/profile_lamina.py [--lamina-src installed|head] [--width 1000] > profile.md

Prints markdown: ``-X importtime`` summaries of ``import lamina``, ``lamina --help``, ``lamina stack
list`` and ``python flow.py show``; cProfile of the run driver (the ``python flow.py run`` process) for
the linear, foreach, array and resume scenarios; and the tasks' own profiles, summed over every task
of a foreach (``LAMINA_PROFILE_TASKS``, which the warm worker honours). Works in
``benchmarks/.work/profile`` (wiped first) and holds ``benchmarks/.work``'s lock meanwhile: it refuses
to start while a ``run.py`` holds it, and no ``run.py`` can wipe its folder while it runs; with ``--lamina-src head`` it reuses the
snapshot that the last ``run.py --lamina-src head`` left there, else makes one.
"""

from __future__ import annotations

import argparse
import io
import os
import pstats
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as bench  # noqa: E402
from flows import TEMPLATES, render  # noqa: E402

HEAVY = (
    "sqlalchemy",
    "pydantic",
    "pyarrow",
    "duckdb",
    "numpy",
    "pandas",
    "alembic",
    "pluggy",
    "boto3",
    "botocore",
    "google",
    "azure",
    "snowflake",
    "sagemaker",
    "dask",
    "distributed",
    "zstandard",
    "cloudpickle",
)


def importtime(cmd: list[str], env: dict[str, str], cwd: Path, top: int = 12) -> str:
    r = subprocess.run(
        [cmd[0], "-X", "importtime", *cmd[1:]], cwd=cwd, env=env, capture_output=True, text=True
    )
    rows = []
    for line in r.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        parts = line[len("import time:") :].split("|")
        self_us, cum_us, name = int(parts[0]), int(parts[1]), parts[2].rstrip()
        rows.append((cum_us, self_us, name))
    total = sum(s for _, s, _ in rows)
    loaded = {n.strip().split(".")[0] for _, _, n in rows}
    heavy = [h for h in HEAVY if h in loaded]
    # the outermost imports (least indented), by cumulative time
    depth = {n: len(n) - len(n.lstrip()) for _, _, n in rows}
    outer = min(depth.values()) if depth else 0
    tops = sorted((r for r in rows if depth[r[2]] <= outer + 2), reverse=True)[:top]
    out = [
        f"`{' '.join(Path(c).name if i == 0 else c for i, c in enumerate(cmd))}`: {len(rows)} modules, "
        f"{total / 1e3:.0f} ms of import time in all; heavy packages loaded: {', '.join(heavy) or 'none'}",
        "",
        "```",
        f"{'cumulative ms':>13} {'self ms':>8}  module",
    ]
    out += [f"{c / 1e3:13.1f} {s / 1e3:8.1f}  {n}" for c, s, n in tops]
    out += ["```", ""]
    return "\n".join(out)


def importtime_run(label: str, cmd: list[str], env: dict[str, str], cwd: Path, top: int = 8) -> str:
    """Import time of a whole run: the driver alone (``-X importtime`` on its command line, which its
    children do not inherit), then every Python process of the run together (``PYTHONPROFILEIMPORTTIME``,
    which they do; their lines interleave, so only totals per top-level package are given)."""
    driver = subprocess.run(
        [cmd[0], "-X", "importtime", *cmd[1:]], cwd=cwd, env=env, capture_output=True, text=True
    )
    both = subprocess.run(
        cmd, cwd=cwd, env={**env, "PYTHONPROFILEIMPORTTIME": "1"}, capture_output=True, text=True
    )

    def parse(text: str) -> tuple[int, list[tuple[int, int, str]]]:
        rows, procs = [], 0
        for line in text.splitlines():
            if "self [us]" in line:
                procs += 1
            elif line.startswith("import time:"):
                parts = line[len("import time:") :].split("|")
                rows.append((int(parts[1]), int(parts[0]), parts[2].rstrip()))
        return procs, rows

    _, drows = parse(driver.stderr)
    nprocs, arows = parse(both.stderr)
    out = [f"{label} (exit {driver.returncode}/{both.returncode})", "", "```"]
    dtotal = sum(s for _, s, _ in drows)
    out.append(f"driver alone: {len(drows)} modules, {dtotal / 1e3:.0f} ms; largest top-level imports:")
    for c, _, n in sorted((r for r in drows if not r[2].startswith("   ")), reverse=True)[:top]:
        out.append(f"  {c / 1e3:8.1f} ms  {n.strip()}")
    by_pkg: dict[str, int] = {}
    for _, self_us, name in arows:
        pkg = name.strip().split(".")[0]
        by_pkg[pkg] = by_pkg.get(pkg, 0) + self_us
    atotal = sum(by_pkg.values())
    out.append(
        f"all {nprocs} Python processes of the run: {len(arows)} module imports, {atotal / 1e3:.0f} ms; "
        "by top-level package (self time):"
    )
    for pkg, us in sorted(by_pkg.items(), key=lambda kv: -kv[1])[:top]:
        out.append(f"  {us / 1e3:8.1f} ms  {pkg}")
    out += ["```", ""]
    return "\n".join(out)


def pstats_summary(stats: pstats.Stats, sort: str, top: int, strip: str = "") -> str:
    buf = io.StringIO()
    stats.stream = buf
    stats.sort_stats(sort).print_stats(top)
    text = buf.getvalue()
    if strip:
        text = text.replace(strip, "")
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if "function calls" in line), 0)
    return "\n".join(line.rstrip() for line in lines[start:] if line.strip())


def profile_driver(fw: bench.Framework, label: str, args: list[str], extra: dict[str, str], top: int) -> str:
    prof = fw.project / f"driver-{label}.prof"
    # Not ``python -m cProfile``: that leaves cProfile as ``__main__``, and Lamina would take the
    # stdlib's folder for the flow's and package it. runpy.run_path makes the flow file __main__.
    wrapper = (
        "import cProfile, runpy, sys\n"
        "sys.argv = sys.argv[3:]\n"
        "p = cProfile.Profile()\n"
        "p.enable()\n"
        "try:\n"
        "    runpy.run_path(sys.argv[0], run_name='__main__')\n"
        "finally:\n"
        "    p.disable()\n"
        "    p.dump_stats(sys.orig_argv[3])\n"
    )
    cmd = [fw.python, "-c", wrapper, str(prof), "--", str(fw.project / args[0]), *args[1:]]
    t0 = time.perf_counter()
    r = subprocess.run(cmd, cwd=fw.project, env={**fw.env, **extra}, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        return f"`{' '.join(args)}` failed ({r.returncode}):\n\n```\n{r.stderr[-3000:]}\n```\n"
    stats = pstats.Stats(str(prof))
    strip = str(fw.env.get("PYTHONPATH", "")) + "/"
    return "\n".join(
        [
            f"`python {' '.join(args)}` (driver process only; wall {wall:.2f} s under cProfile)",
            "",
            "```",
            pstats_summary(stats, "cumulative", top, strip),
            "```",
            "",
            "by own time:",
            "",
            "```",
            pstats_summary(stats, "tottime", top, strip),
            "```",
            "",
        ]
    )


def profile_tasks(fw: bench.Framework, width: int, top: int) -> str:
    folder = fw.project / "task-profiles"
    cmd = fw.flow("flow_foreach.py", "run", "--width", str(width), "--max-splits", str(max(width, 100)))
    t0 = time.perf_counter()
    r = subprocess.run(
        cmd,
        cwd=fw.project,
        env={**fw.env, "LAMINA_PROFILE_TASKS": str(folder)},
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - t0
    files = sorted(folder.glob("work-*.prof")) if folder.exists() else []
    if r.returncode != 0 or not files:
        return f"task profiles: run failed ({r.returncode}) or wrote none:\n\n```\n{r.stderr[-3000:]}\n```\n"
    stats = pstats.Stats(str(files[0]))
    for f in files[1:]:
        stats.add(str(f))
    strip = str(fw.env.get("PYTHONPATH", "")) + "/"
    return "\n".join(
        [
            f"the `work` tasks of a foreach over {width} ({len(files)} task profiles summed; run wall {wall:.1f} s; "
            "each task is a forked child of the warm worker, so this is the per-task cost inside the child, "
            "not the fork, the pipe or the driver's bookkeeping)",
            "",
            "```",
            pstats_summary(stats, "cumulative", top, strip),
            "```",
            "",
        ]
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lamina-src", choices=["installed", "head"], default="installed")
    parser.add_argument("--width", type=int, default=1000, help="foreach width for the driver profile")
    parser.add_argument("--top", type=int, default=18, help="rows per profile")
    args = parser.parse_args()

    lamina_python = str(bench.REPO / ".venv" / "bin" / "python")
    if not Path(lamina_python).exists():
        lamina_python = sys.executable
    _lock = bench.lock_work(bench.WORK)  # noqa: F841 - so that run.py does not wipe it meanwhile
    root = bench.WORK / "profile"
    if root.exists():
        shutil.rmtree(root)
    project, home = root / "lamina", root / "home"
    project.mkdir(parents=True)
    home.mkdir()
    (project / ".lamina").mkdir()
    env = bench.base_env(home)
    if args.lamina_src == "head":
        # reuse run.py's snapshot when it exists (a run in progress), else make one under profile/
        snap = bench.WORK / "lamina-src"
        if not snap.exists():
            saved = bench.WORK
            bench.WORK = root
            snap, _ = bench.snapshot_head()
            bench.WORK = saved
        env["PYTHONPATH"] = str(snap)
    for file, template in TEMPLATES.items():
        (project / file).write_text(render(template, "lamina"))
    fw = bench.Framework("lamina", lamina_python, project, env)
    subprocess.run(fw.flow("flow_hello.py", "run"), cwd=project, env=env, capture_output=True, check=True)

    lamina_bin = str(Path(lamina_python).parent / "lamina")
    out = ["## Import time (`python -X importtime`)", ""]
    out.append(importtime([lamina_python, "-c", "import lamina"], env, project))
    out.append(importtime([lamina_python, lamina_bin, "--help"], env, project))
    out.append(importtime([lamina_python, lamina_bin, "stack", "list"], env, project))
    out.append(importtime([lamina_python, str(project / "flow_linear.py"), "show"], env, project))
    out += ["## Imports of a run's processes", ""]
    out.append(importtime_run("`python flow_linear.py run`", fw.flow("flow_linear.py", "run"), env, project))
    rid = project / "resume-imports-run-id"
    subprocess.run(
        fw.flow("flow_resume.py", "run", "--run-id-file", str(rid)), cwd=project, env=env, capture_output=True
    )
    if rid.exists():
        out.append(
            importtime_run(
                "`python flow_resume.py resume` after a failed run",
                fw.flow("flow_resume.py", "resume", "--origin-run-id", rid.read_text().strip()),
                {**env, "BENCH_RESUME_FIXED": "1"},
                project,
            )
        )
    out += ["## The run driver (cProfile of `python flow.py run`)", ""]
    w = str(bench.WORKERS)
    out.append(profile_driver(fw, "linear", ["flow_linear.py", "run", "--max-workers", w], {}, args.top))
    out.append(
        profile_driver(
            fw,
            "foreach",
            [
                "flow_foreach.py",
                "run",
                "--max-workers",
                w,
                "--width",
                str(args.width),
                "--max-splits",
                str(args.width),
            ],
            {},
            args.top,
        )
    )
    out.append(
        profile_driver(
            fw,
            "array",
            ["flow_array.py", "run", "--max-workers", w, "--seed", "7", "--mb", "400"],
            {},
            args.top,
        )
    )
    id_file = project / "resume-run-id"
    subprocess.run(
        fw.flow("flow_resume.py", "run", "--run-id-file", str(id_file)),
        cwd=project,
        env=env,
        capture_output=True,
    )
    origin = ["--origin-run-id", id_file.read_text().strip()] if id_file.exists() else []
    out.append(
        profile_driver(
            fw,
            "resume",
            ["flow_resume.py", "resume", "--max-workers", w, *origin],
            {"BENCH_RESUME_FIXED": "1"},
            args.top,
        )
    )
    out += ["## Inside the tasks (`LAMINA_PROFILE_TASKS`)", ""]
    out.append(profile_tasks(fw, 100, args.top))
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    os.environ.pop("LAMINA_PROFILE_TASKS", None)
    sys.exit(main())
