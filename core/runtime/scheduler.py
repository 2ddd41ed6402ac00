"""The built-in scheduler: walks a run's DAG on the user's machine, sending each task to the
stack's compute layer and recording each result in the metadata store.

Task ids are deterministic: ``0`` outside any foreach, else the foreach indices joined by ``.``
(``3``, ``3.1``). A resumed run therefore finds the same task of its origin run by step and id.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import platform
import signal
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import LaminaError, RunFailed, RunInterrupted
from ..models import (
    ForeachFrame,
    Resources,
    RunOutcome,
    RunStatusName,
    TaskRecord,
    TaskSpec,
    TaskStatus,
    utcnow,
)
from .progress import Progress

if TYPE_CHECKING:
    from ..flow.graph import FlowGraph
    from ..flow.spec import FlowSpec
    from ..stack import Stack

DEFAULT_MAX_SPLITS = 100_000
CANCEL_WAIT = 15.0
"""Seconds an interrupted run waits for its cancelled tasks to end (they get SIGKILL after 5)."""


class _Abort(Exception):
    """A second SIGINT/SIGTERM: stop waiting for the cancelled tasks."""


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
        self._stop_signal = 0

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

        started_at = utcnow()
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
                "started_at": started_at.isoformat(),
                "host": socket.gethostname(),
                "pid": os.getpid(),
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
            self.writer.call("create_run", **{**manifest, "started_at": started_at})
            # the run is in the metadata store before its id is shown: `lamina runs` finds it
            # from that moment, even if this process is killed the next instant
            self.writer.flush()
        except BaseException:
            self.stack.compute.shutdown()
            raise
        self._heartbeat = _Heartbeat(self.writer, self.run_id)
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
        if not found and self.runs.load_manifest(self.flow_name, self.origin_run_id or "") is not None:
            return  # it stopped before any task finished: there is nothing to reuse, run them all
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
        """Run every task; on SIGINT or SIGTERM stop scheduling, cancel the running tasks, wait
        for them (a task that finishes meanwhile is kept), record the run ``interrupted`` and
        raise :class:`RunInterrupted`. A second signal stops waiting at once."""
        compute = self.stack.compute
        status: RunStatusName = "failed"
        try:
            with self._signals():
                try:
                    self._walk_tasks()
                    if self._stop_signal:
                        self._cancel_running()
                except _Abort:
                    pass
                status = (
                    "interrupted" if self._stop_signal else "succeeded" if self.failure is None else "failed"
                )
        finally:
            self._heartbeat.stop()
            try:
                compute.shutdown()
            finally:
                self._finish_run(status)
        from ..discovery import get_registry

        ok = status == "succeeded"
        get_registry().hook().lamina_run_finished(run_id=self.run_id, flow_name=self.flow_name, ok=ok)
        if status == "interrupted":
            name = signal.Signals(self._stop_signal).name
            kept = sum(1 for r in self.records.values() if r.ok)
            raise RunInterrupted(  # the command line prints it, --quiet or not
                f"run {self.run_id} interrupted ({name}); {kept} finished task(s) are kept. "
                f"Resume with:\n    {self.resume_hint()}",
                self._stop_signal,
            )
        if ok:
            self.progress.say(
                f"{self.progress._mark('ok')} run {self.run_id} finished. Inspect it with: lamina show {self.flow_name}/{self.run_id}"
            )
            return RunOutcome(run_id=self.run_id, ok=True)
        assert self.failure is not None
        message = self._failure_message(self.failure)
        return RunOutcome(run_id=self.run_id, ok=False, failed_step=self.failure.step, message=message)

    def _walk_tasks(self) -> None:
        compute = self.stack.compute
        self._enqueue("start", [], [], None)
        self.progress.expect("start", 1)
        in_flight = self.max_workers + compute.queue_depth()
        while (self._ready or self._running) and not self._stop_signal:
            while self._ready and len(self._running) < in_flight and self.failure is None:
                self._submit(self._ready.popleft())
            if self.failure is not None:
                self._ready.clear()
            if not self._running:
                continue
            for status in compute.wait(list(self._running), timeout=1.0):
                self._finished(status)
            self.progress.tick()

    def _cancel_running(self) -> None:
        """Cancel every running task and wait until each has ended, so that none writes into the
        run after it is marked interrupted; one that finished meanwhile is recorded as usual."""
        compute = self.stack.compute
        self._ready.clear()
        if self._running:
            self.progress.say(f"stopping {len(self._running)} running task(s)…")
        for handle in list(self._running):
            compute.cancel(handle)
        deadline = time.monotonic() + CANCEL_WAIT
        while self._running and time.monotonic() < deadline:
            for status in compute.wait(list(self._running), timeout=1.0):
                self._finished(status)

    @contextlib.contextmanager
    def _signals(self) -> Iterator[None]:
        """SIGINT and SIGTERM ask the walk to stop (checked at least once a second); a second
        one aborts the wait for running tasks. Only the main thread can receive signals."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def on_signal(signum: int, _frame: object) -> None:
            if self._stop_signal:
                raise _Abort()
            self._stop_signal = signum
            self.progress.say(
                f"{signal.Signals(signum).name}: stopping the run (again to stop without waiting for its tasks)"
            )

        previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _finish_run(self, status: RunStatusName) -> None:
        """Record how the run ended; the writer is flushed first, so every task is in."""
        try:
            self.writer.call("finish_run", run_id=self.run_id, status=status)
            self.writer.close()
        except Exception as exc:  # the blob store keeps every result: `lamina sync` re-indexes them
            self.progress.say(
                f"could not record the end of run {self.run_id} in the metadata store ({exc}); "
                f"its results are stored: `lamina sync {self.flow_name}/{self.run_id}` indexes them."
            )

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
        if self._stop_signal and not record.ok:
            return  # cancelled: its row stays running until finish_run marks it interrupted
        if not record.ok and spec.attempt + 1 < spec.max_attempts:
            self.writer.finished(record, key)
            retry = self.decorations[spec.step].get("retry")
            wait = 60 * retry.minutes_between_retries if retry else 0
            self.progress.say(
                f"{self.progress._mark('fail')} {spec.step}/{spec.task_id} attempt {spec.attempt + 1} failed ({record.error}); "
                f"retrying{f' in {wait:g}s' if wait else ''} (attempt {spec.attempt + 2} of {spec.max_attempts})"
            )
            self.progress.finished(spec.step, ok=False)
            until = time.monotonic() + wait
            while time.monotonic() < until and not self._stop_signal:  # a signal ends the wait
                time.sleep(min(0.2, until - time.monotonic()))
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


class _Heartbeat:
    """Tells the metadata store every few seconds that the run's driver is alive, so a run
    whose driver died is shown ``killed`` instead of ``running`` for ever."""

    def __init__(self, writer: Any, run_id: str) -> None:
        from ..versioning.metadata import HEARTBEAT_INTERVAL

        self._stopped = threading.Event()
        self._writer, self._run_id, self._interval = writer, run_id, HEARTBEAT_INTERVAL
        self._thread = threading.Thread(target=self._loop, name="lamina-heartbeat", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stopped.wait(self._interval):
            self._writer.beat(self._run_id)

    def stop(self) -> None:
        self._stopped.set()


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
