"""``lamina verify``: check every blob of a store (or of one run) against what was written.

Artifacts and code packages are checked against their SHA-256 content address (the definitive
check, not the fast checksum loads use), task records and run manifests must parse. Every damaged
blob is reported with the runs, tasks and artifacts that use it, and each affected run with how to
recover it. Only the blob store is read: this works when the metadata database is gone too.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from typing import Any

from ..models import TaskRecord
from . import integrity, layout
from .artifacts import BlobStore
from .runstore import parse_record


@dataclass
class Use:
    """One place where a damaged blob is used: an artifact of a task (or a run's record/code)."""

    flow: str
    run: str
    step: str = ""
    task: str = ""
    artifact: str = ""
    started_at: str = ""

    @property
    def pathspec(self) -> str:
        return "/".join(p for p in (self.flow, self.run, self.step, self.task) if p)


@dataclass
class Damage:
    key: str
    kind: str  # artifact | code | record | manifest | params
    problem: str
    uses: list[Use] = field(default_factory=list)


@dataclass
class VerifyReport:
    checked: int = 0
    runs: list[str] = field(default_factory=list)
    damaged: list[Damage] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.damaged

    def recovery(self) -> dict[str, list[str]]:
        """For each affected run ``FLOW/RUN``: the steps to re-run, earliest producer first."""
        firsts: dict[str, dict[str, str]] = {}  # run -> step -> earliest start
        for d in self.damaged:
            by_run: dict[str, Use] = {}
            for u in d.uses:
                run = f"{u.flow}/{u.run}"
                if u.step and (run not in by_run or u.started_at < by_run[run].started_at):
                    by_run[run] = u
                else:
                    by_run.setdefault(run, u)
            for run, u in by_run.items():
                steps = firsts.setdefault(run, {})
                if u.step and (u.step not in steps or u.started_at < steps[u.step]):
                    steps[u.step] = u.started_at
        return {run: sorted(steps, key=lambda s: steps[s]) for run, steps in sorted(firsts.items())}

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "checked": self.checked,
            "runs": self.runs,
            "damaged": [
                {
                    **asdict(d),
                    "uses": [{k: v for k, v in asdict(u).items() if k != "started_at"} for u in d.uses],
                }
                for d in self.damaged
            ],
            "affected_runs": self.recovery(),
            "removed": self.removed,
        }


def _problem_of(blobs: BlobStore, key: str, size: int | None) -> str | None:
    """Why the artifact or code blob ``key`` does not hold the bytes of its address, or None."""
    digest = layout.digest_of(key)
    path = blobs.local_path(key)
    if path is not None:
        if not os.path.exists(path):
            return "is missing"
        if size is not None and os.path.getsize(path) != size:
            return integrity.size_problem(os.path.getsize(path), size)
        return (
            None if integrity.sha256_of_file(path) == digest else "does not match its SHA-256 content address"
        )
    fd, tmp = tempfile.mkstemp(prefix=".verify-")
    os.close(fd)
    try:
        try:
            blobs.fetch(key, tmp)
        except KeyError:
            return "is missing"
        if size is not None and os.path.getsize(tmp) != size:
            return integrity.size_problem(os.path.getsize(tmp), size)
        return (
            None if integrity.sha256_of_file(tmp) == digest else "does not match its SHA-256 content address"
        )
    finally:
        os.unlink(tmp)


def _runs_in(blobs: BlobStore, flow: str | None, run_id: str | None) -> list[tuple[str, str]]:
    if flow and run_id:
        return [(flow, run_id)]
    prefix = layout.RUNS_PREFIX + (f"{layout.check_segment(flow, 'flow name')}/" if flow else "")
    found = set()
    for key in blobs.list(prefix):
        parts = key.split("/")
        if len(parts) >= 4:
            found.add((parts[1], parts[2]))
    return sorted(found)


def verify_store(
    blobs: BlobStore, flow: str | None = None, run_id: str | None = None, *, remove_damaged: bool = False
) -> VerifyReport:
    """Check the whole store, one flow's runs, or one run; see the module docstring.

    With ``remove_damaged``, damaged artifact blobs and task records are deleted afterwards, so
    that ``resume`` from the step that made them writes them again (a content-addressed blob that
    exists is never rewritten).
    """
    report = VerifyReport()
    uses: dict[str, list[Use]] = {}
    sizes: dict[str, int] = {}
    kinds: dict[str, str] = {}
    damaged: dict[str, Damage] = {}
    for fl, run in _runs_in(blobs, flow, run_id):
        report.runs.append(f"{fl}/{run}")
        keys = blobs.list(layout.run_prefix(fl, run))
        for key in keys:
            if key.endswith("/" + layout.RECORD_NAME):
                report.checked += 1
                record = _record(blobs, key, damaged, fl, run)
                if record is None:
                    continue
                for name, ref in record.artifacts.items():
                    uses.setdefault(ref.key, []).append(
                        Use(fl, run, record.step, record.task_id, name, record.started_at.isoformat())
                    )
                    sizes[ref.key] = ref.size
                    kinds[ref.key] = "artifact"
            elif key.endswith("/" + layout.MANIFEST_NAME) or key.endswith("/" + layout.PARAMS_NAME):
                report.checked += 1
                kind = "manifest" if key.endswith(layout.MANIFEST_NAME) else "params"
                try:
                    doc = json.loads(blobs.get(key))
                except (KeyError, ValueError) as e:
                    damaged[key] = Damage(key, kind, f"is not valid JSON ({e})", [Use(fl, run)])
                    continue
                code = doc.get("code_key") if isinstance(doc, dict) else None
                if code:
                    uses.setdefault(code, []).append(Use(fl, run))
                    kinds[code] = "code"
    if flow is None:  # the whole store: blobs no run uses are checked too
        for prefix, kind in ((layout.ARTIFACTS_PREFIX, "artifact"), (layout.CODE_PREFIX, "code")):
            for key in blobs.list(prefix):
                uses.setdefault(key, [])
                kinds.setdefault(key, kind)
    for key in sorted(uses):
        report.checked += 1
        try:
            problem = _problem_of(blobs, key, sizes.get(key))
        except ValueError:
            continue  # not a content-addressed key (another tool's file)
        if problem is not None:
            damaged[key] = Damage(key, kinds[key], problem, uses[key])
    report.damaged = [damaged[k] for k in sorted(damaged)]
    if remove_damaged:
        gone = [
            d.key for d in report.damaged if d.kind in ("artifact", "record") and d.problem != "is missing"
        ]
        if gone:
            blobs.delete(gone)
        report.removed = gone
    return report


def _record(blobs: BlobStore, key: str, damaged: dict[str, Damage], flow: str, run: str) -> TaskRecord | None:
    _, _, step, task_id, _ = layout.parse_task_record_key(key)
    try:
        return parse_record(blobs.get(key), key)
    except KeyError:
        return None
    except integrity.DamagedBlob:
        damaged[key] = Damage(key, "record", "is not a valid task record", [Use(flow, run, step, task_id)])
        return None
