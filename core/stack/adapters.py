"""Checking an adapter against its layer's hookspec, when a stack is loaded rather than mid-run.

pluggy validates each ``@hookimpl`` when the plugin is registered (an argument the spec does not
have) and ``check_pending()`` finds hooks the spec does not define (a typo such as
``data_qeury``). An adapter's factory is usually its class, so the stack checks the class as soon
as the profile is resolved, before anything runs; the instance is checked again when the layer is
built. A hook the adapter does not implement at all would otherwise answer ``None`` mid-run, so
that is a load error too for the hooks a layer cannot work without (``REQUIRED_HOOKS``).
"""

from __future__ import annotations

import inspect

import pluggy

from ..errors import PluginError
from ..hookspecs import CONTRACTS, LAYER_SPECS, PROJECT

REQUIRED_HOOKS: frozenset[str] = frozenset(name for name, c in CONTRACTS.items() if c.required)
"""Hooks every adapter of a layer must implement (from :data:`lamina.hookspecs.CONTRACTS`):
without them the layer cannot work. The others have a default in the facade (no transient
errors, nothing to prepare or release, no platform logs...). A hook added to a spec later must
be optional, so that adapters written before it keep loading."""


def layer_hooks(layer: str) -> list[str]:
    """The hook names of a layer's spec, in definition order."""
    spec = LAYER_SPECS[layer]
    return [name for name, value in vars(spec).items() if not name.startswith("_") and callable(value)]


def new_layer_manager(layer: str) -> pluggy.PluginManager:
    pm = pluggy.PluginManager(PROJECT)
    pm.add_hookspecs(LAYER_SPECS[layer])
    return pm


def register_adapter(pm: pluggy.PluginManager, layer: str, plugin: object, adapter: str, origin: str) -> None:
    """Register ``plugin`` (an adapter object, or its class) as the layer's adapter and check it.

    :raises PluginError: naming the adapter, the plugin that offers it and the faulty hook.
    """
    label = f"the {layer} adapter {adapter!r} ({origin})"
    try:
        pm.register(plugin, name=f"{layer}:{adapter}")
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        detail = " ".join(str(exc).split())
        raise PluginError(
            f"{label} does not match the {layer} hookspec: {detail}. "
            f"The {layer} hooks are: {', '.join(layer_hooks(layer))} (lamina.hookspecs)."
        ) from exc
    implemented = {caller.name for caller in pm.get_hookcallers(plugin) or []}
    missing = [hook for hook in layer_hooks(layer) if hook in REQUIRED_HOOKS and hook not in implemented]
    if missing:
        pm.unregister(plugin)
        raise PluginError(
            f"{label} does not implement {', '.join(missing)}: every {layer} adapter must "
            "(see lamina.hookspecs and the conformance suites in lamina.testing)."
        )


def check_adapter_class(layer: str, factory: object, adapter: str, origin: str) -> None:
    """Check an adapter's hooks before it is built, when its factory is a class."""
    if inspect.isclass(factory):
        register_adapter(new_layer_manager(layer), layer, factory, adapter, origin)
