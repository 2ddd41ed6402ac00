"""``lamina runs | show | logs | compare | code``: read runs back, as tables or ``--json``."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..errors import LaminaError, NotFound
from ..models import RUN_STATUSES
from .common import print_json, table


def run(args: argparse.Namespace) -> int:
    _bind_stack(getattr(args, "stack", None))
    return {"runs": _runs, "show": _show, "logs": _logs, "compare": _compare, "code": _code}[args.command](
        args
    )


def _bind_stack(name: str | None) -> None:
    from .. import client
    from ..stack import resolve_stack
    from ..versioning.artifacts import ArtifactStore
    from ..versioning.metadata import MetadataStore

    stack = resolve_stack(name)
    client.use_store(
        ArtifactStore(stack.versioning, cache_dir=stack.project_dir / ".lamina" / "cache"),
        MetadataStore(stack.versioning.metadata_url()),
    )


def _when(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value is not None else ""


def _duration(info: Any) -> str:
    if info.finished_at is None or info.started_at is None:
        return ""
    return f"{(info.finished_at - info.started_at).total_seconds():.1f}s"


def _index_deployed(stack_name: str | None, flow: str) -> None:
    """Index the runs of ``flow`` that a deployment started with no one following them (a schedule,
    an event): their manifest says ``deployed``; they are in the blob store, not yet in the metadata."""
    from ..client import _get_stores
    from ..runtime.sync import sync_run
    from ..stack import resolve_stack

    runs, meta = _runstore(), _get_stores()[1]
    known = {i.id for i in meta.runs(flow, limit=None)}
    waiting = [r for r in runs.run_ids(flow) if r not in known and (runs.load_manifest(flow, r) or {}).get("deployed")]
    if waiting:
        with resolve_stack(stack_name) as stack:
            for run_id in waiting:
                sync_run(stack, flow, run_id)


def _runs(args: argparse.Namespace) -> int:
    from ..client import _get_stores, current_user

    meta = _get_stores()[1]
    if args.flow:
        _index_deployed(args.stack, args.flow)
    infos = meta.runs(
        args.flow,
        tags=[
            *args.tag,
            *([f"project:{args.project}"] if getattr(args, "project", None) else []),
            *([f"branch:{args.branch}"] if getattr(args, "branch", None) else []),
        ],
        status=args.status,
        user=None if args.all else current_user(),
        limit=args.limit,
    )
    if args.json:
        print_json([i.model_dump(mode="json", exclude={"packages"}) for i in infos])
        return 0
    if not infos:
        who = "anyone" if args.all else current_user()
        print(
            f"no runs{f' of {args.flow}' if args.flow else ''} by {who}"
            + ("" if args.all else " (--all shows everyone's)")
        )
        if not meta.runs(args.flow, limit=1):
            hint = _unindexed_hint(args.flow)
            if hint:
                print(hint)
        return 0
    rows = [
        (i.flow, i.id, i.status, i.user, _when(i.started_at), _duration(i), ",".join(i.tags)) for i in infos
    ]
    print(table(rows, ["FLOW", "RUN", "STATUS", "USER", "STARTED (UTC)", "TOOK", "TAGS"]))
    return 0


def _runstore() -> Any:
    from .. import client
    from ..versioning.runstore import RunStore

    return RunStore(client._get_stores()[0].blobs)


def _stored_flows(flow: str | None = None) -> list[str]:
    """Flows that have runs in the blob store (all, or just ``flow`` if it has some)."""
    runs = _runstore()
    if flow is not None:
        return [flow] if runs.run_ids(flow) else []
    return runs.flows()


def _unindexed_hint(flow: str | None) -> str:
    """When the metadata database knows no runs but the blob store holds some: how to rebuild it."""
    flows = _stored_flows(flow)
    if not flows:
        return ""
    return (
        "the metadata database lists no runs, but the blob store holds runs of "
        + ", ".join(flows)
        + ": it was emptied or replaced. Rebuild it with "
        + " ".join(f"`lamina sync {f}`" for f in flows)
        + "."
    )


def _run(run_id: str) -> Any:
    """``Run(run_id)``; a run missing from the metadata but stored in the blob store says how
    to index it."""
    from ..client import Run

    try:
        return Run(run_id)
    except NotFound as e:
        runs = _runstore()
        stored = [f for f in runs.flows() if runs.run_exists(f, run_id)]
        if stored:
            raise NotFound(
                f"{str(e).rstrip('.')}. The blob store holds run {stored[0]}/{run_id}: the metadata database was emptied, "
                f"replaced or never told. `lamina sync {stored[0]}/{run_id}` indexes it."
            ) from None
        raise


def _split(pathspec: str) -> tuple[str, str | None, str | None]:
    """``[FLOW/]RUN[/STEP[/TASK]]`` -> (run, step, task); run ids never contain ``/``."""
    parts = [p for p in pathspec.split("/") if p]
    if not parts:
        raise LaminaError("give a run as RUN, RUN/STEP or RUN/STEP/TASK (optionally FLOW/RUN...).")
    if len(parts) >= 2 and not parts[0][:1].isdigit():
        parts = parts[1:]  # a leading flow name
    run, step, task = (parts + [None, None])[:3]
    return run, step, task  # type: ignore[return-value]


def _artifact_rows(task: Any, damaged: list[LaminaError]) -> list[tuple[str, str, str, str]]:
    """One row per artifact; small built-in values are shown. Damaged blobs are collected in
    ``damaged`` (and marked in the table) so the command reports them instead of a value."""
    from ..versioning.integrity import DamagedBlob

    rows = []
    for name, ref in sorted(task.artifacts.items()):
        value = ""
        if ref.size <= 200 and ref.type.startswith("builtins."):
            try:
                value = repr(task.data[name])[:60]
            except DamagedBlob as e:
                damaged.append(e)
                value = "DAMAGED (see below)"
            except Exception:  # a value that cannot be loaded here still lists
                value = ""
        rows.append((name, ref.type, _size(ref.size), value or ref.key.rsplit("/", 1)[-1][:12]))
    return rows


def _version(handle: dict[str, Any]) -> str:
    tables = handle.get("tables") or {}
    if tables:
        return ", ".join(f"{name}@{str(v).split(':')[-1][:10]}" for name, v in tables.items())
    if "query_id" in handle:
        return f"query {handle['query_id']}"
    return ", ".join(f"{k}={v}" for k, v in handle.items())[:40]


def _size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def _show(args: argparse.Namespace) -> int:
    run_id, step_name, task_id = _split(args.pathspec)
    run = _run(run_id)
    if step_name is None:
        steps = run.steps
        if args.json:
            print_json(
                {
                    "flow": run.flow_name,
                    "run": run.id,
                    "status": run.status,
                    "user": run.user,
                    "params": run.params,
                    "tags": run.tags,
                    "stack": run.stack,
                    "code": run.code.key if run.code else None,
                    "origin_run_id": run.origin_run_id,
                    "started_at": run.started_at,
                    "finished_at": run.finished_at,
                    "steps": {s.name: [t.status for t in s.tasks] for s in steps},
                    "metrics": {k: [p.value for p in v] for k, v in run.metrics.items()},
                    "data_reads": [
                        {"step": r.step, "task": r.task_id, **r.snapshot.model_dump(mode="json")}
                        for r in run.data_reads
                    ],
                }
            )
            return 0
        print(f"{run.flow_name}/{run.id}  {run.status}  by {run.user}  on stack {run.stack.get('name', '?')}")
        print(
            f"started {_when(run.started_at)} UTC, took {_duration(run)}"
            + (f"; resumed from {run.origin_run_id}" if run.origin_run_id else "")
        )
        if run.params:
            print("parameters: " + ", ".join(f"{k}={v!r}" for k, v in run.params.items()))
        if run.tags:
            print("tags: " + ", ".join(run.tags))
        # counted from the client's own task statuses, so `show` and the client always agree
        by_step = {s.name: [t.status for t in s.tasks] for s in steps}
        shown = ["succeeded", "failed"] + [
            st
            for st in RUN_STATUSES
            if st not in ("succeeded", "failed") and any(st in v for v in by_step.values())
        ]
        rows = [
            (name, len(statuses), *(statuses.count(st) for st in shown)) for name, statuses in by_step.items()
        ]
        print()
        print(table(rows, ["STEP", "TASKS", "OK", *(st.upper() for st in shown[1:])]))
        damaged: list[LaminaError] = []
        if "end" in run and run.successful:
            print("\nartifacts of end:")
            print(table(_artifact_rows(run.end_task, damaged), ["NAME", "TYPE", "SIZE", "VALUE / KEY"]))
        reads = run.data_reads
        if reads:
            print("\ndata reads:")
            read_rows = [
                (
                    f"{r.step}/{r.task_id}",
                    r.snapshot.kind,
                    r.snapshot.target[:50],
                    _version(r.snapshot.handle),
                )
                for r in reads
            ]
            print(table(read_rows, ["TASK", "KIND", "TABLE / QUERY", "VERSION"]))
        _raise_damage(damaged)
        return 0
    step = run[step_name]
    tasks = step.tasks if task_id is None else [step[task_id]]
    if args.json:
        print_json(
            [
                {
                    "pathspec": t.pathspec,
                    "status": t.status,
                    "attempt": t.attempt,
                    "inputs": t.input_paths,
                    "artifacts": {n: r.model_dump() for n, r in t.artifacts.items()},
                    "metrics": {k: [p.value for p in v] for k, v in t.metrics.items()},
                    "error": t.error,
                }
                for t in tasks
            ]
        )
        return 0
    damaged = []
    for t in tasks:
        print(f"{t.pathspec}  {t.status}  attempt {t.attempt}  took {_duration(t)}")
        if t.error:
            print(f"  error: {t.error}")
        if task_id is not None or len(tasks) == 1:
            print(table(_artifact_rows(t, damaged), ["NAME", "TYPE", "SIZE", "VALUE / KEY"]))
            metrics = t.metrics
            if metrics:
                print(
                    "metrics: "
                    + ", ".join(f"{k}={v[-1].value:g} ({len(v)} points)" for k, v in metrics.items())
                )
    _raise_damage(damaged)
    return 0


def _raise_damage(damaged: list[LaminaError]) -> None:
    """After the table: the first damaged blob's error (which says how to recover), so the
    command fails instead of showing a value it could not trust."""
    if damaged:
        sys.stdout.flush()
        raise damaged[0]


def _logs(args: argparse.Namespace) -> int:
    run_id, step_name, task_id = _split(args.pathspec)
    run = _run(run_id)
    steps = [run[step_name]] if step_name else run.steps
    for s in steps:
        tasks = [s[task_id]] if task_id else s.tasks
        for t in tasks:
            streams = ("stdout", "stderr") if args.stream == "both" else (args.stream,)
            for stream in streams:
                text = getattr(t, stream)
                if not text:
                    continue
                if len(steps) > 1 or len(tasks) > 1 or args.stream == "both":
                    print(f"--- {t.pathspec} {stream} ---")
                print(text, end="" if text.endswith("\n") else "\n")
    return 0


def _compare(args: argparse.Namespace) -> int:
    from ..client import compare_runs

    a, b = _run_or_branch(args.run_a), _run_or_branch(args.run_b)
    diff = compare_runs(a, b)
    if args.json:
        print_json({"a": a.id, "b": b.id, **diff})
        return 0
    print(f"A = {a.flow_name}/{a.id}\nB = {b.flow_name}/{b.id}")
    same = True
    for section in ("params", "metrics", "artifacts"):
        entries = diff[section]
        if entries:
            same = False
            print(f"\n{section} that differ:")
            print(table([(k, _short(v[0]), _short(v[1])) for k, v in entries.items()], ["NAME", "A", "B"]))
    if same:
        print("\nno differences in parameters, metrics or end artifacts")
    return 0


def _run_or_branch(spec: str) -> Any:
    """``FLOW@BRANCH`` is the latest run of that ``@project`` branch (``@`` is in no run id or
    pathspec); anything else is a run."""
    from ..client import Run, _get_stores, _in_namespace

    if "@" not in spec:
        return _run(_split(spec)[0])
    flow, _, branch = spec.partition("@")
    if not flow or not branch:
        raise LaminaError(f"{spec!r}: write FLOW@BRANCH, e.g. TrainFlow@prod or TrainFlow@user.ana")
    found = [i for i in _get_stores()[1].runs(flow, tags=[f"branch:{branch}"], limit=50) if _in_namespace(i)]
    if not found:
        raise LaminaError(
            f"{flow} has no run on branch {branch!r} in your namespace; `lamina runs {flow} --branch {branch} --all` "
            "lists everyone's."
        )
    return Run._from(found[0])


def _short(value: Any) -> str:
    text = repr(value) if not isinstance(value, str) else value
    if isinstance(value, str) and value.startswith("artifacts/sha256/"):
        text = "sha256:" + value.rsplit("/", 1)[-1][:12]
    return text if len(text) <= 48 else text[:45] + "..."


def _code(args: argparse.Namespace) -> int:
    run = _run(_split(args.run)[0])
    if run.code is None:
        raise NotFound(f"run {run.id} has no stored code package.")
    dest = run.code.restore(args.dest)
    print(f"restored the code of {run.flow_name}/{run.id} into {dest}")
    return 0
