"""The built-in scheduler: walks a run's DAG on the user's machine, sending each task to the
stack's compute layer and recording each result in the metadata store.

Task ids are deterministic: ``0`` outside any foreach, else the foreach indices joined by ``.``
(``3``, ``3.1``). A resumed run therefore finds the same task of its origin run by step and id.
"""

from __future__ import annotations

import getpass
import os
import platform
import sys
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import LaminaError, RunFailed
from ..models import ForeachFrame, Resources, RunOutcome, TaskRecord, TaskSpec, TaskStatus
from .progress import Progress

if TYPE_CHECKING:
    from ..flow.graph import FlowGraph
    from ..flow.spec import FlowSpec
    from ..stack import Stack

DEFAULT_MAX_SPLITS = 100_000


def current_user() -> str:
    return os.environ.get("LAMINA_USER") or getpass.getuser()


def task_id_for(stack: list[ForeachFrame]) -> str:
    return ".".join(str(f.index) for f in stack) or "0"


@dataclass
class _Join:
    expected: int
    foreach_stack: list[ForeachFrame]
    arrived: int = 0


class RunDriver:
    """One run of a flow. ``start()`` prepares it; the orchestrator calls ``walk()``."""

    def __init__(
        self,
        flow_cls: type[FlowSpec],
        flow_file: str,
        stack: Stack,
        params: dict[str, Any],
        *,
        max_workers: int | None = None,
        max_splits: int = DEFAULT_MAX_SPLITS,
        origin_run_id: str | None = None,
        resume_step: str | None = None,
        tags: list[str] | None = None,
        echo: bool = True,
        run_id: str | None = None,
        with_decorators: list[str] | None = None,
    ) -> None:
        from ..flow.platform import apply_with, with_decorations

        self.flow_cls = flow_cls
        self.flow_file = str(Path(flow_file).resolve())
        self.stack = stack
        self.params = params
        self.max_workers = max_workers or stack.compute.default_workers() or os.cpu_count() or 1
        self.max_splits = max_splits
        self.origin_run_id = origin_run_id
        self.resume_step = resume_step
        self.tags = list(tags or [])
        self.echo = echo
        self.graph: FlowGraph = flow_cls.graph()
        self.flow_name = self.graph.name
        self.with_decorators = list(with_decorators or [])
        self.decorations: dict[str, dict[str, Any]] = {
            node.name: apply_with(node.decorations, with_decorations(node.name, self.with_decorators))
            if self.with_decorators
            else node.decorations
            for node in self.graph
        }
        from ..flow.packages import step_environment

        self.environments = {
            node.name: step_environment(flow_cls, node.name, self.decorations[node.name])
            for node in self.graph
        }
        self.run_id = run_id or ""
        self.user = current_user()
        self.progress = Progress(list(self.graph.nodes), echo=echo)
        self.resources: dict[str, Resources] = {}
        self.failure: TaskRecord | None = None
        self.records: dict[tuple[str, str], TaskRecord] = {}
        self._ready: deque[TaskSpec] = deque()
        self._running: dict[str, TaskSpec] = {}
        self._joins: dict[tuple[str, tuple[tuple[str, int], ...]], _Join] = {}
        self._cloned: set[tuple[str, str]] = set()
        self._origin: dict[tuple[str, str], TaskRecord] = {}
        self._rerun_steps: set[str] = set()
        self.code_key: str | None = None

    # -- preparation ------------------------------------------------------------------------

    def start(self) -> None:
        """Validate, start the compute layer's workers, store the code, open the run.

        The warm workers start first so that their interpreter and imports overlap with the rest;
        the metadata store is opened by the writer thread, off the critical path.
        """
        from ..discovery import get_registry
        from ..flow.includefile import include_files
        from ..flow.platform import notice_platforms
        from ..versioning.artifacts import ArtifactStore
        from ..versioning.codepkg import store_code
        from ..versioning.runstore import RunStore, new_run_id
        from .metawriter import MetadataWriter

        self.graph.validate()
        notice_platforms(self.decorations, self.stack.name)
        for node in self.graph:
            spec = self.decorations[node.name].get("resources")
            res = Resources(**spec) if spec else Resources()
            self.resources[node.name] = res
            if not res.is_empty():
                self.stack.compute.validate(node.name, res)
        self._prepare_environments()
        self.run_id = self.run_id or new_run_id()
        self.stack.compute.start(self.run_id, self.flow_file, self.stack.snapshot(), self.max_workers)
        try:
            self.store = ArtifactStore(
                self.stack.versioning, cache_dir=self.stack.project_dir / ".lamina" / "cache"
            )
            self.runs = RunStore(self.stack.versioning)
            url = self.stack.versioning.metadata_url()
            self.writer = MetadataWriter(lambda: _open_metadata(url))
            self.code_key = store_code(self.store, Path(self.flow_file).parent)
            # an IncludeFile is read here, once, and reaches every task as a stored artifact
            self.params = include_files(self.flow_cls, self.params, self.store)
            if self.origin_run_id:
                self._load_origin()
            manifest = {
                "flow_name": self.flow_name,
                "run_id": self.run_id,
                "params": self.params,
                "stack": self.stack.snapshot(),
                "code_key": self.code_key,
                "user": self.user,
                "tags": self.tags,
                "python_version": platform.python_version(),
                "packages": _packages(),
                "origin_run_id": self.origin_run_id,
            }
            environments = {
                step: env.model_dump(mode="json")
                for step, env in self.environments.items()
                if env is not None
            }
            # the graph is for readers of the run (lamina ui draws it); create_run takes the rest
            self.runs.save_manifest(
                self.flow_name,
                self.run_id,
                {**manifest, "graph": self.graph.describe(), "environments": environments},
            )
            self.runs.set_latest_run(self.flow_name, self.user, self.run_id)
            self.writer.call("create_run", **manifest)
        except BaseException:
            self.stack.compute.shutdown()
            raise
        self.progress.say(
            f"{self.flow_name} · run {self.run_id} · stack {self.stack.name} "
            f"({', '.join(f'{k}={v.adapter}' for k, v in self.stack.profile.layers.items())})"
            + (f" · resuming {self.origin_run_id}" if self.origin_run_id else "")
        )
        get_registry().hook().lamina_run_started(
            run_id=self.run_id, flow_name=self.flow_name, stack_name=self.stack.name, params=self.params
        )

    def _prepare_environments(self) -> None:
        """Build each step environment of the run once, before any task, so that a package the
        index lacks fails now and tasks start at once (they find the environment cached)."""
        from .environments import ensure_environment, python_notice

        built: set[str] = set()
        asked: set[str | None] = set()
        for step, env in self.environments.items():
            if env is None or env.key in built:
                continue
            built.add(env.key)
            self.progress.say(
                f"environment for step '{step}': {', '.join(env.requirements) or 'no packages'}"
            )
            notice = python_notice(env, step)
            if notice and env.python not in asked:  # once per run and version asked for
                asked.add(env.python)
                sys.stderr.write(notice + "\n")
            ensure_environment(env, step)

    def _load_origin(self) -> None:
        found = self.runs.records(self.flow_name, self.origin_run_id or "", all_attempts=True)
        if not found:
            raise LaminaError(
                f"run {self.origin_run_id} of {self.flow_name} has no stored tasks on stack {self.stack.name}: "
                "check the run id (`lamina runs`) and the stack."
            )
        for _, record in found:
            if record.ok:
                prev = self._origin.get((record.step, record.task_id))
                if prev is None or prev.attempt < record.attempt:
                    self._origin[(record.step, record.task_id)] = record
        if self.resume_step:
            if self.resume_step not in self.graph.nodes:
                raise LaminaError(
                    f"resume: {self.flow_name} has no step {self.resume_step!r} (steps: {', '.join(self.graph.nodes)})."
                )
            todo = [self.resume_step]
            while todo:
                name = todo.pop()
                if name not in self._rerun_steps:
                    self._rerun_steps.add(name)
                    todo.extend(self.graph[name].out_funcs)

    # -- walking ----------------------------------------------------------------------------

    def walk(self) -> RunOutcome:
        compute = self.stack.compute
        ok = False
        try:
            self._enqueue("start", [], [], None)
            self.progress.expect("start", 1)
            in_flight = self.max_workers + compute.queue_depth()
            while self._ready or self._running:
                while self._ready and len(self._running) < in_flight and self.failure is None:
                    self._submit(self._ready.popleft())
                if self.failure is not None:
                    self._ready.clear()
                if not self._running:
                    continue
                for status in compute.wait(list(self._running), timeout=1.0):
                    self._finished(status)
                self.progress.tick()
            ok = self.failure is None
        except KeyboardInterrupt:
            for handle in list(self._running):
                compute.cancel(handle)
            self.writer.call("finish_run", run_id=self.run_id, ok=False)
            self.writer.close()
            self.progress.say(f"interrupted. Resume with: {self.resume_hint()}")
            raise
        finally:
            compute.shutdown()
        self.writer.call("finish_run", run_id=self.run_id, ok=ok)
        self.writer.close()
        from ..discovery import get_registry

        get_registry().hook().lamina_run_finished(run_id=self.run_id, flow_name=self.flow_name, ok=ok)
        if ok:
            self.progress.say(
                f"{self.progress._mark('ok')} run {self.run_id} finished. Inspect it with: lamina show {self.flow_name}/{self.run_id}"
            )
            return RunOutcome(run_id=self.run_id, ok=True)
        assert self.failure is not None
        message = self._failure_message(self.failure)
        return RunOutcome(run_id=self.run_id, ok=False, failed_step=self.failure.step, message=message)

    def resume_hint(self) -> str:
        rel = os.path.relpath(self.flow_file)
        shown = rel if not rel.startswith("..") else self.flow_file
        return f"python {shown} resume --origin-run-id {self.run_id}"

    def _failure_message(self, record: TaskRecord) -> str:
        # Without live output (--quiet, echo=False) the failure report was not shown: the error
        # itself must still reach the user, in this message.
        error = f": {record.error.rstrip('.')}." if record.error and not self.progress.echo else "."
        return (
            f"{self.progress._mark('fail')} run {self.run_id} failed at step '{record.step}' (task {record.task_id}){error} "
            f"Fix the step, then resume; finished tasks are reused:\n    {self.resume_hint()}"
        )

    def _enqueue(
        self, step: str, inputs: list[str], stack: list[ForeachFrame], split_index: int | None
    ) -> None:
        deco = self.decorations[step]
        retry = deco.get("retry")
        spec = TaskSpec(
            run_id=self.run_id,
            flow_name=self.flow_name,
            step=step,
            task_id=task_id_for(stack),
            input_paths=inputs,
            foreach_stack=stack,
            split_index=split_index,
            flow_file=self.flow_file,
            code_key=self.code_key,
            stack=self.stack.snapshot(),
            resources=self.resources.get(step, Resources()),
            timeout=deco.get("timeout"),
            max_attempts=1 + (retry.times if retry else 0),
            user=self.user,
            parameters=self.params,
            origin_run_id=self.origin_run_id,
            tags=self.tags,
            with_decorators=self.with_decorators,
            environment=self.environments.get(step),
        )
        if self._reusable(spec):
            self._clone(spec)
        else:
            self._ready.append(spec)

    def _reusable(self, spec: TaskSpec) -> bool:
        key = (spec.step, spec.task_id)
        if key not in self._origin or spec.step in self._rerun_steps:
            return False
        return all(tuple(p.split("/")[:2]) in self._cloned for p in spec.input_paths)

    def _clone(self, spec: TaskSpec) -> None:
        """Reuse a finished task of the origin run: its record points at the same artifacts."""
        origin = self._origin[(spec.step, spec.task_id)]
        record = origin.model_copy(
            update={"run_id": self.run_id, "attempt": 0, "input_paths": spec.input_paths}
        )
        key = self.runs.save_record(record)
        self._cloned.add((spec.step, spec.task_id))
        self.writer.started(
            self.run_id, spec.step, spec.task_id, 0, spec.input_paths, list(spec.foreach_stack)
        )
        self._complete(spec, record, key, reused=True)

    def _submit(self, spec: TaskSpec) -> None:
        self.writer.started(
            self.run_id, spec.step, spec.task_id, spec.attempt, spec.input_paths, list(spec.foreach_stack)
        )
        handle = self.stack.compute.submit(spec)
        spec.__dict__["_started"] = time.monotonic()
        self._running[handle] = spec
        self.progress.started(spec.step)

    def _finished(self, status: TaskStatus) -> None:
        spec = self._running.pop(status.handle)
        ids = (self.flow_name, self.run_id, spec.step, spec.task_id, spec.attempt)
        key = self.runs.record_key(*ids)
        found = self.runs.record_at(key)
        if found is None:
            record = TaskRecord.begin(
                spec,
                error=f"the task process died before recording a result ({status.message or status.state})",
            )
            for stream in ("stdout", "stderr"):  # what it printed before it died, if it was kept
                if self.runs.log(*ids, stream):
                    setattr(record, f"{stream}_key", self.runs.log_key(*ids, stream))
            logs = self.stack.compute.logs(status.handle)
            if logs:
                record.traceback = logs
        else:
            record = found
        if not status.output_shown:
            self._show_output(spec, record)
        if record.ok and status.state == "failed":
            record.ok = False
            record.error = f"the task recorded success but its process ended badly ({status.message})"
        if not record.ok and spec.attempt + 1 < spec.max_attempts:
            self.writer.finished(record, key)
            retry = self.decorations[spec.step].get("retry")
            wait = 60 * retry.minutes_between_retries if retry else 0
            self.progress.say(
                f"{self.progress._mark('fail')} {spec.step}/{spec.task_id} attempt {spec.attempt + 1} failed ({record.error}); "
                f"retrying{f' in {wait:g}s' if wait else ''} (attempt {spec.attempt + 2} of {spec.max_attempts})"
            )
            self.progress.finished(spec.step, ok=False)
            if wait:
                time.sleep(wait)
            self._ready.appendleft(spec.model_copy(update={"attempt": spec.attempt + 1}))
            return
        started = spec.__dict__.get("_started", time.monotonic())
        from ..discovery import get_registry

        self._complete(spec, record, key)
        get_registry().hook().lamina_task_finished(
            run_id=self.run_id,
            step=spec.step,
            task_id=spec.task_id,
            ok=record.ok,
            duration=time.monotonic() - started,
        )

    def _show_output(self, spec: TaskSpec, record: TaskRecord) -> None:
        """Print a remote task's stored output, prefixed like a local task's live output."""
        if not self.echo or os.environ.get("LAMINA_QUIET"):
            return
        prefix = f"[{spec.step}/{spec.task_id}{f' attempt {spec.attempt}' if spec.attempt else ''}] "
        for key, stream in ((record.stdout_key, sys.stdout), (record.stderr_key, sys.stderr)):
            if not key:
                continue
            try:
                text = self.runs.text(key)
            except LaminaError:
                continue
            if record.traceback and stream is sys.stderr:
                text = text.replace(record.traceback, "")  # shown once, by the failure report
            lines = [prefix + line for line in text.splitlines()]
            if lines:
                stream.write("\n".join(lines) + "\n")
                stream.flush()

    def _complete(self, spec: TaskSpec, record: TaskRecord, key: str, reused: bool = False) -> None:
        self.writer.finished(record, key)
        self.records[(spec.step, spec.task_id)] = record
        self.progress.finished(spec.step, ok=record.ok, reused=reused)
        if not record.ok:
            if self.failure is None:
                self.failure = record
                self.progress.say(
                    f"{self.progress._mark('fail')} step '{spec.step}' task {spec.task_id} failed: {record.error}"
                )
                if record.traceback:
                    self.progress.say(_indent(record.traceback.rstrip()))
                if self._running:
                    self.progress.say(
                        f"… waiting for {len(self._running)} running task(s) to finish so they can be reused"
                    )
            return
        if self.failure is None:
            self._successors(spec, record)
        if self._step_complete(spec.step):
            self.progress.step_done(spec.step)

    def _step_complete(self, step: str) -> bool:
        """All tasks of ``step`` finished and no more can appear (its producers are complete)."""
        sp = self.progress.by_step[step]
        if sp.done < sp.total or sp.running > 0:
            return False
        return all(self._step_complete(parent) for parent in self.graph[step].in_funcs)

    def _inputs(self, step: str, frames: list[ForeachFrame]) -> list[str]:
        """The input paths of a task of ``step``, by the flow graph's one rule for them."""
        rule = self.graph.input_rule(step)
        return rule.paths(
            task_id_for(frames),
            len(frames),
            attempt_of=lambda s, t: self.records[(s, t)].attempt,
            count_of=lambda s, t: self.records[(s, t)].foreach_count or 0,
        )

    def _successors(self, spec: TaskSpec, record: TaskRecord) -> None:
        node = self.graph[spec.step]
        if node.foreach:
            count = record.foreach_count or 0
            if count > self.max_splits:
                raise RunFailed(
                    f"step '{node.name}' ({node.where}) fans out over {count} items, more than the cap of "
                    f"{self.max_splits}; raise it with --max-splits."
                )
            target = node.out_funcs[0]
            self.progress.expect(target, count)
            for i in range(count):
                frames = [*spec.foreach_stack, ForeachFrame(step=node.name, index=i, count=count)]
                self._enqueue(target, self._inputs(target, frames), frames, i)
            return
        for target in node.out_funcs:
            tnode = self.graph[target]
            if tnode.takes_inputs:
                self._arrive(target, spec)
            else:
                self.progress.expect(target, 1)
                frames = list(spec.foreach_stack)
                self._enqueue(target, self._inputs(target, frames), frames, None)

    def _arrive(self, join: str, spec: TaskSpec) -> None:
        node = self.graph[spec.step]
        split = self.graph[node.split_parents[-1]]
        if split.foreach:
            outer = list(spec.foreach_stack[:-1])
            expected = spec.foreach_stack[-1].count
        else:
            outer = list(spec.foreach_stack)
            expected = len(split.out_funcs)
        key = (join, tuple((f.step, f.index) for f in outer))
        pending = self._joins.setdefault(key, _Join(expected, outer))
        pending.arrived += 1
        if pending.arrived == pending.expected:
            del self._joins[key]
            self.progress.expect(join, 1)
            self._enqueue(join, self._inputs(join, outer), outer, None)


def _open_metadata(url: str) -> Any:
    from ..versioning.metadata import MetadataStore

    return MetadataStore(url)


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in text.splitlines())


def _packages() -> dict[str, str]:
    """Versions of the installed distributions, recorded with each run.

    Read from the ``*.dist-info`` folder names (``name-version.dist-info``) rather than by
    parsing every METADATA file, which costs a quarter of a second on a typical environment.
    """
    import sys

    found: dict[str, str] = {}
    for entry in sys.path:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        for name in names:
            if name.endswith(".dist-info") and "-" in name:
                dist, _, version = name[: -len(".dist-info")].partition("-")
                found.setdefault(dist.replace("_", "-").lower(), version)
    return dict(sorted(found.items()))
