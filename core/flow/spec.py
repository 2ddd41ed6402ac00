"""The flow DSL: ``FlowSpec``, ``@step`` and ``Parameter``.

```python
class TrainFlow(FlowSpec):
    alpha = Parameter("alpha", default=0.5, help="regularisation")

    @step
    def start(self):
        self.grid = [0.1, 1.0]
        self.next(self.train, foreach="grid")
    ...

if __name__ == "__main__":
    TrainFlow()
```

Everything a step assigns to ``self`` is an artifact, stored and versioned without asking.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

from ..errors import FlowDefinitionError, ParameterError

if TYPE_CHECKING:
    from ..models import ArtifactRef
    from .graph import FlowGraph

F = TypeVar("F", bound=Callable[..., Any])
_MISSING: Any = object()


def step(func: F) -> F:
    """Mark a method as a step of the flow."""
    func.is_step = True  # type: ignore[attr-defined]
    return func


_BOOL = {
    "true": True,
    "1": True,
    "yes": True,
    "on": True,
    "false": False,
    "0": False,
    "no": False,
    "off": False,
}


class JSONType:
    """``Parameter(type=JSONType)`` takes a JSON document on the command line."""


class Parameter:
    """A run parameter, set on the command line as ``--name value``."""

    def __init__(
        self,
        name: str,
        default: Any = _MISSING,
        type: type | None = None,  # noqa: A002 - Metaflow's spelling, known to users
        help: str = "",  # noqa: A002
        required: bool = False,
    ) -> None:
        if not name.replace("_", "").replace("-", "").isalnum():
            raise FlowDefinitionError(f"Parameter name {name!r} must be letters, digits, '_' or '-'.")
        self.name = name
        self.default = default
        self.help = help
        self.required = required or default is _MISSING
        if type is None:
            type = (
                JSONType
                if isinstance(default, dict | list)
                else (default.__class__ if default not in (_MISSING, None) else str)
            )
        if type not in (str, int, float, bool, JSONType):
            raise FlowDefinitionError(
                f"Parameter {name!r}: type must be str, int, float, bool or JSONType, got {type!r}."
            )
        self.type = type
        if default is not _MISSING and default is not None:
            self.default = self.check(default)

    @property
    def has_default(self) -> bool:
        return self.default is not _MISSING

    @property
    def type_name(self) -> str:
        return "json" if self.type is JSONType else self.type.__name__

    def convert(self, raw: str) -> Any:
        """Convert a command-line string."""
        try:
            if self.type is bool:
                value = _BOOL.get(raw.strip().lower())
                if value is None:
                    raise ValueError(raw)
                return value
            if self.type is JSONType:
                return json.loads(raw)
            return self.type(raw)  # type: ignore[call-arg]
        except (ValueError, TypeError) as exc:
            raise ParameterError(
                f"parameter --{self.name}: {raw!r} is not a valid {self.type_name} ({exc})."
            ) from None

    def check(self, value: Any) -> Any:
        """Validate a Python value (a default, or one given through the Python API)."""
        if isinstance(value, str) and self.type is not str:
            return self.convert(value)
        if self.type is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if self.type is JSONType:
            try:
                json.dumps(value)
            except TypeError as exc:
                raise ParameterError(
                    f"parameter {self.name!r}: value is not JSON-serialisable ({exc})."
                ) from None
            return value
        if not isinstance(value, self.type) or (self.type is int and isinstance(value, bool)):
            raise ParameterError(
                f"parameter {self.name!r}: expected {self.type_name}, got {type(value).__name__} {value!r}."
            )
        return value

    def __repr__(self) -> str:
        return f"Parameter({self.name!r}, type={self.type_name}, default={self.default!r})"


class FlowSpec:
    """Base class of every flow. Instantiated with no arguments it runs the command line."""

    _lamina_graph: FlowGraph | None = None
    _lamina_clashes: tuple[str, ...] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # A step or parameter named like one of FlowSpec's own attributes replaces it, and
        # Lamina then calls the step where it meant `graph()` or `next()`. The class statement
        # cannot raise cleanly (it runs at import, before the command line can report errors),
        # so the clash is noted here and reported by check_flow_names().
        super().__init_subclass__(**kwargs)
        clashes = []
        for name in reserved_names():
            value = inspect.getattr_static(cls, name)
            if getattr(value, "is_step", False) or isinstance(value, Parameter):
                clashes.append(name)
        cls._lamina_clashes = tuple(clashes)

    def __init__(self, use_cli: bool = True) -> None:
        self._lamina_reset()
        if use_cli:
            from ..cli.flow_cli import flow_main

            flow_main(type(self))

    def _lamina_reset(self) -> None:
        d = self.__dict__
        d["_lamina_inputs"] = None  # a namespace of the parent's artifacts (lazy)
        d["_lamina_loaded"] = {}
        d["_lamina_params"] = set()
        d["_lamina_next"] = None
        d["_lamina_foreach"] = None  # (value, index) inside a foreach

    # -- graph and parameters -----------------------------------------------------------------

    @classmethod
    def graph(cls) -> FlowGraph:
        if cls.__dict__.get("_lamina_graph") is None:
            from .graph import FlowGraph

            cls._lamina_graph = FlowGraph(cls)
        return cls._lamina_graph  # type: ignore[return-value]

    @classmethod
    def parameters(cls) -> dict[str, Parameter]:
        """``{attribute name: Parameter}``."""
        found: dict[str, Parameter] = {}
        for klass in reversed(cls.__mro__):
            for attr, value in vars(klass).items():
                if isinstance(value, Parameter):
                    found[attr] = value
        return found

    @classmethod
    def resolve_parameters(cls, given: dict[str, Any]) -> dict[str, Any]:
        """Apply defaults and check types; keys may be parameter names or attribute names."""
        params = cls.parameters()
        by_name = {p.name: attr for attr, p in params.items()}
        values: dict[str, Any] = {}
        for key, value in given.items():
            attr = by_name.get(key, key if key in params else None)
            if attr is None:
                known = ", ".join(f"--{p.name}" for p in params.values()) or "none"
                raise ParameterError(f"{cls.__name__} has no parameter {key!r} (parameters: {known}).")
            values[params[attr].name] = params[attr].check(value)
        missing = [p.name for p in params.values() if p.name not in values and not p.has_default]
        if missing:
            raise ParameterError(
                f"{cls.__name__}: required parameter(s) missing: "
                + ", ".join(f"--{m}" for m in missing)
                + ". Give them on the command line, e.g. `python flow.py run "
                + " ".join(f"--{m} VALUE" for m in missing)
                + "`."
            )
        for p in params.values():
            values.setdefault(p.name, p.default)
        return values

    # -- used inside steps --------------------------------------------------------------------

    def next(
        self, *steps: Callable[..., Any], foreach: str | None = None, condition: str | None = None
    ) -> None:
        """Say which step(s) run after this one; ``foreach="attr"`` fans out over ``self.attr``."""
        if self.__dict__.get("_lamina_next") is not None:
            raise FlowDefinitionError(
                "self.next() was called twice in one step; a step makes exactly one transition."
            )
        names = []
        for target in steps:
            name = getattr(target, "__name__", None)
            if name is None or not getattr(target, "is_step", False):
                raise FlowDefinitionError(f"self.next() takes steps (self.<step>), got {target!r}.")
            names.append(name)
        self.__dict__["_lamina_next"] = (names, foreach)

    @property
    def input(self) -> Any:
        """Inside a foreach: the item this task works on."""
        fe = self.__dict__.get("_lamina_foreach")
        if fe is None:
            raise AttributeError("self.input is only set in a step that a foreach fans out to.")
        return fe[0]

    @property
    def index(self) -> int:
        """Inside a foreach: the position of ``self.input``."""
        fe = self.__dict__.get("_lamina_foreach")
        if fe is None:
            raise AttributeError("self.index is only set in a step that a foreach fans out to.")
        return fe[1]

    def merge_artifacts(
        self, inputs: Iterable[Any], exclude: Iterable[str] = (), include: Iterable[str] = ()
    ) -> None:
        """In a join: take over every artifact that has the same value in all inputs.

        Artifacts already assigned in this step, or listed in ``exclude``, are skipped. An artifact
        whose value differs between inputs is an error unless excluded. Values are compared by
        content hash and passed on by reference: nothing is loaded or copied.
        """
        exclude_set, include_set = set(exclude), set(include)
        inputs = list(inputs)
        refs_by_name: dict[str, dict[str, ArtifactRef]] = {}
        for inp in inputs:
            ns = (
                inp.__dict__.get("_lamina_inputs")
                if isinstance(inp, FlowSpec)
                else getattr(inp, "_namespace", None)
            )
            if ns is None:
                raise FlowDefinitionError("merge_artifacts() takes the 'inputs' argument of a join step.")
            for name, ref in ns.refs.items():
                refs_by_name.setdefault(name, {})[ns.label] = ref
        conflicts = []
        merged: dict[str, ArtifactRef] = {}
        for name, by_input in refs_by_name.items():
            if name in exclude_set or (include_set and name not in include_set) or name in self.__dict__:
                continue
            keys = {ref.key for ref in by_input.values()}
            if len(keys) > 1:
                conflicts.append(f"{name} (differs between {', '.join(sorted(by_input))})")
                continue
            merged[name] = next(iter(by_input.values()))
        missing_includes = include_set - set(refs_by_name)
        if missing_includes:
            raise FlowDefinitionError(
                f"merge_artifacts(include=...): no input has {', '.join(sorted(missing_includes))}."
            )
        if conflicts:
            raise FlowDefinitionError(
                "merge_artifacts(): these artifacts have different values in the inputs: "
                + "; ".join(conflicts)
                + ". Assign them in the join (self.x = ...) before merging, or pass exclude=[...]."
            )
        self.__dict__.setdefault("_lamina_merged", {}).update(merged)

    # -- artifacts ----------------------------------------------------------------------------

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        d = self.__dict__
        loaded = d.get("_lamina_loaded")
        if loaded is not None and name in loaded:
            return loaded[name]
        merged = d.get("_lamina_merged")
        ns = d.get("_lamina_inputs")
        ref = None
        if merged and name in merged:
            ref = merged[name]
        elif ns is not None and name in ns.refs:
            ref = ns.refs[name]
        if ref is not None:
            where = getattr(ns, "where", None)
            what = f"artifact {name!r}" + (f" of {where}" if where else "")
            value = (ns.store if ns is not None else d["_lamina_store"]).load(ref, what=what)
            if loaded is not None:
                loaded[name] = value
            return value
        raise AttributeError(
            f"{type(self).__name__} has no artifact or attribute {name!r}"
            + (f" (artifacts available: {', '.join(sorted(ns.refs)) or 'none'})" if ns is not None else "")
        )

    def __iter__(self) -> Iterator[str]:
        """Names of the artifacts visible in this step."""
        d = self.__dict__
        names = set(k for k in d if not k.startswith("_"))
        if d.get("_lamina_inputs") is not None:
            names |= set(d["_lamina_inputs"].refs)
        names |= set(d.get("_lamina_merged") or {})
        return iter(sorted(names - d.get("_lamina_params", set())))


def reserved_names() -> list[str]:
    """Names a step or parameter may not take: FlowSpec's own public attributes."""
    return sorted(n for n in dir(FlowSpec) if not n.startswith("_"))


def check_flow_names(flow_cls: type[FlowSpec]) -> None:
    """Refuse a flow whose steps or parameters shadow FlowSpec's own attributes.

    :raises FlowDefinitionError: naming each such step or parameter, where it is, and what to do.
    """
    problems = []
    for name in flow_cls._lamina_clashes:
        value = inspect.getattr_static(flow_cls, name)
        if isinstance(value, Parameter):
            problems.append(f"parameter attribute {name!r} (Parameter({value.name!r}))")
            continue
        try:
            from .graph import _def_offset

            lines, start = inspect.getsourcelines(value)
            where = f"{inspect.getsourcefile(value)}:{start + _def_offset(lines)}"
        except (OSError, TypeError):
            where = "?"
        problems.append(f"step {name!r} ({where})")
    if problems:
        raise FlowDefinitionError(
            f"flow {flow_cls.__name__}: {', '.join(problems)} "
            f"{'has' if len(problems) == 1 else 'have'} the name of a FlowSpec attribute that Lamina "
            f"uses ({', '.join(reserved_names())}); rename "
            f"{'it' if len(problems) == 1 else 'them'}, e.g. {flow_cls._lamina_clashes[0]!r} -> "
            f"{flow_cls._lamina_clashes[0] + '_step'!r}."
        )
