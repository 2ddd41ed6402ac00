"""Lamina's testing kit: conformance suites that every adapter's tests subclass.

fsspec's abstract tests are the model: a suite is a pytest class shipped in the package, and an
adapter's own tests subclass it with a fixture that builds the adapter::

    from lamina.testing import VersioningSuite

    class TestMyStore(VersioningSuite):
        @pytest.fixture
        def versioning_adapter(self, tmp_path): ...

| suite | fixture to provide | module |
|---|---|---|
| :class:`DataSuite` (alias ``DataAdapterSuite``) | ``data_adapter``: the plugin object | ``data_suite`` |
| :class:`VersioningSuite` | ``versioning_adapter``: the plugin object | ``versioning_suite`` |
| :class:`ComputeSuite` | ``compute_stack``: a stack name whose compute is the adapter | ``compute_suite`` |
| :class:`OrchestrationSuite` | ``orchestration_stack``: a stack name whose orchestrator is the adapter | ``orchestration_suite`` |
| :class:`StackSuite` | ``stack_name``: any stack, compared with ``local`` | ``stack_suite`` |

The names load lazily: ``import lamina.testing`` imports neither pytest nor a suite, and
``import lamina`` never imports this package.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS: dict[str, str] = {
    "DataSuite": "lamina.testing.data_suite",
    "DataAdapterSuite": "lamina.testing.data_suite",
    "VersioningSuite": "lamina.testing.versioning_suite",
    "ComputeSuite": "lamina.testing.compute_suite",
    "StackSuite": "lamina.testing.stack_suite",
    "OrchestrationSuite": "lamina.testing.orchestration_suite",
}

__all__ = ["ComputeSuite", "DataAdapterSuite", "DataSuite", "OrchestrationSuite", "StackSuite", "VersioningSuite"]

if TYPE_CHECKING:
    from .compute_suite import ComputeSuite
    from .data_suite import DataAdapterSuite, DataSuite
    from .orchestration_suite import OrchestrationSuite
    from .stack_suite import StackSuite
    from .versioning_suite import VersioningSuite


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'lamina.testing' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
