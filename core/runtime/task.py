"""The one task entry point: ``python -m lamina task``, wherever a task runs.

A task fetches its inputs from the versioning layer, runs one step of the flow, and writes back
its artifacts, logs and finally its completion record, atomically. It needs nothing but the blob
store: whoever scheduled it records the result in the metadata store. The local worker, a Dask
worker and every cloud job run exactly :func:`run_task`; a warm worker calls it in a forked child.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import signal
import sys
import time
import traceback
import types
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import FlowDefinitionError, LaminaError
from ..models import ArtifactRef, TaskRecord, TaskSpec, utcnow

if TYPE_CHECKING:
    from ..flow.spec import FlowSpec
    from ..stack import Stack
    from ..versioning.artifacts import ArtifactStore

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_INFRA = 2

_LOADED_FLOWS: dict[str, type] = {}
_STACKS: dict[str, Stack] = {}


# -- loading the flow --------------------------------------------------------------------------


def load_flow_class(flow_file: str, flow_name: str | None = None, *, as_main: bool = True) -> type[FlowSpec]:
    """Execute a flow file without starting its command line and return its ``FlowSpec`` subclass.

    In a task it runs as ``__main__`` (``as_main``), so pickled classes defined in the flow file
    resolve exactly as in the user's own process; the driver loads it under a private name.
    """
    from ..flow.spec import FlowSpec

    path = str(Path(flow_file).resolve())
    cache_key = f"{path}|{as_main}"
    if as_main and cache_key in _LOADED_FLOWS:  # a driver reloads: the file may have been edited
        return _LOADED_FLOWS[cache_key]
    if not os.path.isfile(path):
        raise FlowDefinitionError(f"{flow_file}: no such flow file.")
    main_mod = sys.modules.get("__main__")
    module_name = "__main__" if as_main else f"lamina_flow_{abs(hash(path)):x}"
    if as_main and main_mod is not None and os.path.abspath(getattr(main_mod, "__file__", "") or "") == path:
        module = main_mod
    else:
        module = types.ModuleType(module_name)
        module.__file__ = path
        module.__dict__["__builtins__"] = __builtins__
        sys.modules[module_name] = module
        code_dir = os.path.dirname(path)
        if code_dir not in sys.path:
            sys.path.insert(0, code_dir)
        source = Path(path).read_text()
        os.environ["_LAMINA_LOADING_FLOW"] = "1"
        try:
            exec(compile(source, path, "exec"), module.__dict__)
        finally:
            os.environ.pop("_LAMINA_LOADING_FLOW", None)
    candidates = [
        obj
        for obj in vars(module).values()
        if isinstance(obj, type)
        and issubclass(obj, FlowSpec)
        and obj is not FlowSpec
        and obj.__module__ == module_name
    ]
    if flow_name:
        candidates = [c for c in candidates if c.__name__ == flow_name] or candidates
    if len(candidates) != 1:
        names = ", ".join(c.__name__ for c in candidates) or "none"
        raise FlowDefinitionError(
            f"{flow_file}: expected one FlowSpec subclass{f' named {flow_name}' if flow_name else ''}, found {names}."
        )
    _LOADED_FLOWS[cache_key] = candidates[0]
    return candidates[0]


def task_stack(spec: TaskSpec) -> Stack:
    """The run's stack, built once per process (a warm worker reuses it across tasks)."""
    from ..stack import stack_from_snapshot

    key = json.dumps(spec.stack, sort_keys=True, default=str)
    stack = _STACKS.get(key)
    if stack is None:
        stack = _STACKS[key] = stack_from_snapshot(spec.stack, role="task")
    return stack


def resolve_flow_file(spec: TaskSpec, stack: Stack) -> str:
    """The flow file to load: the local path, or the code package restored from the blob store."""
    if os.path.isabs(spec.flow_file) and os.path.exists(spec.flow_file):
        return spec.flow_file
    if not spec.code_key:
        raise LaminaError(
            f"task {spec.pathspec}: flow file {spec.flow_file!r} is not here and the task carries no code package."
        )
    from ..versioning.artifacts import ArtifactStore
    from ..versioning.codepkg import code_digest, restore_code

    digest = code_digest(spec.code_key)
    dest = Path(os.environ.get("LAMINA_CODE_DIR", "/tmp/lamina-code")) / digest
    if not (dest / spec.flow_file).exists():
        tmp = dest.with_name(dest.name + f".{os.getpid()}.tmp")
        restore_code(ArtifactStore(stack.versioning), spec.code_key, tmp)
        try:
            os.replace(tmp, dest)
        except OSError:  # another task restored it first
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
    return str(dest / spec.flow_file)


# -- inputs ------------------------------------------------------------------------------------


class InputNamespace:
    """A parent task's artifacts, by reference; values load on first touch."""

    def __init__(
        self, store: ArtifactStore, refs: dict[str, ArtifactRef], label: str, where: str = ""
    ) -> None:
        self.store = store
        self.refs = refs
        self.label = label
        self.where = where or f"task {label}"
        """Names the parent task in errors: ``task Flow/run/step/id``."""

    def load(self, name: str) -> Any:
        return self.store.load(self.refs[name], what=f"artifact {name!r} of {self.where}")


class InputView:
    """One input of a join: ``inp.x`` loads artifact ``x`` of that parent."""

    def __init__(self, namespace: InputNamespace, step: str) -> None:
        self._namespace = namespace
        self._step = step
        self._cache: dict[str, Any] = {}

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        if name not in self._cache:
            ref = self._namespace.refs.get(name)
            if ref is None:
                raise AttributeError(
                    f"input from step '{self._step}' has no artifact {name!r} "
                    f"(it has: {', '.join(sorted(self._namespace.refs)) or 'none'})"
                )
            self._cache[name] = self._namespace.load(name)
        return self._cache[name]

    def __repr__(self) -> str:
        return f"<input {self._namespace.label}>"


class Inputs(list):  # type: ignore[type-arg]
    """The ``inputs`` of a join: a list, and ``inputs.<step>`` for static branches."""

    def __getattr__(self, name: str) -> InputView:
        for view in self:
            if view._step == name:
                return view
        raise AttributeError(
            f"no input from a step named {name!r} (inputs: {', '.join(v._step for v in self)})"
        )


def _parent_record(store: ArtifactStore, spec: TaskSpec, path: str) -> TaskRecord:
    from ..errors import StoreError
    from ..versioning.integrity import DamagedBlob
    from ..versioning.runstore import RunStore

    try:
        return RunStore(store.blobs).input_record(spec.flow_name, spec.run_id, path)
    except DamagedBlob:
        raise  # names the record and how to recover
    except StoreError as exc:
        raise LaminaError(f"task {spec.pathspec}: {exc}") from None


def _foreach_item(items: Any, index: int) -> Any:
    """Item ``index`` of a foreach: a mapping gives its keys, in order, as iterating it does in
    Python (the mapping itself stays the artifact, so a step can still look values up)."""
    if isinstance(items, Mapping):
        return next(itertools.islice(iter(items), index, None))
    return items[index]


def _where(record: TaskRecord) -> str:
    return f"task {record.flow_name}/{record.run_id}/{record.step}/{record.task_id}"


# -- running -----------------------------------------------------------------------------------


class StepTimeout(Exception):
    """A step ran longer than its ``@timeout``."""


def run_task(spec: TaskSpec, flow_cls: type[FlowSpec] | None = None, echo: bool = True) -> int:
    """Run one task to completion; return the process exit code. Never raises for a step failure:
    the failure is stored in the task's record, which the scheduler reads."""
    if spec.environment is not None:
        from .environments import in_environment, run_in_environment

        if not in_environment(spec):  # the step has its own packages: run there
            return run_in_environment(spec, echo)
    from ..flow.current import current
    from ..versioning.artifacts import ArtifactStore
    from ..versioning.runstore import RunStore
    from .capture import Capture
    from .supervise import store_logs, supervised

    started = utcnow()
    stack = task_stack(spec)
    store = ArtifactStore(stack.versioning, cache_dir=stack.project_dir / ".lamina" / "cache")
    runs = RunStore(stack.versioning)
    record = TaskRecord.begin(spec, started_at=started)
    echo = echo and not os.environ.get("LAMINA_QUIET")
    prefix = f"[{spec.step}/{spec.task_id}{f' attempt {spec.attempt}' if spec.attempt else ''}] "
    outside = supervised()  # the parent process captures fds 1 and 2 and stores the logs
    capture = Capture(prefix, echo=echo)
    reads: list[Any] = []
    try:
        with contextlib.nullcontext() if outside else capture:
            try:
                if flow_cls is None:
                    flow_cls = load_flow_class(resolve_flow_file(spec, stack), spec.flow_name)
                flow = _prepare(flow_cls, spec, store)
                deco = step_decorations(flow_cls, spec)
                if "data" in stack._layers:
                    stack.data.reads.clear()
                current._bind(
                    stack,
                    flow_name=spec.flow_name,
                    run_id=spec.run_id,
                    step_name=spec.step,
                    task_id=spec.task_id,
                    attempt=spec.attempt,
                    origin_run_id=spec.origin_run_id,
                    user=spec.user,
                    tags=spec.tags,
                    stack_name=stack.name,
                    trigger=lambda: _trigger_of(runs, spec),
                    data=True,
                    log_metric=True,
                    card="card" in deco,
                )
                _execute(flow, flow_cls, spec)
                _finish(flow, flow_cls, spec, store, record)
                record.ok = True
                if "card" in deco:
                    record.card_key = _store_card(flow, spec, stack, record, deco["card"])
            except BaseException as exc:  # the record carries the failure to the scheduler
                if isinstance(exc, KeyboardInterrupt):
                    raise
                record.ok = False
                record.error = f"{type(exc).__name__}: {exc}"
                record.traceback = _user_traceback(exc)
            finally:
                record.metrics = list(current._metrics)
                if "data" in stack._layers:
                    reads = list(stack.data.reads)
                current._unbind()
        record.data_reads = reads
        extra = b""
        if record.traceback:  # stored, and shown once by the scheduler rather than echoed here
            from .capture import redact, secret_values

            record.traceback = redact(record.traceback.encode(), secret_values()).decode()
            record.error = redact((record.error or "").encode(), secret_values()).decode()
            extra = record.traceback.encode()
        if outside:
            keys = store_logs(extra)
            record.stdout_key, record.stderr_key = keys["stdout"], keys["stderr"]
        else:
            ids = (spec.flow_name, spec.run_id, spec.step, spec.task_id, spec.attempt)
            for stream, data in (("stdout", capture.stdout), ("stderr", capture.stderr + extra)):
                if not data:
                    continue  # nothing printed: nothing to store
                setattr(record, f"{stream}_key", runs.save_log(*ids, stream, data))  # type: ignore[arg-type]
        record.finished_at = utcnow()
        runs.save_record(record)
    except Exception:
        traceback.print_exc()
        return EXIT_INFRA
    return EXIT_OK if record.ok else EXIT_FAILED


def _trigger_of(runs: Any, spec: TaskSpec) -> Any:
    """``current.trigger``: what the run's manifest says started it (deployed runs only)."""
    from ..flow.current import Trigger

    manifest = runs.load_manifest(spec.flow_name, spec.run_id) or {}
    return Trigger.from_dict(manifest.get("trigger"))


def _prepare(flow_cls: type[FlowSpec], spec: TaskSpec, store: ArtifactStore) -> FlowSpec:
    flow = flow_cls.__new__(flow_cls)
    flow._lamina_reset()
    d = flow.__dict__
    d["_lamina_store"] = store
    from ..flow.includefile import load_included

    params = flow_cls.parameters()
    for attr, param in params.items():
        if param.name in spec.parameters:
            d[attr] = load_included(param, spec.parameters[param.name], store)
            d["_lamina_params"].add(attr)
    graph = flow_cls.graph()
    node = graph[spec.step]
    if node.takes_inputs:
        views = Inputs()
        for path in spec.input_paths:
            parent = _parent_record(store, spec, path)
            ns = InputNamespace(store, parent.artifacts, f"{parent.step}/{parent.task_id}", _where(parent))
            view = InputView(ns, parent.step)
            views.append(view)
        d["_lamina_join_inputs"] = views
    elif spec.input_paths:
        parent = _parent_record(store, spec, spec.input_paths[0])
        d["_lamina_inputs"] = InputNamespace(
            store, dict(parent.artifacts), f"{parent.step}/{parent.task_id}", _where(parent)
        )
        split = graph[parent.step]
        if split.foreach and spec.split_index is not None:
            items = getattr(flow, split.foreach)
            d["_lamina_loaded"].pop(split.foreach, None)  # the list itself passes on by reference
            d["_lamina_foreach"] = (_foreach_item(items, spec.split_index), spec.split_index)
    return flow


def step_decorations(flow_cls: type[FlowSpec], spec: TaskSpec) -> dict[str, Any]:
    """The step's decorators, with the run's ``--with`` ones added."""
    deco = flow_cls.graph()[spec.step].decorations
    if not spec.with_decorators:
        return deco
    from ..flow.platform import apply_with, with_decorations

    return apply_with(deco, with_decorations(spec.step, spec.with_decorators))


_SCALAR_TYPES = ("builtins.int", "builtins.float", "builtins.str", "builtins.bool", "builtins.NoneType")


def _store_card(
    flow: FlowSpec, spec: TaskSpec, stack: Stack, record: TaskRecord, options: dict[str, Any]
) -> str:
    """Render the step's card and store it beside the task's logs; return its key."""
    from ..cards import render_card
    from ..flow.current import current
    from ..versioning.runstore import RunStore

    artifacts = None
    if options.get("type", "default") == "default":
        artifacts = {}
        for name, ref in record.artifacts.items():
            small = ref.type in _SCALAR_TYPES and ref.size <= 1024
            artifacts[name] = (ref.type, ref.size, getattr(flow, name) if small else None)
    components = current._card.components if current._card is not None else []
    document = render_card(
        pathspec=f"{spec.flow_name}/{spec.pathspec}",
        components=components,
        artifacts=artifacts,
        stack=stack.name,
        finished=utcnow().strftime("%Y-%m-%d %H:%M:%S UTC"),
    )
    return RunStore(stack.versioning).save_card(
        spec.flow_name, spec.run_id, spec.step, spec.task_id, spec.attempt, document
    )


def _execute(flow: FlowSpec, flow_cls: type[FlowSpec], spec: TaskSpec) -> None:
    node = flow_cls.graph()[spec.step]
    func = getattr(flow, spec.step)
    deco = step_decorations(flow_cls, spec)
    limit = spec.timeout or deco.get("timeout")
    previous = None
    fired: list[str] = []
    saved_env = _set_environment(deco.get("environment") or {})
    if limit:

        def on_alarm(signum: int, frame: object) -> None:
            fired.append(f"step '{spec.step}' ran longer than its @timeout of {limit:g} s")
            raise StepTimeout(fired[0])

        previous = signal.signal(signal.SIGALRM, on_alarm)
        signal.setitimer(signal.ITIMER_REAL, float(limit))
    try:
        if node.takes_inputs:
            func(flow.__dict__["_lamina_join_inputs"])
        else:
            func()
        if fired:  # the step caught the timeout and went on: it still ran too long
            raise StepTimeout(f"{fired[0]} (the step caught the timeout and carried on)")
    except Exception as exc:
        catch = deco.get("catch")
        if catch is None or spec.attempt + 1 < spec.max_attempts:
            raise
        if catch.print_exception:
            print(_user_traceback(exc), file=sys.stderr, end="")
        if catch.var:
            setattr(flow, catch.var, f"{type(exc).__name__}: {exc}")
        if flow.__dict__.get("_lamina_next") is None and node.out_funcs and not node.foreach:
            flow.__dict__["_lamina_next"] = (list(node.out_funcs), None)
    finally:
        if limit:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
        _set_environment(saved_env)


def _set_environment(values: dict[str, str | None]) -> dict[str, str | None]:
    """Apply ``@environment`` variables (``None`` unsets); return what to restore afterwards, for
    a compute that runs several tasks in one process."""
    before = {name: os.environ.get(name) for name in values}
    for name, value in values.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    return before


def _finish(
    flow: FlowSpec, flow_cls: type[FlowSpec], spec: TaskSpec, store: ArtifactStore, record: TaskRecord
) -> None:
    node = flow_cls.graph()[spec.step]
    d = flow.__dict__
    transition = d.get("_lamina_next")
    if node.name != "end":
        if transition is None:
            raise FlowDefinitionError(
                f"step '{node.name}' ({node.where}) finished without calling self.next(...)."
            )
        names, foreach = transition
        if names != node.out_funcs or foreach != node.foreach:
            said = ", ".join(f"self.{n}" for n in names) + (f", foreach={foreach!r}" if foreach else "")
            raise FlowDefinitionError(
                f"step '{node.name}' ({node.where}) called self.next({said}) but its source says "
                f"self.next({', '.join('self.' + n for n in node.out_funcs)}{f', foreach={node.foreach!r}' if node.foreach else ''}): "
                "a step's transition cannot change at run time."
            )
    if node.foreach:
        try:
            items = getattr(flow, node.foreach)
        except AttributeError:
            raise FlowDefinitionError(
                f"step '{node.name}' ({node.where}): foreach={node.foreach!r} but self.{node.foreach} was never assigned."
            ) from None
        if isinstance(items, Mapping):
            pass  # fans out over its keys (see _foreach_item)
        elif not hasattr(items, "__getitem__") or not hasattr(items, "__len__"):
            try:
                items = list(items)
            except TypeError:
                raise FlowDefinitionError(
                    f"step '{node.name}' ({node.where}): foreach={node.foreach!r} needs something iterable, "
                    f"but self.{node.foreach} is a {type(items).__name__}."
                ) from None
            d[node.foreach] = items
        record.foreach_count = len(items)
        if record.foreach_count == 0:
            raise FlowDefinitionError(
                f"step '{node.name}' ({node.where}): foreach over self.{node.foreach}, which is empty."
            )
    refs: dict[str, ArtifactRef] = {}
    inputs = d.get("_lamina_inputs")
    if inputs is not None:
        refs.update(inputs.refs)
    refs.update(d.get("_lamina_merged") or {})
    params = d["_lamina_params"]
    to_save = {k: v for k, v in d.items() if not k.startswith("_") and k not in params}
    for name, value in d["_lamina_loaded"].items():
        if name not in to_save and not _immutable(value) and not _unchanged_mapping(value):
            to_save[name] = value  # may have been changed in place; dedup makes an unchanged one free
    for name, value in to_save.items():
        try:
            refs[name] = store.save(value)
        except Exception as exc:
            raise LaminaError(
                f"step '{node.name}': artifact {name!r} ({type(value).__name__}) could not be stored: {exc}"
            ) from exc
    record.artifacts = refs


def _immutable(value: Any) -> bool:
    if isinstance(value, str | bytes | int | float | bool | tuple | frozenset | type(None)):
        return True
    module = type(value).__module__
    if module.startswith("pyarrow"):
        return True
    if module == "numpy" and hasattr(value, "flags"):
        return not value.flags.writeable
    return False


def _unchanged_mapping(value: Any) -> bool:
    """A NumPy array mapped copy-on-write from the store whose bytes still equal the stored file.

    Checked with ``memcmp`` against read-only windows of the same file, which is several times
    cheaper than hashing a large array again to find it unchanged. Windows, not one mapping of
    the whole file: the same page-cache pages count once per mapping in a process's resident size.
    """
    import sys as _sys

    np = _sys.modules.get("numpy")
    if np is None or not isinstance(value, np.memmap) or value.filename is None:
        return False
    if not value.flags.c_contiguous or value.base is None:
        return False
    import ctypes
    import mmap

    memcmp = ctypes.CDLL(None).memcmp
    memcmp.restype = ctypes.c_int
    memcmp.argtypes = (ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t)
    window = 16 << 20
    try:
        with open(value.filename, "rb") as fh:
            done = 0
            while done < value.nbytes:
                length = min(window, value.nbytes - done)
                position = value.offset + done
                start = position - position % mmap.ALLOCATIONGRANULARITY
                skew = position - start
                with mmap.mmap(fh.fileno(), skew + length, access=mmap.ACCESS_READ, offset=start) as view:
                    stored = np.frombuffer(view, dtype=np.uint8, count=length, offset=skew)
                    same = memcmp(value.ctypes.data + done, stored.ctypes.data, length) == 0
                    del stored
                if not same:
                    return False
                done += length
    except (OSError, ValueError):
        return False
    return True


def _user_traceback(exc: BaseException) -> str:
    """The traceback without Lamina's own frames above the user's step."""
    tb = exc.__traceback__
    frames = traceback.extract_tb(tb)
    internal = os.path.dirname(os.path.dirname(__file__))
    keep_from = 0
    for i, frame in enumerate(frames):
        if not frame.filename.startswith(internal):
            keep_from = i
            break
    if isinstance(exc, LaminaError):
        # raised on purpose (a damaged blob, a bad foreach...): its message says what and where,
        # so Lamina's frames below the user's last one are noise
        user = [i for i, f in enumerate(frames) if not f.filename.startswith(internal)]
        if user:
            shown = traceback.format_list(frames[keep_from : user[-1] + 1])
            return "Traceback (most recent call last):\n" + "".join(
                shown + traceback.format_exception_only(type(exc), exc)
            )
    while tb is not None and keep_from > 0:
        tb = tb.tb_next
        keep_from -= 1
    return "".join(traceback.format_exception(type(exc), exc, tb))


def run_supervised(spec: TaskSpec, echo: bool = True) -> int:
    """Run a task in a child process that this one supervises, where ``fork`` exists: what it
    prints is stored even if it dies without warning, and an overrun ``@timeout`` is enforced by
    killing it (``LAMINA_TASK_IN_PROCESS=1`` runs it in this process instead)."""
    if not hasattr(os, "fork") or os.environ.get("LAMINA_TASK_IN_PROCESS"):
        return run_task(spec, echo=echo)
    from .supervise import supervise

    echo = echo and not os.environ.get("LAMINA_QUIET")
    return supervise(spec, echo, lambda: run_task(spec, echo=echo))


def run_task_command(argv: list[str]) -> int:
    """``python -m lamina task ARGV``, in this process; returns the task's exit code."""
    return main(argv)


def task_command(python: str = "python") -> list[str]:
    """The command that runs one task; append ``--spec-file PATH`` (or ``--spec-b64 ...``)."""
    return [python, "-m", "lamina", "task"]


def main(argv: list[str]) -> int:
    """``python -m lamina task --spec JSON | --spec-file F | --spec-b64 B64 | --spec-env VAR``,
    or ``python -m lamina task deployed ...`` (:mod:`lamina.runtime.deployed`)."""
    import argparse
    import base64

    if argv and argv[0] == "deployed":  # a task of a deployed flow builds its own spec
        from .deployed import main as deployed_main

        return deployed_main(argv[1:])
    parser = argparse.ArgumentParser(prog="python -m lamina task", description="Run one task of a flow.")
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--spec", help="the TaskSpec as JSON")
    group.add_argument("--spec-file", help="a file holding the TaskSpec as JSON")
    group.add_argument(
        "--spec-b64",
        nargs="+",
        help="the TaskSpec as base64-encoded JSON, whole or in pieces (platforms cap an argument's length)",
    )
    group.add_argument("--spec-env", help="an environment variable holding the TaskSpec (base64 JSON)")
    parser.add_argument("--quiet", action="store_true", help="do not echo the step's output")
    args = parser.parse_args(argv)
    if args.spec:
        raw = args.spec
    elif args.spec_file:
        raw = Path(args.spec_file).read_text()
    elif args.spec_b64:
        raw = base64.b64decode("".join(args.spec_b64)).decode()
    else:
        raw = base64.b64decode(os.environ[args.spec_env]).decode()
    spec = TaskSpec.model_validate_json(raw)
    start = time.perf_counter()
    code = run_supervised(spec, echo=not args.quiet)
    if os.environ.get("LAMINA_TRACE"):
        print(
            f"[lamina] task {spec.pathspec} exit {code} in {time.perf_counter() - start:.2f}s",
            file=sys.stderr,
        )
    return code
