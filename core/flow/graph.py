"""The static graph of a flow, read from its source with ``ast`` (Metaflow's approach).

``FlowGraph(cls)`` finds every ``@step`` method and the ``self.next(...)`` calls in it, and
:meth:`FlowGraph.validate` reports, with the file and line: no ``start`` or ``end``, a transition to
an unknown step, a step that never calls ``self.next``, an unreachable step, a join whose arity
does not match its split, a malformed ``foreach``.
"""

from __future__ import annotations

import ast
import inspect
import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from ..errors import FlowDefinitionError
from .decorators import decorations


@dataclass
class StepNode:
    name: str
    lineno: int
    file: str
    doc: str = ""
    out_funcs: list[str] = field(default_factory=list)
    in_funcs: list[str] = field(default_factory=list)
    foreach: str | None = None
    takes_inputs: bool = False
    next_calls: int = 0
    next_lineno: int | None = None
    bad_next: str | None = None
    decorations: dict[str, Any] = field(default_factory=dict)
    split_parents: list[str] = field(default_factory=list)
    """The splits (foreach or static) this step sits inside, outermost first."""
    matching_join: str | None = None

    @property
    def type(self) -> str:
        if self.name == "start" and not self.out_funcs:
            return "start"
        if self.name == "end":
            return "end"
        if self.takes_inputs:
            return "join"
        if self.foreach:
            return "foreach"
        if len(self.out_funcs) > 1:
            return "split"
        return "linear"

    @property
    def is_split(self) -> bool:
        """Fans out: a foreach, or a static branch into several steps (a join can be one too)."""
        return bool(self.foreach) or len(self.out_funcs) > 1

    @property
    def where(self) -> str:
        return f"{self.file}:{self.lineno}"


InputKind = Literal["none", "parent", "foreach-parent", "branches", "foreach-join"]


@dataclass(frozen=True)
class InputRule:
    """How a task of a step finds its inputs: the one rule that the built-in scheduler and every
    deployer (whose tasks find their inputs in the run store) follow.

    - ``none``: the ``start`` step.
    - ``parent``: the task of the one parent step with the same task id.
    - ``foreach-parent``: the first step of a foreach body: the foreach task one level out.
    - ``branches``: a static join: the last step of each branch, same task id, in ``steps`` order.
    - ``foreach-join``: the join of a foreach: every task of the body's last step, in index order;
      how many comes from the foreach task's record (``foreach_count``).

    Task ids are the foreach indices joined by ``.`` (``"0"`` outside any foreach).
    """

    kind: InputKind
    steps: tuple[str, ...] = ()
    foreach: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "steps": list(self.steps), "foreach": self.foreach}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> InputRule:
        return cls(kind=data["kind"], steps=tuple(data.get("steps") or ()), foreach=data.get("foreach"))

    def paths(
        self,
        task_id: str,
        depth: int,
        attempt_of: Callable[[str, str], int],
        count_of: Callable[[str, str], int],
    ) -> list[str]:
        """The input paths (``step/task_id/attempt``) of the task ``task_id`` of this rule's step.

        :param depth: how many foreach levels the task sits in (its foreach frames).
        :param attempt_of: ``(step, task_id) ->`` the attempt of that finished task to read.
        :param count_of: ``(foreach step, task_id) ->`` how many tasks that foreach fanned out to.
        """

        def path(step: str, tid: str) -> str:
            return f"{step}/{tid}/{attempt_of(step, tid)}"

        if self.kind == "none":
            return []
        if self.kind == "parent":
            return [path(self.steps[0], task_id)]
        if self.kind == "foreach-parent":
            outer = ".".join(task_id.split(".")[:-1]) if depth > 1 else "0"
            return [path(self.steps[0], outer)]
        if self.kind == "branches":
            return [path(step, task_id) for step in self.steps]
        assert self.foreach is not None
        count = count_of(self.foreach, task_id)
        prefix = f"{task_id}." if depth > 0 else ""
        return [path(self.steps[0], f"{prefix}{i}") for i in range(count)]


class FlowGraph:
    def __init__(self, flow_cls: type) -> None:
        self.name = flow_cls.__name__
        self.file = _source_file(flow_cls)
        self.nodes: dict[str, StepNode] = {}
        self._parse(flow_cls)
        self._link()

    def __getitem__(self, name: str) -> StepNode:
        return self.nodes[name]

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.nodes.values())

    def _parse(self, flow_cls: type) -> None:
        steps = {}
        for klass in reversed(flow_cls.__mro__):
            for name, func in vars(klass).items():
                if callable(func) and getattr(func, "is_step", False):
                    steps[name] = func
        for name, func in steps.items():
            try:
                lines, start = inspect.getsourcelines(func)
            except (OSError, TypeError) as exc:
                raise FlowDefinitionError(
                    f"cannot read the source of step {name!r} of {self.name}: {exc}"
                ) from exc
            tree = ast.parse(textwrap.dedent("".join(lines)))
            fdef = tree.body[0]
            assert isinstance(fdef, ast.FunctionDef | ast.AsyncFunctionDef)
            node = StepNode(
                name=name,
                lineno=start + _def_offset(lines),
                file=self.file,
                doc=inspect.getdoc(func) or "",
                decorations=decorations(func),
            )
            node.takes_inputs = len(fdef.args.args) >= 2
            self._read_next_calls(node, fdef, start)
            self.nodes[name] = node
        # keep source order: start first, end last, others as written
        self.nodes = dict(
            sorted(self.nodes.items(), key=lambda kv: (kv[0] != "start", kv[0] == "end", kv[1].lineno))
        )

    def _read_next_calls(self, node: StepNode, fdef: ast.AST, start: int) -> None:
        for call in ast.walk(fdef):
            if not (
                isinstance(call, ast.Call)
                and isinstance(call.func, ast.Attribute)
                and call.func.attr == "next"
                and isinstance(call.func.value, ast.Name)
                and call.func.value.id == "self"
            ):
                continue
            node.next_calls += 1
            node.next_lineno = start + call.lineno - 1
            targets = []
            for arg in call.args:
                if (
                    isinstance(arg, ast.Attribute)
                    and isinstance(arg.value, ast.Name)
                    and arg.value.id == "self"
                ):
                    targets.append(arg.attr)
                else:
                    node.bad_next = "self.next() takes steps as self.<step> arguments"
            for kw in call.keywords:
                if kw.arg == "foreach":
                    if isinstance(kw.value, ast.Constant) and isinstance(kw.value.value, str):
                        node.foreach = kw.value.value
                    else:
                        node.bad_next = (
                            'foreach= must be a string literal naming an attribute, e.g. foreach="params"'
                        )
                elif kw.arg != "condition":
                    node.bad_next = f"self.next() got an unknown keyword {kw.arg!r}"
            node.out_funcs = targets

    def _link(self) -> None:
        for node in self.nodes.values():
            for target in node.out_funcs:
                if target in self.nodes:
                    self.nodes[target].in_funcs.append(node.name)

    # -- validation ---------------------------------------------------------------------------

    def validate(self) -> None:
        errors = self.problems()
        if errors:
            raise FlowDefinitionError(
                f"flow {self.name} ({self.file}) is not valid:\n  - " + "\n  - ".join(errors)
            )

    def problems(self) -> list[str]:
        errors: list[str] = []
        if not self.nodes:
            return [
                f"{self.name} has no steps: decorate methods with @step, starting with 'start' and ending with 'end'."
            ]
        for required in ("start", "end"):
            if required not in self.nodes:
                errors.append(
                    f"{self.name} has no '{required}' step: every flow starts at a step named 'start' and finishes at 'end'."
                )
        for node in self.nodes.values():
            where = f"step '{node.name}' ({node.where})"
            if node.bad_next:
                errors.append(f"{where}: {node.bad_next}.")
            if node.name == "end":
                if node.next_calls:
                    errors.append(f"{where}: 'end' is the last step and must not call self.next().")
                continue
            if node.next_calls == 0:
                errors.append(
                    f"{where} never calls self.next(...): end the step with self.next(self.<following step>)."
                )
            elif node.next_calls > 1:
                errors.append(
                    f"{where} calls self.next() {node.next_calls} times: a step makes exactly one transition."
                )
            for target in node.out_funcs:
                if target not in self.nodes:
                    known = ", ".join(sorted(self.nodes))
                    errors.append(f"{where} goes to self.{target}, which is not a step (steps: {known}).")
            if node.foreach and len(node.out_funcs) != 1:
                errors.append(f"{where}: a foreach goes to exactly one step, got {len(node.out_funcs)}.")
            if node.name == "start" and node.takes_inputs:
                errors.append(f"{where}: 'start' cannot take inputs.")
        if errors:
            return errors
        errors += self._cycles()
        if errors:
            return errors
        errors += self._reachability()
        if errors:
            return errors
        errors += self._splits_and_joins()
        return errors

    def _cycles(self) -> list[str]:
        """Each loop in the graph once, as the steps it goes through (a flow is a DAG)."""
        found: list[list[str]] = []
        state: dict[str, int] = {}  # 1: on the current path, 2: done
        path: list[str] = []

        def visit(name: str) -> None:
            state[name] = 1
            path.append(name)
            for target in self.nodes[name].out_funcs:
                if state.get(target) == 1:
                    found.append(path[path.index(target) :] + [target])
                elif target not in state:
                    visit(target)
            path.pop()
            state[name] = 2

        for name in self.nodes:
            if name not in state:
                visit(name)
        return [
            f"steps {' -> '.join(loop)} form a cycle ({self.nodes[loop[-2]].name} at "
            f"{self.file}:{self.nodes[loop[-2]].next_lineno} goes back to '{loop[0]}'): a flow runs each "
            "step once, in order; to repeat work, use a foreach or a loop inside one step."
            for loop in found
        ]

    def _reachability(self) -> list[str]:
        seen: set[str] = set()
        todo = ["start"]
        while todo:
            name = todo.pop()
            if name in seen:
                continue
            seen.add(name)
            todo.extend(self.nodes[name].out_funcs)
        return [
            f"step '{n.name}' ({n.where}) is unreachable: no step leads to it from 'start'."
            for n in self.nodes.values()
            if n.name not in seen
        ]

    def _splits_and_joins(self) -> list[str]:
        errors: list[str] = []
        visited: dict[str, list[str]] = {}

        def walk(name: str, stack: list[str]) -> None:
            node = self.nodes[name]
            if name in visited:
                if visited[name] != stack and not node.takes_inputs:
                    errors.append(
                        f"step '{name}' ({node.where}) is reached from different branches; join them in a step that takes inputs."
                    )
                return
            visited[name] = list(stack)
            node.split_parents = list(stack)
            if node.is_split:
                for target in node.out_funcs:
                    walk_into(target, [*stack, name], name)
            else:
                for target in node.out_funcs:
                    walk_into(target, stack, name)

        def walk_into(target: str, stack: list[str], source: str) -> None:
            node = self.nodes[target]
            if node.takes_inputs:
                if not stack:
                    errors.append(
                        f"step '{target}' ({node.where}) takes inputs but joins no split: only the step after a "
                        "foreach or a branch takes 'inputs'."
                    )
                    return
                split = self.nodes[stack[-1]]
                if split.matching_join is None:
                    split.matching_join = target
                elif split.matching_join != target:
                    errors.append(
                        f"the branches of step '{split.name}' ({split.where}) end in different joins "
                        f"('{split.matching_join}' and '{target}'): all branches of a split meet in one join."
                    )
                    return
                if target in visited:
                    return
                walk(target, stack[:-1])
            else:
                if len(node.in_funcs) > 1:
                    errors.append(
                        f"step '{target}' ({node.where}) is reached from {', '.join(node.in_funcs)} but does "
                        f"not take inputs: declare it as `def {target}(self, inputs):`."
                    )
                    return
                if node.name == "end" and stack:
                    errors.append(
                        f"step 'end' ({node.where}) is reached inside the split of step '{stack[-1]}': "
                        "join the branches first, in a step that takes inputs."
                    )
                    return
                walk(target, stack)

        walk("start", [])
        for node in self.nodes.values():
            if node.is_split and not node.foreach and node.matching_join:
                join = self.nodes[node.matching_join]
                arriving = [n for n in join.in_funcs if self._branch_root(n, node.name)]
                if len(arriving) != len(node.out_funcs):
                    errors.append(
                        f"join '{join.name}' ({join.where}) receives {len(arriving)} branch(es) but step "
                        f"'{node.name}' ({node.where}) splits into {len(node.out_funcs)}: every branch must reach the join."
                    )
            if node.is_split and node.matching_join is None and not errors:
                errors.append(
                    f"the split at step '{node.name}' ({node.where}) is never joined: add a step that takes inputs."
                )
        return errors

    def _branch_root(self, name: str, split: str) -> bool:
        node = self.nodes[name]
        return bool(node.split_parents) and node.split_parents[-1] == split

    # -- inputs -------------------------------------------------------------------------------

    def input_rule(self, name: str) -> InputRule:
        """How the tasks of step ``name`` find their inputs (see :class:`InputRule`).

        Needs a validated graph (:meth:`validate` links each split to its join)."""
        node = self.nodes[name]
        if not node.in_funcs:
            return InputRule("none")
        if node.takes_inputs:
            split = next(n for n in self.nodes.values() if n.is_split and n.matching_join == name)
            if split.foreach:
                return InputRule("foreach-join", (node.in_funcs[0],), foreach=split.name)
            ordered = sorted(node.in_funcs, key=lambda p: self.nodes[p].lineno)
            return InputRule("branches", tuple(ordered))
        parent = self.nodes[node.in_funcs[0]]
        if parent.foreach:
            return InputRule("foreach-parent", (parent.name,))
        return InputRule("parent", (parent.name,))

    # -- description --------------------------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "file": self.file,
            "steps": {
                n.name: {
                    "type": n.type,
                    "next": n.out_funcs,
                    "foreach": n.foreach,
                    "join": n.takes_inputs,
                    "line": n.lineno,
                    "doc": n.doc,
                    "split_parents": n.split_parents,
                    "matching_join": n.matching_join,
                    "inputs": self.input_rule(n.name).to_dict() if self._linked() else None,
                    "decorators": {
                        k: _describe_decoration(v)
                        for k, v in n.decorations.items()
                    },
                }
                for n in self.nodes.values()
            },
        }

    def _linked(self) -> bool:
        return all(n.matching_join is not None for n in self.nodes.values() if n.is_split)

    def render(self) -> str:
        """A readable picture of the DAG for ``python flow.py show``."""
        lines = [f"{self.name}  ({self.file})", ""]
        for node in self.nodes.values():
            deco = ", ".join(f"@{k}" for k in node.decorations)
            head = f"  {node.name}" + (
                f"  [{node.type}]" if node.type not in ("linear", "start", "end") else ""
            )
            lines.append(head + (f"  {deco}" if deco else ""))
            if node.doc:
                lines.append(f"      {node.doc.splitlines()[0]}")
            if node.foreach:
                lines.append(f"      => foreach self.{node.foreach} -> {node.out_funcs[0]}")
            elif node.out_funcs:
                lines.append("      => " + ", ".join(node.out_funcs))
        return "\n".join(lines)


def _source_file(flow_cls: type) -> str:
    try:
        return inspect.getsourcefile(flow_cls) or "<unknown>"
    except TypeError:
        return "<unknown>"


def _def_offset(lines: list[str]) -> int:
    for i, line in enumerate(lines):
        if line.lstrip().startswith(("def ", "async def ")):
            return i
    return 0


def _describe_decoration(value: Any) -> Any:
    """A step decoration as JSON-friendly data (dataclasses, mappings, lists, plain values)."""
    import dataclasses

    if isinstance(value, dict | float | int | str | bool) or value is None:
        return value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, list | tuple):
        return [_describe_decoration(v) for v in value]
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if hasattr(value, "__dict__"):
        return {k: _describe_decoration(v) for k, v in vars(value).items() if not k.startswith("_")}
    return repr(value)
