"""``lamina verify [FLOW[/RUN]]``: list damaged blobs, the runs and tasks they affect, and how
to recover; exits 1 when anything is damaged."""

from __future__ import annotations

import argparse

from ..errors import NotFound
from .common import print_json, table


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "verify", help="check stored blobs against their content addresses; list damage and how to recover"
    )
    p.add_argument("target", nargs="?", help="FLOW, FLOW/RUN or RUN (default: the whole store)")
    p.add_argument(
        "--remove-damaged",
        action="store_true",
        help="delete damaged artifacts and task records, so that resume writes them again",
    )
    p.add_argument("--stack")
    p.add_argument("--json", action="store_true")


def run(args: argparse.Namespace) -> int:
    from ..stack import resolve_stack
    from ..versioning.verify import verify_store

    flow, _, run_id = (args.target or "").strip("/").partition("/")
    with resolve_stack(args.stack) as stack:
        if flow[:1].isdigit() and not run_id:  # a bare RUN id (run ids start with the date)
            from ..versioning.runstore import RunStore

            runs = RunStore(stack.versioning)
            owners = [f for f in runs.flows() if runs.run_exists(f, flow)]
            if not owners:
                raise NotFound(f"verify: no run {flow!r} is stored on stack {stack.name}; give FLOW/RUN.")
            flow, run_id = owners[0], flow
        report = verify_store(
            stack.versioning, flow or None, run_id or None, remove_damaged=args.remove_damaged
        )
    if args.json:
        print_json(report.to_json())
        return 0 if report.ok else 1
    where = args.target or "the whole store"
    if report.ok:
        print(f"{where}: {report.checked} blob(s) of {len(report.runs)} run(s) checked, none damaged.")
        return 0
    print(f"{where}: {len(report.damaged)} damaged blob(s) among {report.checked} checked.\n")
    rows = []
    for d in report.damaged:
        used = ", ".join(f"{u.pathspec}" + (f" ({u.artifact})" if u.artifact else "") for u in d.uses[:3]) + (
            f" and {len(d.uses) - 3} more" if len(d.uses) > 3 else ""
        )
        rows.append((d.kind, d.key, d.problem, used or "no run uses it"))
    print(table(rows, ["KIND", "BLOB", "PROBLEM", "USED BY"]))
    recovery = report.recovery()
    if recovery:
        print("\naffected runs, and the step to re-run from:")
        for run_path, steps in recovery.items():
            rid = run_path.split("/", 1)[1]
            first = steps[0] if steps else "start"
            print(f"  {run_path}: `python flow.py resume --origin-run-id {rid} {first}`")
    if report.removed:
        print(f"\nremoved {len(report.removed)} damaged blob(s); resume now writes them again.")
    else:
        print(
            "\nTo recover: restore the damaged blobs from a backup, or remove them "
            "(`lamina verify --remove-damaged"
            + (f" {args.target}" if args.target else "")
            + "`) and resume each affected run from the step shown (finished tasks before it are reused)."
        )
    return 1
