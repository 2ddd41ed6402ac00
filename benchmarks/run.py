#!/usr/bin/env python
"""Lamina against its anchor, Metaflow: the same scenarios, interleaved, several times each.

    python benchmarks/run.py --setup-anchor --setup-only   # once: Metaflow in benchmarks/.anchor-venv
    python benchmarks/run.py [--repeat N] [--heavy-repeat M] [--scenarios NAME ...]
                             [--anchor-skip NAME ...] [--lamina-src installed|head] [--json FILE]
    python benchmarks/run.py --report-from FILE.json        # the tables of a saved run

See benchmarks/README.md.

Run it with Lamina's interpreter (the repo's ``.venv``). Every scenario runs Lamina then Metaflow,
then Lamina again, and so on; each command is a fresh process tree started from here, with a private
HOME and a private project directory per framework under ``benchmarks/.work`` (wiped at the start).

What is measured, per command:

* wall time: ``time.perf_counter`` around the whole process tree;
* CPU time: user + sys of the tree, from ``/usr/bin/time`` (steadier than wall time on a loaded host);
* peak RSS: ``/usr/bin/time -f %M``, i.e. the kernel's ``ru_maxrss`` over the top process and every
  descendant it waited for: the peak of the *largest single process* in the tree;
* tree PSS: the peak of the sum of ``Pss`` (``/proc/PID/smaps_rollup``) over the whole tree, sampled
  every 0.1 s with psutil; shared pages (a forked worker's, a memory map) count once. Peaks shorter
  than the sampling period can be missed.

The table shows medians. ``ratio`` is Lamina's median wall time over Metaflow's (below 1: Lamina is
faster); ``speed-up`` is its inverse.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from flows import TEMPLATES, render  # noqa: E402

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
ANCHOR_VENV = HERE / ".anchor-venv"
WORK = HERE / ".work"
ANCHOR_SPEC = "metaflow==2.19.*"
ARRAY_MB = 400
WORKERS = 2
SAMPLE_S = 0.1
TIME_BIN = "/usr/bin/time"


# --------------------------------------------------------------------------------------------- setup


def setup_anchor(python: str) -> None:
    """Create benchmarks/.anchor-venv with Metaflow 2.19 and the same NumPy as Lamina's venv."""
    print(f"creating {ANCHOR_VENV} from {python}", flush=True)
    subprocess.run([python, "-m", "venv", "--clear", str(ANCHOR_VENV)], check=True)
    pip = [str(ANCHOR_VENV / "bin" / "python"), "-m", "pip"]
    versions = subprocess.run(
        [*pip, "index", "versions", "metaflow"], capture_output=True, text=True, check=False
    )
    print("available:", (versions.stdout.strip().splitlines() or ["?"])[0], flush=True)
    spec = ANCHOR_SPEC
    if "2.19." not in versions.stdout:
        spec = "metaflow"  # the closest available: whatever the index serves
        print(f"no metaflow 2.19.* on the index: installing {spec}", flush=True)
    try:
        import numpy

        numpy_spec = f"numpy=={numpy.__version__}"
    except ImportError:
        numpy_spec = "numpy"
    subprocess.run([*pip, "install", "-q", spec, numpy_spec, "psutil"], check=True)
    out = subprocess.run([*pip, "list"], capture_output=True, text=True, check=True).stdout
    print("\n".join(line for line in out.splitlines() if line.lower().startswith(("metaflow", "numpy"))))


# ------------------------------------------------------------------------------------------ framework


@dataclass
class Framework:
    name: str  # "lamina" or "metaflow"
    python: str
    project: Path
    env: dict[str, str]

    @property
    def bin(self) -> Path:
        return Path(self.python).parent

    def flow(self, file: str, command: str, *args: str) -> list[str]:
        cmd = [self.python, str(self.project / file), command, *args]
        if command in ("run", "resume"):
            cmd += ["--max-workers", str(WORKERS)]
        return cmd


def base_env(home: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("LAMINA_", "METAFLOW_", "VIRTUAL_ENV", "PYTHON", "CONDA"))
    }
    env.update(HOME=str(home), USERNAME="bench", USER="bench", LOGNAME="bench", PYTHONHASHSEED="0")
    return env


def snapshot_head() -> tuple[Path, str]:
    """Lay out the committed HEAD's Lamina as an importable tree (core -> lamina, plugins, stacks).

    With ``--lamina-src head`` the Lamina side imports this copy through PYTHONPATH (tasks inherit
    it), so edits made to the working tree while the benchmark runs do not change what it measures.
    """
    dest = WORK / "lamina-src"
    raw = WORK / "lamina-head"
    raw.mkdir(parents=True)
    sha = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", "HEAD", "core", "plugins", "stacks"],
        capture_output=True,
        check=True,
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(raw)], input=archive, check=True)
    dest.mkdir()
    shutil.move(str(raw / "core"), str(dest / "lamina"))
    shutil.move(str(raw / "plugins"), str(dest / "lamina" / "plugins"))
    shutil.move(str(raw / "stacks"), str(dest / "lamina" / "stacks"))
    raw.rmdir()
    return dest, sha


def lock_work(work: Path) -> object:
    """Hold an exclusive lock on ``work`` for this process's lifetime, or exit with who holds it.

    Two benchmark runs in one folder would wipe each other's stores, and two at once on a 2-core
    machine would spoil each other's numbers anyway (give the second one its own ``--work-dir``).
    """
    import fcntl

    work.mkdir(parents=True, exist_ok=True)
    handle = open(work / ".lock", "a+")  # noqa: SIM115 - held open until the process exits
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        sys.exit(
            f"{work} is in use by another benchmark run (pid {handle.read().strip() or '?'}); "
            "wait for it, or pass another --work-dir"
        )
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    return handle


def wipe_work() -> None:
    """Empty WORK, keeping the lock file."""
    for child in WORK.iterdir():
        if child.name == ".lock":
            continue
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


def make_frameworks(lamina_python: str, lamina_src: str = "installed") -> dict[str, Framework]:
    wipe_work()
    snapshot = snapshot_head() if lamina_src == "head" else None
    frameworks = {}
    for name, python in (("lamina", lamina_python), ("metaflow", str(ANCHOR_VENV / "bin" / "python"))):
        project = WORK / name
        home = WORK / "home" / name
        project.mkdir(parents=True)
        home.mkdir(parents=True)
        env = base_env(home)
        if name == "lamina":
            (project / ".lamina").mkdir()  # pin the project here, not in an enclosing directory
            if snapshot:
                env["PYTHONPATH"] = str(snapshot[0])
                env["BENCH_LAMINA_SRC"] = f"HEAD {snapshot[1]} (git archive, via PYTHONPATH)"
        else:
            env.update(
                METAFLOW_DEFAULT_DATASTORE="local",
                METAFLOW_DEFAULT_METADATA="local",
                METAFLOW_DATASTORE_SYSROOT_LOCAL=str(project),
            )
        for file, template in TEMPLATES.items():
            (project / file).write_text(render(template, name))
        frameworks[name] = Framework(name, python, project, env)
    return frameworks


# ---------------------------------------------------------------------------------------- measurement


@dataclass
class Sample:
    wall: float
    cpu: float
    peak_rss_mb: float
    tree_pss_mb: float | None


class Failure(Exception):
    def __init__(self, cmd: list[str], code: int, tail: str):
        super().__init__(f"{' '.join(cmd)} exited {code}:\n{tail}")
        self.cmd, self.code, self.tail = cmd, code, tail


def _tree_pss_sampler(pid: int, stop: threading.Event, out: list[float]) -> None:
    try:
        import psutil
    except ImportError:
        return
    peak = 0
    try:
        root = psutil.Process(pid)
    except psutil.Error:
        return
    while not stop.is_set():
        total = 0
        try:
            procs = [root, *root.children(recursive=True)]
        except psutil.Error:
            break
        for proc in procs:
            try:
                with open(f"/proc/{proc.pid}/smaps_rollup", "rb") as fh:
                    for line in fh:
                        if line.startswith(b"Pss:"):
                            total += int(line.split()[1])
                            break
            except OSError:
                pass
        peak = max(peak, total)
        stop.wait(SAMPLE_S)
    out.append(peak / 1024)


def measure(
    cmd: list[str], fw: Framework, log: Path, extra_env: dict[str, str] | None = None, timeout: float = 3600
) -> Sample:
    """Run ``cmd`` in the framework's project under /usr/bin/time; raise Failure on a non-zero exit."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as tf, open(log, "ab") as logf:
        logf.write(f"\n$ {' '.join(cmd)}\n".encode())
        logf.flush()
        full = [TIME_BIN, "-q", "-f", "%M %U %S", "-o", tf.name, *cmd]
        stop, pss = threading.Event(), []
        start = time.perf_counter()
        proc = subprocess.Popen(
            full,
            cwd=fw.project,
            env={**fw.env, **(extra_env or {})},
            stdout=logf,
            stderr=logf,
            start_new_session=True,  # its own process group, so a time-out ends the whole tree
        )
        sampler = threading.Thread(target=_tree_pss_sampler, args=(proc.pid, stop, pss), daemon=True)
        sampler.start()
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()
            code = -9
        wall = time.perf_counter() - start
        stop.set()
        sampler.join()
        if code != 0:
            raise Failure(cmd, code, _tail(log))
        fields = tf.read().split()[-3:]
    rss_kb, user, system = int(fields[0]), float(fields[1]), float(fields[2])
    return Sample(wall, user + system, rss_kb / 1024, pss[0] if pss else None)


def _tail(log: Path, lines: int = 15) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def expect_failure(cmd: list[str], fw: Framework, log: Path, extra_env: dict[str, str] | None = None) -> None:
    """Run an untimed command that must fail (the first run of the resume scenario)."""
    with open(log, "ab") as logf:
        logf.write(f"\n$ {' '.join(cmd)}   # expected to fail\n".encode())
        logf.flush()
        code = subprocess.run(
            cmd, cwd=fw.project, env={**fw.env, **(extra_env or {})}, stdout=logf, stderr=logf
        ).returncode
    if code == 0:
        raise Failure(cmd, code, "the run was expected to fail at its last step but succeeded")


# ------------------------------------------------------------------------------------------ scenarios


@dataclass
class Scenario:
    name: str
    what: str
    heavy: bool = False
    width: int | None = None  # foreach width, for the per-task columns
    # (framework, repeat index) -> the timed command and its extra environment; may run untimed steps
    command: Callable[[Framework, int, Path], tuple[list[str], dict[str, str]]] | None = None


def _cli(lamina: list[str], metaflow: list[str]):
    def command(fw: Framework, i: int, log: Path):
        args = lamina if fw.name == "lamina" else metaflow
        return [str(fw.bin / args[0]), *args[1:]], {}

    return command


def _import(fw: Framework, i: int, log: Path):
    return [fw.python, "-c", f"import {fw.name}"], {}


def _foreach(width: int):
    def command(fw: Framework, i: int, log: Path):
        extra = ["--max-splits" if fw.name == "lamina" else "--max-num-splits", str(max(width, 100))]
        return fw.flow("flow_foreach.py", "run", "--width", str(width), *extra), {}

    return command


def _array(fw: Framework, i: int, log: Path):
    # A new seed per repeat: new bytes every run, so content-addressed storage cannot skip the write.
    return fw.flow("flow_array.py", "run", "--seed", str(1000 + i), "--mb", str(ARRAY_MB)), {}


def _resume(fw: Framework, i: int, log: Path):
    id_file = fw.project / f"resume-run-id-{i}"
    expect_failure(fw.flow("flow_resume.py", "run", "--run-id-file", str(id_file)), fw, log)
    origin = ["--origin-run-id", id_file.read_text().strip()] if id_file.exists() else []
    return fw.flow("flow_resume.py", "resume", *origin), {"BENCH_RESUME_FIXED": "1"}


SCENARIOS = [
    Scenario("import", "python -c 'import lamina' / 'import metaflow'", command=_import),
    Scenario(
        "cli_help",
        "lamina --help / metaflow --help",
        command=_cli(["lamina", "--help"], ["metaflow", "--help"]),
    ),
    Scenario(
        "cli_stack_list",
        "lamina stack list / metaflow configure show",
        command=_cli(["lamina", "stack", "list"], ["metaflow", "configure", "show"]),
    ),
    Scenario(
        "flow_help",
        "python flow_linear.py --help",
        command=lambda fw, i, log: ([fw.python, str(fw.project / "flow_linear.py"), "--help"], {}),
    ),
    Scenario(
        "flow_show",
        "python flow_linear.py show",
        command=lambda fw, i, log: (fw.flow("flow_linear.py", "show"), {}),
    ),
    Scenario(
        "linear_10",
        "run a 10-step linear flow",
        command=lambda fw, i, log: (fw.flow("flow_linear.py", "run"), {}),
    ),
    Scenario("foreach_100", "run a foreach over 100 items, 2 workers", width=100, command=_foreach(100)),
    Scenario(
        "array_400mb",
        f"pass a {ARRAY_MB} MB float64 array start -> end, CRC-checked",
        heavy=True,
        command=_array,
    ),
    Scenario(
        "resume",
        "resume a 4-step run that failed at its last step (only the resume is timed)",
        command=_resume,
    ),
    Scenario(
        "foreach_1000",
        "run a foreach over 1,000 items, 2 workers",
        heavy=True,
        width=1000,
        command=_foreach(1000),
    ),
    Scenario(
        "foreach_10000",
        "run a foreach over 10,000 items, 2 workers",
        heavy=True,
        width=10000,
        command=_foreach(10000),
    ),
]
GROUPS = {
    "cli": ["cli_help", "cli_stack_list", "flow_help", "flow_show"],
    "foreach": ["foreach_100", "foreach_1000", "foreach_10000"],
    "all": [s.name for s in SCENARIOS],
}


@dataclass
class Result:
    scenario: Scenario
    samples: dict[str, list[Sample]] = field(default_factory=lambda: {"lamina": [], "metaflow": []})
    failures: dict[str, list[Failure]] = field(default_factory=lambda: {"lamina": [], "metaflow": []})
    skipped: set[str] = field(default_factory=set)

    def failed(self, name: str) -> bool:
        """Every run of this side failed (some failures among successes only annotate the cell)."""
        return bool(self.failures[name]) and not self.samples[name]


def run_all(
    frameworks: dict[str, Framework],
    scenarios: list[Scenario],
    repeat: int,
    heavy_repeat: int,
    anchor_skip: set[str],
    timeout: float,
) -> list[Result]:
    logs = WORK / "logs"
    logs.mkdir(exist_ok=True)
    for fw in frameworks.values():  # untimed: create each store, warm the page cache, prove it works
        if fw.name != "lamina" and "all" in anchor_skip:
            continue
        measure(fw.flow("flow_hello.py", "run"), fw, logs / f"{fw.name}-warmup.log")
    results = []
    for sc in scenarios:
        res = Result(sc)
        results.append(res)
        n = heavy_repeat if sc.heavy else repeat
        names = ["lamina", "metaflow"]
        if sc.name in anchor_skip or "all" in anchor_skip:
            res.skipped.add("metaflow")
            names = ["lamina"]
        for i in range(n):
            for name in names:
                fw = frameworks[name]
                log = logs / f"{name}-{sc.name}.log"
                try:
                    cmd, extra = sc.command(fw, i, log)
                    sample = measure(cmd, fw, log, extra, timeout)
                except Failure as exc:
                    res.failures[name].append(exc)
                    print(f"  {sc.name:15} {name:8} FAILED: {exc}", file=sys.stderr, flush=True)
                    continue
                res.samples[name].append(sample)
                pss = f"{sample.tree_pss_mb:8.0f}" if sample.tree_pss_mb is not None else "       ?"
                print(
                    f"  {sc.name:15} {name:8} #{i + 1}  wall {sample.wall:8.3f} s  cpu {sample.cpu:8.2f} s"
                    f"  peak rss {sample.peak_rss_mb:7.0f} MiB  tree pss {pss} MiB",
                    file=sys.stderr,
                    flush=True,
                )
        (WORK / "partial.md").write_text(report(results) + "\n")  # so far, should the run be cut short
        (WORK / "partial.json").write_text(json.dumps(raw_results(results), indent=1))
    return results


# --------------------------------------------------------------------------------------------- report


def _med(samples: list[Sample], attr: str) -> float | None:
    values = [getattr(s, attr) for s in samples if getattr(s, attr) is not None]
    return statistics.median(values) if values else None


def _fmt(value: float | None, spec: str = ".3f", unit: str = "") -> str:
    return "—" if value is None else f"{value:{spec}}{unit}"


def _cell(res: Result, name: str, attr: str, spec: str) -> str:
    if res.failed(name):
        return "FAILED"
    if name in res.skipped:
        return "skipped"
    if attr == "tree_pss_mb" and (_med(res.samples[name], "wall") or 0) < 5 * SAMPLE_S:
        return "—"  # too short for the sampler to see it whole
    return _fmt(_med(res.samples[name], attr), spec)


def _wall_cell(res: Result, name: str) -> str:
    cell = _cell(res, name, "wall", ".3f")
    walls = [s.wall for s in res.samples[name]]
    if len(walls) > 1 and cell not in ("FAILED", "skipped"):
        cell += f" ({min(walls):.2f}–{max(walls):.2f})"
    if res.failures[name] and not res.failed(name):
        cell += f" +{len(res.failures[name])} failed"
    return cell


def report(results: list[Result]) -> str:
    lines = [
        "Medians over the runs (n per side in the last column); wall in seconds with (min–max); CPU = user+sys "
        "of the tree (s), steadier than wall time on a loaded host; peak RSS = /usr/bin/time %M, the largest single process of the tree (MiB); tree PSS = "
        f"peak sum of Pss over the tree, psutil-polled every {SAMPLE_S} s (MiB; — for commands under "
        f"{5 * SAMPLE_S:.1f} s). ratio = Lamina wall / Metaflow "
        "wall; speed-up = Metaflow wall / Lamina wall.",
        "",
        "| scenario | Lamina wall | Metaflow wall | ratio L/M | speed-up | Lamina CPU | Metaflow CPU | CPU ratio L/M "
        "| Lamina peak RSS | Metaflow peak RSS | Lamina tree PSS | Metaflow tree PSS | n |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for res in results:
        lw, mw = _med(res.samples["lamina"], "wall"), _med(res.samples["metaflow"], "wall")
        ok = lw and mw
        ratio = _fmt(lw / mw, ".3f") if ok else "—"
        speed = _fmt(mw / lw, ".1f", "×") if ok else "—"
        lc, mc = _med(res.samples["lamina"], "cpu"), _med(res.samples["metaflow"], "cpu")
        cpu_ratio = _fmt(lc / mc, ".3f") if ok and lc is not None and mc else "—"
        lines.append(
            f"| {res.scenario.name} | {_wall_cell(res, 'lamina')} | {_wall_cell(res, 'metaflow')} | {ratio} "
            f"| {speed} | {_cell(res, 'lamina', 'cpu', '.2f')} | {_cell(res, 'metaflow', 'cpu', '.2f')} "
            f"| {cpu_ratio} | {_cell(res, 'lamina', 'peak_rss_mb', '.0f')} | {_cell(res, 'metaflow', 'peak_rss_mb', '.0f')} "
            f"| {_cell(res, 'lamina', 'tree_pss_mb', '.0f')} | {_cell(res, 'metaflow', 'tree_pss_mb', '.0f')} "
            f"| {len(res.samples['lamina'])}/{len(res.samples['metaflow'])} |"
        )
    fe = [r for r in results if r.scenario.width]
    if fe:
        lines += [
            "",
            "Foreach cost per item: per task = median wall / width and CPU per task = median CPU / width (ms; "
            "both include the fixed start, join and end); marginal = extra wall per extra item against the next "
            "smaller width (ms), which removes the fixed part.",
            "",
            "| width | Lamina wall | Lamina per task | Lamina CPU per task | Lamina marginal | Metaflow wall "
            "| Metaflow per task | Metaflow CPU per task | Metaflow marginal |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        prev: dict[str, tuple[int, float] | None] = {"lamina": None, "metaflow": None}
        for res in fe:
            w = res.scenario.width
            cells = [f"{w:,}"]
            for name in ("lamina", "metaflow"):
                med, cpu = _med(res.samples[name], "wall"), _med(res.samples[name], "cpu")
                if med is None or cpu is None:
                    cells += [_cell(res, name, "wall", ".3f"), "—", "—", "—"]
                    continue
                marginal = "—"
                if prev[name]:
                    pw, pm = prev[name]
                    marginal = f"{(med - pm) / (w - pw) * 1000:.2f}"
                cells += [f"{med:.3f}", f"{med / w * 1000:.2f}", f"{cpu / w * 1000:.2f}", marginal]
                prev[name] = (w, med)
            lines.append("| " + " | ".join(cells) + " |")
    lines += ["", targets(results)]
    fails = [(r.scenario.name, n, f) for r in results for n, fs in r.failures.items() for f in fs]
    if fails:
        lines += ["", "Failures:", ""]
        for sc, name, f in fails:
            lines += [f"- {sc} / {name}: `{' '.join(f.cmd)}` exited {f.code}", "", "```", f.tail, "```", ""]
    return "\n".join(lines)


def raw_results(results: list[Result]) -> dict:
    return {
        r.scenario.name: {
            "samples": {n: [s.__dict__ for s in v] for n, v in r.samples.items()},
            "failures": {
                n: [{"cmd": f.cmd, "code": f.code, "tail": f.tail} for f in fs]
                for n, fs in r.failures.items()
            },
            "skipped": sorted(r.skipped),
        }
        for r in results
    }


def load_results(path: Path) -> list[Result]:
    """The results saved by ``--json``, for ``--report-from``."""
    raw = json.loads(path.read_text())
    by_name = {s.name: s for s in SCENARIOS}
    results = []
    for name, data in raw.items():
        res = Result(by_name[name])
        for side, samples in data["samples"].items():
            res.samples[side] = [Sample(**s) for s in samples]
        for side, fails in data["failures"].items():
            for f in fails if isinstance(fails, list) else [fails]:
                if isinstance(f, dict):
                    res.failures[side].append(Failure(f["cmd"], f["code"], f["tail"]))
                else:
                    res.failures[side].append(Failure(["(see the message)"], -1, str(f)))
        res.skipped = set(data.get("skipped", []))
        results.append(res)
    return results


def targets(results: list[Result]) -> str:
    by = {r.scenario.name: r for r in results}

    def med(sc: str, name: str, attr: str = "wall") -> float | None:
        r = by.get(sc)
        if r is None:
            return None
        return _med(r.samples[name], attr)

    def speedup(sc: str) -> float | None:
        lw, mw = med(sc, "lamina"), med(sc, "metaflow")
        return mw / lw if lw and mw else None

    def verdict(ok: bool | None) -> str:
        return "not measured" if ok is None else ("met" if ok else "NOT met")

    rows = []
    for sc, want in (("linear_10", 5), ("foreach_100", 10), ("array_400mb", 8), ("resume", 3)):
        s = speedup(sc)
        rows.append(
            (f"{sc}: at least {want}× faster", _fmt(s, ".1f", "×"), verdict(None if s is None else s >= want))
        )
    # Flat: the per-task cost at 10,000 is at most 1.25x the lowest per-task cost at 100 or 1,000
    # (the lowest, because at 100 the fixed start/join/end still weigh on the per-task figure).
    label = (
        "foreach per-task cost flat 100 → 10,000 (wall per task at 10,000 ≤ 1.25× the lowest at 100 or 1,000)"
    )
    per = {w: med(f"foreach_{w}", "lamina") for w in (100, 1000, 10000)}
    cpu = {w: med(f"foreach_{w}", "lamina", "cpu") for w in (100, 1000, 10000)}
    smaller = [per[w] / w for w in (100, 1000) if per[w]]
    if per[10000] and smaller:
        growth = (per[10000] / 10000) / min(smaller)
        cpu_smaller = [cpu[w] / w for w in (100, 1000) if cpu[w]]
        cpu_note = (
            f"; CPU per task {(cpu[10000] / 10000) / min(cpu_smaller):.2f}×"
            if cpu[10000] and cpu_smaller
            else ""
        )
        rows.append((label, f"wall per task {growth:.2f}×{cpu_note}", verdict(growth <= 1.25)))
    else:
        rows.append((label, "—", verdict(None)))
    rss, pss = med("array_400mb", "lamina", "peak_rss_mb"), med("array_400mb", "lamina", "tree_pss_mb")
    limit = 1.3 * ARRAY_MB * 1e6 / 2**20
    worst = max(v for v in (rss, pss) if v is not None) if (rss or pss) else None
    rows.append(
        (
            f"array peak memory ≤ 1.3× the array ({limit:.0f} MiB; the larger of peak RSS and tree PSS)",
            _fmt(worst, ".0f", " MiB"),
            verdict(None if worst is None else worst <= limit),
        )
    )
    for sc, label, limit_s in (
        ("cli_stack_list", "`lamina stack list` ≤ 0.3 s", 0.3),
        ("cli_help", "`lamina --help` ≤ 0.3 s", 0.3),
        ("import", "`import lamina` ≤ 0.1 s", 0.1),
    ):
        v = med(sc, "lamina")
        rows.append((label, _fmt(v, ".3f", " s"), verdict(None if v is None else v <= limit_s)))
    out = ["| target | measured | verdict |", "|---|---|---|"]
    out += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    return "\n".join(out)


def machine_facts(frameworks: dict[str, Framework]) -> str:
    def version(fw: Framework, module: str) -> str:
        code = f"import importlib.metadata as m; print(m.version({module!r}))"
        if not Path(fw.python).exists():  # Metaflow's environment, absent with --anchor-skip all
            return "not installed"
        r = subprocess.run([fw.python, "-c", code], capture_output=True, text=True, env=fw.env)
        return r.stdout.strip() or "?"

    mem = "?"
    try:
        with open("/proc/meminfo") as fh:
            mem = f"{int(fh.readline().split()[1]) / 2**20:.1f} GiB"
    except OSError:
        pass
    commit = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    )
    dirty = subprocess.run(
        ["git", "-C", str(REPO), "status", "--porcelain", "core", "plugins", "stacks"],
        capture_output=True,
        text=True,
    )
    lam, mf = frameworks["lamina"], frameworks["metaflow"]
    where = subprocess.run(
        [lam.python, "-c", "import lamina; print(lamina.__file__)"],
        capture_output=True,
        text=True,
        env=lam.env,
    ).stdout.strip()
    if "BENCH_LAMINA_SRC" in lam.env:
        source = f"the committed {lam.env['BENCH_LAMINA_SRC']}: {where}"
    else:
        source = (
            f"the working tree at {commit.stdout.strip()}"
            + (" with uncommitted changes in core/, plugins/ or stacks/" if dirty.stdout.strip() else "")
            + f": {where}"
        )
    return "\n".join(
        [
            f"- date: {datetime.datetime.now().astimezone():%Y-%m-%d %H:%M:%S %Z}",
            f"- host: {platform.platform()}; nproc {os.cpu_count()}; memory {mem}; load average "
            + " ".join(f"{x:.2f}" for x in os.getloadavg()),
            f"- Python {platform.python_version()} ({lam.python}); anchor {mf.python}",
            f"- lamina {version(lam, 'lamina')} from {source}"
            + f"; numpy {version(lam, 'numpy')}, pyarrow {version(lam, 'pyarrow')}, pydantic {version(lam, 'pydantic')}, "
            f"sqlalchemy {version(lam, 'sqlalchemy')}, pluggy {version(lam, 'pluggy')}",
            f"- metaflow {version(mf, 'metaflow')}; numpy {version(mf, 'numpy')}",
        ]
    )


# ----------------------------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    global WORK
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--setup-anchor", action="store_true", help="create benchmarks/.anchor-venv first")
    parser.add_argument("--setup-only", action="store_true", help="with --setup-anchor: stop after it")
    parser.add_argument("--repeat", type=int, default=5, help="runs per side of each light scenario (5)")
    parser.add_argument(
        "--heavy-repeat", type=int, default=3, help="runs per side of foreach_1000/10000 and array_400mb (3)"
    )
    parser.add_argument(
        "--scenarios",
        nargs="+",
        default=["all"],
        help=f"names or groups: {', '.join([*GROUPS, *(s.name for s in SCENARIOS)])}",
    )
    parser.add_argument(
        "--anchor-skip",
        nargs="+",
        default=[],
        metavar="NAME",
        help="scenarios (or 'all') to run on Lamina only",
    )
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per command (3600)")
    parser.add_argument(
        "--lamina-python", default=None, help="Lamina's interpreter (default: the repo's .venv)"
    )
    parser.add_argument(
        "--lamina-src",
        choices=["installed", "head"],
        default="installed",
        help="Lamina as installed in its venv (default; the working tree for an editable install), or a "
        "snapshot of the committed HEAD, unaffected by edits made while the benchmark runs",
    )
    parser.add_argument(
        "--work-dir",
        type=Path,
        default=WORK,
        help="where flows, stores and logs go (benchmarks/.work); wiped first",
    )
    parser.add_argument("--json", help="also write the raw samples to this file")
    parser.add_argument(
        "--report-from", metavar="JSON", help="print the tables of a saved --json file; run nothing"
    )
    args = parser.parse_args(argv)
    if args.report_from:
        print(report(load_results(Path(args.report_from))))
        return 0

    lamina_python = args.lamina_python or str(REPO / ".venv" / "bin" / "python")
    if not Path(lamina_python).exists():
        lamina_python = sys.executable
    if args.setup_anchor:
        setup_anchor(lamina_python)
        if args.setup_only:
            return 0
    if "all" not in args.anchor_skip and not (ANCHOR_VENV / "bin" / "metaflow").exists():
        parser.error(f"no anchor environment at {ANCHOR_VENV}: run with --setup-anchor first")
    if not Path(TIME_BIN).exists():
        parser.error(f"{TIME_BIN} (GNU time) is needed: apt-get install time")
    wanted: list[str] = []
    for name in args.scenarios:
        for s in GROUPS.get(name, [name]):
            if s not in {sc.name for sc in SCENARIOS}:
                parser.error(f"unknown scenario {s!r}")
            if s not in wanted:
                wanted.append(s)
    scenarios = [s for s in SCENARIOS if s.name in wanted]

    WORK = args.work_dir.resolve()
    _lock = lock_work(WORK)  # noqa: F841 - held until exit
    frameworks = make_frameworks(lamina_python, args.lamina_src)
    facts_before = machine_facts(frameworks)
    print(facts_before, file=sys.stderr, flush=True)
    started = time.time()
    results = run_all(
        frameworks, scenarios, args.repeat, args.heavy_repeat, set(args.anchor_skip), args.timeout
    )
    command = "python benchmarks/run.py " + " ".join(sys.argv[1:] if argv is None else argv)
    print(f"# Lamina vs Metaflow — {command.strip()}\n")
    print(facts_before)
    print(
        f"- finished after {time.time() - started:.0f} s; load average at the end "
        + " ".join(f"{x:.2f}" for x in os.getloadavg())
    )
    if args.anchor_skip:
        print(f"- Metaflow skipped for: {', '.join(args.anchor_skip)}")
    print()
    print(report(results))
    if args.json:
        Path(args.json).write_text(json.dumps(raw_results(results), indent=1))
    return 1 if any(fs for r in results for fs in r.failures.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
