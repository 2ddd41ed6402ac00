"""Meta-tests that keep the layer contracts, the adapters and the facades together (datasette's
``test_docs.py`` style): every hook is documented, every ``@hookimpl`` in ``plugins/`` matches a
spec, every installed adapter implements every hook of its layer, and every hook is reachable
through its layer's facade."""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path

import lamina.plugins
import pytest
from lamina.discovery import get_registry
from lamina.hookspecs import LAYER_SPECS, PROJECT, PluginSpec
from lamina.stack.adapters import REQUIRED_HOOKS
from lamina.stack.facades import FACADES

SPECS = {**LAYER_SPECS, "plugin": PluginSpec}
MARKER = f"{PROJECT}_impl"


def hooks_of(spec: type) -> dict[str, inspect.Signature]:
    return {
        name: inspect.signature(value)
        for name, value in vars(spec).items()
        if not name.startswith("_") and callable(value)
    }


ALL_HOOKS = {hook: (kind, sig) for kind, spec in SPECS.items() for hook, sig in hooks_of(spec).items()}


def arg_names(func: object) -> list[str]:
    params = list(inspect.signature(func).parameters)  # type: ignore[arg-type]
    return params[1:] if params[:1] == ["self"] else params


@pytest.mark.parametrize("hook", sorted(ALL_HOOKS))
def test_every_hook_has_a_docstring(hook: str) -> None:
    kind, _ = ALL_HOOKS[hook]
    doc = inspect.getdoc(getattr(SPECS[kind], hook)) or ""
    assert len(doc) > 20, f"{SPECS[kind].__name__}.{hook} needs a docstring stating its contract"


@pytest.mark.parametrize("layer", sorted(LAYER_SPECS))
def test_every_layer_hook_is_prefixed_with_its_layer_and_typed(layer: str) -> None:
    for hook, sig in hooks_of(LAYER_SPECS[layer]).items():
        assert hook.startswith(f"{layer}_"), hook
        assert sig.return_annotation is not inspect.Signature.empty, f"{hook} has no return type"
        for name, param in sig.parameters.items():
            assert name == "self" or param.annotation is not inspect.Parameter.empty, (
                f"{hook}({name}) untyped"
            )


def plugin_modules() -> list[str]:
    root = Path(lamina.plugins.__file__).parent
    names = []
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        if parts[-1] == "__main__":  # a program (python -m ...), not a module to import
            continue
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names.append(".".join(("lamina.plugins", *parts)))
    return names


def hookimpls(module: object) -> list[tuple[str, object]]:
    """``(qualified name, function)`` of every ``@hookimpl`` defined in ``module``."""
    found = []
    for value in vars(module).values():
        if getattr(value, "__module__", None) != module.__name__:  # type: ignore[attr-defined]
            continue
        members = vars(value).values() if inspect.isclass(value) else [value]
        for member in members:
            if callable(member) and hasattr(member, MARKER):
                found.append((member.__qualname__, member))
    return found


@pytest.mark.parametrize("module_name", plugin_modules())
def test_every_hookimpl_in_plugins_matches_a_spec(module_name: str) -> None:
    module = importlib.import_module(module_name)
    for qualname, func in hookimpls(module):
        hook = func.__name__
        assert hook in ALL_HOOKS, f"{module_name}.{qualname}: no hook named {hook!r} in lamina.hookspecs"
        _, spec_sig = ALL_HOOKS[hook]
        spec_args = [name for name in spec_sig.parameters if name != "self"]
        extra = set(arg_names(func)) - set(spec_args)
        assert not extra, f"{module_name}.{qualname} takes {sorted(extra)}, which the spec {hook} lacks"


def adapters() -> list[pytest.ParameterSet]:
    return [
        pytest.param(info, id=f"{layer}:{name}")
        for (layer, name), info in sorted(get_registry().adapters().items())
        if inspect.isclass(info.factory)
    ]


def implemented_hooks(cls: type) -> set[str]:
    return {name for name, member in inspect.getmembers(cls) if callable(member) and hasattr(member, MARKER)}


@pytest.mark.parametrize("info", adapters())
def test_every_first_party_adapter_implements_every_hook_of_its_layer(info) -> None:
    if info.plugin_name != "lamina":
        pytest.skip("a third party's adapter need only implement the required hooks")
    implemented = implemented_hooks(info.factory)
    expected = set(hooks_of(LAYER_SPECS[info.layer]))
    assert not expected - implemented, f"{info.factory.__qualname__} lacks {sorted(expected - implemented)}"
    assert not implemented - expected, f"{info.factory.__qualname__} has hooks of another layer"


@pytest.mark.parametrize("info", adapters())
def test_every_installed_adapter_implements_the_required_hooks(info) -> None:
    implemented = implemented_hooks(info.factory)
    required = set(hooks_of(LAYER_SPECS[info.layer])) & REQUIRED_HOOKS
    assert not required - implemented, f"{info.factory.__qualname__} lacks {sorted(required - implemented)}"


def test_required_hooks_are_hooks() -> None:
    assert set(REQUIRED_HOOKS) <= {hook for spec in LAYER_SPECS.values() for hook in hooks_of(spec)}


@pytest.mark.parametrize("info", adapters())
def test_every_adapter_describes_itself_and_its_settings(info) -> None:
    assert info.description, (
        f"{info.layer} adapter {info.name!r} has no description for `lamina plugins list`"
    )
    assert info.settings.model_config.get("extra") == "forbid", "unknown settings must be errors"


@pytest.mark.parametrize("layer", sorted(LAYER_SPECS))
def test_every_hook_is_reachable_through_the_layer_facade(layer: str) -> None:
    source = inspect.getsource(FACADES[layer]) + inspect.getsource(FACADES[layer].__mro__[1])
    for hook in hooks_of(LAYER_SPECS[layer]):
        assert f'"{hook}"' in source or f".{hook}(" in source or hook.endswith("_transient_errors"), (
            f"{FACADES[layer].__name__} has no method calling {hook}"
        )


# -- one contract per hook ------------------------------------------------------------------

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("hook", sorted(ALL_HOOKS))
def test_every_hook_declares_its_contract_and_documents_each_argument(hook: str) -> None:
    from lamina.hookspecs import CONTRACTS

    kind, sig = ALL_HOOKS[hook]
    assert hook in CONTRACTS, f"{hook} has no @contract(...) beside its spec"
    doc = inspect.getdoc(getattr(SPECS[kind], hook)) or ""
    for name in sig.parameters:
        if name != "self":
            assert f":param {name}:" in doc, f"{hook}'s docstring has no ':param {name}:'"


def _test_sources() -> str:
    paths = [*(REPO / "tests").rglob("*.py"), *(REPO / "core" / "testing").rglob("*.py")]
    return "\n".join(p.read_text() for p in paths if p.name != "test_stack_hookspecs.py")


@pytest.mark.parametrize("hook", sorted(ALL_HOOKS))
def test_every_hook_is_exercised_by_a_test(hook: str) -> None:
    """A hook is exercised when a test (or a conformance suite) names it or calls the facade
    method that calls it."""
    kind, _ = ALL_HOOKS[hook]
    method = hook.split("_", 1)[1] if kind != "plugin" else hook
    sources = _test_sources()
    assert hook in sources or f".{method}(" in sources, f"no test exercises {hook}"


def test_the_adapter_guide_shows_the_contract_table_as_declared() -> None:
    from lamina.hookspecs import contracts_markdown

    guide = (REPO / "docs" / "writing-an-adapter.md").read_text()
    assert contracts_markdown() in guide, (
        "docs/writing-an-adapter.md's contract table is out of date: paste the output of "
        "`python -c 'from lamina.hookspecs import contracts_markdown as m; print(m())'`"
    )


def test_required_hooks_come_from_the_contracts() -> None:
    from lamina.hookspecs import CONTRACTS

    assert REQUIRED_HOOKS == {name for name, c in CONTRACTS.items() if c.required}
    assert not {name for name in REQUIRED_HOOKS if CONTRACTS[name].layer == "plugin"}


def test_public_hooks_take_public_types_only() -> None:
    """No hook hands an adapter a private core object (the RunDriver once went through ``Any``)."""
    private = ("lamina.runtime", "lamina.stack", "lamina.versioning", "RunDriver")
    for hook, (_, sig) in ALL_HOOKS.items():
        for name, param in sig.parameters.items():
            if name == "self":
                continue
            text = str(param.annotation)
            assert not any(p in text for p in private), f"{hook}({name}: {text}) exposes a private type"
            assert text != "Any", f"{hook}({name}) is untyped (Any)"
