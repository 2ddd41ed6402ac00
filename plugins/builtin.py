"""The built-in plugin: Lamina's first-party adapters and stack profiles.

It is registered exactly like a third-party plugin (see ``lamina.discovery``) and can be blocked
with ``LAMINA_DISABLE_PLUGINS=builtin``. Adapter modules import their SDKs lazily, so listing
them is cheap and never imports a cloud SDK.
"""

from __future__ import annotations

import importlib
from importlib.resources import files
from pathlib import Path
from typing import Any

from lamina.errors import PluginError
from lamina.hookspecs import EmulatorInfo, hookimpl
from lamina.models import AdapterInfo

# module, attribute: every first-party adapter
ADAPTER_MODULES: tuple[str, ...] = (
    "lamina.plugins.duckdb_data",
    "lamina.plugins.local_compute",
    "lamina.plugins.local_orchestration",
    "lamina.plugins.local_versioning",
    "lamina.plugins.sqlalchemy_data",
)
OPTIONAL_ADAPTER_MODULES: tuple[str, ...] = (
    "lamina.plugins.dask",
    "lamina.plugins.aws",
    "lamina.plugins.gcp",
    "lamina.plugins.azure",
)


def _modules() -> list[Any]:
    found = []
    for module_name in ADAPTER_MODULES + OPTIONAL_ADAPTER_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name and module_name in OPTIONAL_ADAPTER_MODULES:
                continue  # not part of this build
            raise
        if getattr(module, "__file__", None) is not None:  # a folder without __init__.py is none
            found.append(module)
    return found


@hookimpl
def lamina_emulators() -> list[EmulatorInfo]:
    """The stand-ins of the cloud plugins' services (``EMULATORS`` of each adapter module)."""
    return [info for module in _modules() for info in getattr(module, "EMULATORS", [])]


@hookimpl
def lamina_adapters() -> list[AdapterInfo]:
    found: list[AdapterInfo] = []
    for module in _modules():
        module_name = module.__name__
        adapters = getattr(module, "ADAPTERS", None) or (
            [module.ADAPTER] if hasattr(module, "ADAPTER") else None
        )
        if not adapters:
            raise PluginError(f"built-in adapter module {module_name} defines neither ADAPTER nor ADAPTERS.")
        found.extend(adapters)
    return found


@hookimpl
def lamina_stack_profiles() -> dict[str, Path]:
    folder = files("lamina.stacks")
    return {
        entry.name[: -len(".toml")]: Path(str(entry))
        for entry in folder.iterdir()
        if entry.name.endswith(".toml")
    }
