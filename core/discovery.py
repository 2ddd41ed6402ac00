"""Plugin discovery: built-in plugins and the ``lamina`` entry-point group, loaded the same way.

The global plugin manager answers the ``PluginSpec`` hooks (which adapters exist, which stack
profiles plugins ship, lifecycle events). ``LAMINA_DISABLE_PLUGINS=name,other`` blocks plugins by
name, built-in ones included. A plugin that fails to import is a ``PluginError`` naming it: we
never warn and carry on with half the plugins.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any, cast

import pluggy

from .errors import PluginError
from .hookspecs import PROJECT, PluginSpec

if TYPE_CHECKING:
    from .models import AdapterInfo

ENTRY_POINT_GROUP = "lamina"
BUILTIN_PLUGINS: tuple[tuple[str, str], ...] = (("builtin", "lamina.plugins.builtin"),)


@dataclass
class PluginInfo:
    name: str
    version: str
    source: str
    """``builtin`` or the distribution that provides it."""
    adapters: list[AdapterInfo] = field(default_factory=list)


def disabled_plugins() -> set[str]:
    raw = os.environ.get("LAMINA_DISABLE_PLUGINS", "")
    return {part.strip() for part in raw.split(",") if part.strip()}


class Registry:
    """The loaded plugins and the adapters they offer."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager(PROJECT)
        self.pm.add_hookspecs(PluginSpec)
        self.plugins: dict[str, PluginInfo] = {}
        self._adapters: dict[tuple[str, str], AdapterInfo] | None = None
        self._load()

    def _register(self, name: str, obj: object, version: str, source: str) -> None:
        try:
            self.pm.register(obj, name=name)
        except Exception as exc:  # pluggy's validation error names the hook; add the plugin
            raise PluginError(f"plugin {name!r} ({source}) does not match Lamina's hookspecs: {exc}") from exc
        self.plugins[name] = PluginInfo(name=name, version=version, source=source)

    def _load(self) -> None:
        from . import __version__

        blocked = disabled_plugins()
        for name, module in BUILTIN_PLUGINS:
            if name in blocked:
                self.pm.set_blocked(name)
                continue
            try:
                obj = importlib.import_module(module)
            except Exception as exc:
                raise PluginError(f"built-in plugin {name!r} ({module}) failed to import: {exc}") from exc
            self._register(name, obj, __version__, "builtin")
        for ep in _entry_points():
            if ep.name in blocked:
                self.pm.set_blocked(ep.name)
                continue
            if ep.name in self.plugins:
                raise PluginError(
                    f"two plugins are named {ep.name!r} (entry point {ep.value!r}); "
                    "uninstall one or block it with LAMINA_DISABLE_PLUGINS"
                )
            dist = getattr(ep, "dist", None)
            dist_name = dist.metadata["Name"] if dist is not None else "?"
            version = dist.version if dist is not None else "?"
            try:
                obj = ep.load()
            except Exception as exc:
                raise PluginError(
                    f"plugin {ep.name!r} from the distribution {dist_name!r} failed to import "
                    f"({ep.value}): {type(exc).__name__}: {exc}. Fix or uninstall it, or skip it "
                    f"with LAMINA_DISABLE_PLUGINS={ep.name}"
                ) from exc
            self._register(ep.name, obj, version, dist_name)
        try:
            self.pm.check_pending()
        except Exception as exc:
            raise PluginError(f"a plugin implements a hook Lamina does not define: {exc}") from exc

    def adapters(self) -> dict[tuple[str, str], AdapterInfo]:
        """All adapters by ``(layer, name)``."""
        if self._adapters is not None:
            return self._adapters
        found: dict[tuple[str, str], AdapterInfo] = {}
        for impl in self.pm.hook.lamina_adapters.get_hookimpls():
            plugin_name = self.pm.get_name(impl.plugin) or "?"
            info = self.plugins.get(plugin_name)
            try:
                offered: list[AdapterInfo] = list(cast(Any, impl.function()) or [])
            except Exception as exc:  # a plugin's bug, reported with its name rather than a traceback
                raise PluginError(
                    f"plugin {plugin_name!r} ({info.source if info else '?'}) failed to list its adapters "
                    f"(lamina_adapters): {type(exc).__name__}: {exc}. Fix or uninstall it, or skip it "
                    f"with LAMINA_DISABLE_PLUGINS={plugin_name}"
                ) from exc
            for adapter in offered:
                # the distribution that installs it, for ``pip install 'DIST[extra]'`` hints
                adapter.plugin_name = "lamina" if info is None or info.source == "builtin" else info.source
                adapter.plugin_version = info.version if info else ""
                key = (adapter.layer, adapter.name)
                if key in found:
                    raise PluginError(
                        f"two plugins offer a {adapter.layer} adapter named {adapter.name!r}: "
                        f"{found[key].plugin_name} and {adapter.plugin_name}; block one with LAMINA_DISABLE_PLUGINS"
                    )
                found[key] = adapter
                if info is not None:
                    info.adapters.append(adapter)
        self._adapters = found
        return found

    def adapter(self, layer: str, name: str) -> AdapterInfo | None:
        return self.adapters().get((layer, name))

    def adapter_names(self, layer: str) -> list[str]:
        return sorted(name for (lay, name) in self.adapters() if lay == layer)

    def hook(self) -> pluggy.HookRelay:
        return self.pm.hook


def _entry_points() -> list:
    from importlib.metadata import entry_points

    return sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: ep.name)


@lru_cache(maxsize=1)
def _cached_registry(disabled: frozenset[str]) -> Registry:
    return Registry()


def get_registry() -> Registry:
    """The process-wide registry (rebuilt when ``LAMINA_DISABLE_PLUGINS`` changes)."""
    return _cached_registry(frozenset(disabled_plugins()))


def reset_registry() -> None:
    """Forget loaded plugins (tests that install or block plugins call this)."""
    _cached_registry.cache_clear()


# Adapters the project knows of, with what makes them available (fsspec's registry model): an
# unknown adapter that is listed here gets an exact hint instead of a bare "unknown".
KNOWN_ADAPTERS: dict[tuple[str, str], str] = {
    ("data", "snowflake"): "ships with lamina: pip install 'lamina[aws]'",
    ("versioning", "s3"): "ships with lamina: pip install 'lamina[aws]'",
    ("compute", "sagemaker"): "ships with lamina: pip install 'lamina[aws]'",
    ("orchestration", "step-functions"): "ships with lamina: pip install 'lamina[aws]'",
    ("compute", "dask"): "ships with lamina: pip install 'lamina[dask]'",
    ("data", "bigquery"): "planned for the gcp-vertex stack; not in this release",
    ("compute", "vertex"): "planned for the gcp-vertex stack; not in this release",
    ("orchestration", "vertex-pipelines"): "planned for the gcp-vertex stack; not in this release",
    ("versioning", "gcs"): "ships with lamina: pip install 'lamina[gcs]'",
    ("data", "azureml"): "planned for the azure-ml stack; not in this release",
    ("compute", "azureml"): "planned for the azure-ml stack; not in this release",
    ("orchestration", "azureml-pipelines"): "planned for the azure-ml stack; not in this release",
    ("versioning", "azure-blob"): "ships with lamina: pip install 'lamina[azure-blob]'",
}


def adapter_status(layer: str, name: str) -> tuple[bool, str]:
    """Whether an adapter can be used here, and if not, why and what to do."""
    registry = get_registry()
    info = registry.adapter(layer, name)
    if info is None:
        hint = KNOWN_ADAPTERS.get((layer, name))
        if hint:
            return False, hint
        installed = ", ".join(registry.adapter_names(layer)) or "none"
        return False, f"unknown {layer} adapter (installed: {installed}); install the plugin that offers it"
    missing = missing_modules(info)
    if missing:
        return False, f"needs {', '.join(missing)}: {info.install_hint()}"
    return True, f"installed ({info.plugin_name} {info.plugin_version})".replace(" )", ")")


def missing_modules(info: AdapterInfo) -> list[str]:
    """The modules of ``info.requires`` that are not installed, found without importing any.

    ``importlib.util.find_spec("sagemaker.core")`` imports ``sagemaker`` to find its submodule,
    which would make ``lamina stack list`` load every cloud SDK; this looks each level up on the
    path of its parent instead.
    """
    return [name for name in info.requires if not module_installed(name)]


def module_installed(name: str) -> bool:
    import importlib.util
    import sys

    parts = name.split(".")
    try:
        spec = importlib.util.find_spec(parts[0])
        for depth in range(1, len(parts)):
            if spec is None:
                return False
            full = ".".join(parts[: depth + 1])
            if ".".join(parts[:depth]) in sys.modules:  # already imported: asking costs nothing
                spec = importlib.util.find_spec(full)
                continue
            locations = spec.submodule_search_locations
            if locations is None:
                return False
            spec = _find_submodule(full, list(locations))
    except (ImportError, ValueError):
        return False
    return spec is not None


def _find_submodule(name: str, parent_path: list[str]) -> Any:
    """Ask the import system's finders, as an import would, but with the parent's path known
    from its spec rather than from importing it."""
    import sys

    for finder in sys.meta_path:
        find_spec = getattr(finder, "find_spec", None)
        if find_spec is None:
            continue
        try:
            spec = find_spec(name, parent_path)
        except Exception:  # a finder that cannot answer without the parent: ask the next
            continue
        if spec is not None:
            return spec
    return _namespace_spec(name, parent_path)


def _namespace_spec(name: str, parent_path: list[str]) -> Any:
    """A namespace package inside a namespace package (``azure.storage``, ``google.cloud``): the
    path finder cannot answer for it without importing the parent, so look for its folders."""
    import importlib.machinery
    import os

    last = name.rpartition(".")[2]
    folders = [os.path.join(p, last) for p in parent_path if os.path.isdir(os.path.join(p, last))]
    if not folders:
        return None
    spec = importlib.machinery.ModuleSpec(name, None, is_package=True)
    spec.submodule_search_locations = folders
    return spec
