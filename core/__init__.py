"""Lamina: write a machine-learning flow once, run it unchanged on any infrastructure stack.

Imports are lazy so that ``import lamina`` stays fast and never imports a cloud SDK.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    "FlowSpec": "lamina.flow.spec",
    "step": "lamina.flow.spec",
    "Parameter": "lamina.flow.spec",
    "JSONType": "lamina.flow.spec",
    "IncludeFile": "lamina.flow.includefile",
    "resources": "lamina.flow.decorators",
    "retry": "lamina.flow.decorators",
    "catch": "lamina.flow.decorators",
    "timeout": "lamina.flow.decorators",
    "environment": "lamina.flow.decorators",
    "batch": "lamina.flow.platform",
    "card": "lamina.cards",
    "pypi": "lamina.flow.packages",
    "pypi_base": "lamina.flow.packages",
    "conda": "lamina.flow.packages",
    "conda_base": "lamina.flow.packages",
    "kubernetes": "lamina.flow.platform",
    "project": "lamina.flow.decorators",
    "schedule": "lamina.flow.decorators",
    "trigger": "lamina.flow.decorators",
    "trigger_on_finish": "lamina.flow.decorators",
    "current": "lamina.flow.current",
    "Flow": "lamina.client",
    "Run": "lamina.client",
    "Step": "lamina.client",
    "Task": "lamina.client",
    "namespace": "lamina.client",
    "get_namespace": "lamina.client",
    "default_namespace": "lamina.client",
    "metadata": "lamina.client",
    "get_metadata": "lamina.client",
    "default_metadata": "lamina.client",
    "Metaflow": "lamina.client",
    "DataArtifact": "lamina.client",
    "compare_runs": "lamina.client",
    "run_flow": "lamina.runtime.api",
    "resolve_stack": "lamina.stack",
    "hookimpl": "lamina.hookspecs",
    "LaminaError": "lamina.errors",
}

__all__ = [
    "DataArtifact",
    "Flow",
    "FlowSpec",
    "IncludeFile",
    "JSONType",
    "LaminaError",
    "Metaflow",
    "Parameter",
    "Run",
    "Step",
    "Task",
    "batch",
    "card",
    "catch",
    "compare_runs",
    "conda",
    "conda_base",
    "current",
    "default_metadata",
    "default_namespace",
    "environment",
    "get_metadata",
    "get_namespace",
    "hookimpl",
    "kubernetes",
    "metadata",
    "namespace",
    "project",
    "pypi",
    "pypi_base",
    "resolve_stack",
    "resources",
    "retry",
    "run_flow",
    "schedule",
    "step",
    "timeout",
    "trigger",
    "trigger_on_finish",
    "__version__",
]

if TYPE_CHECKING:
    from .cards import card
    from .client import (
        DataArtifact,
        Flow,
        Metaflow,
        Run,
        Step,
        Task,
        compare_runs,
        default_metadata,
        default_namespace,
        get_metadata,
        get_namespace,
        metadata,
        namespace,
    )
    from .errors import LaminaError
    from .flow.current import current
    from .flow.decorators import (
        catch,
        environment,
        project,
        resources,
        retry,
        schedule,
        timeout,
        trigger,
        trigger_on_finish,
    )
    from .flow.includefile import IncludeFile
    from .flow.packages import conda, conda_base, pypi, pypi_base
    from .flow.platform import batch, kubernetes
    from .flow.spec import FlowSpec, JSONType, Parameter, step
    from .hookspecs import hookimpl
    from .runtime.api import run_flow
    from .stack import resolve_stack


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'lamina' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
