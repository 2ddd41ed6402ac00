"""Per-step environments: ``@pypi``, ``@pypi_base``, ``@conda``, ``@conda_base`` (Metaflow's names).

```python
@pypi_base(packages={"pandas": "2.2.2"})
class TrainFlow(FlowSpec):
    @pypi(packages={"xgboost": "2.0.3"})
    @step
    def train(self):
        import xgboost
```

Each step runs in a virtual environment built from the Python package index for exactly its
requirement set (the flow's base, updated by the step's own), cached by the set's hash and shared
by every task that needs it (see ``lamina.runtime.environments``). A step without any of these
decorators runs in the driver's own environment and does not see the packages.

Conda names are resolved to the same package on the Python index (``pytorch`` is ``torch``); a
package that exists only on conda channels (``cudatoolkit``) is an error that names it. Every
environment uses the driver's Python interpreter, which Lamina's tasks need: a different
``python=`` is reported once, and recorded with the run.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from typing import Any, TypeVar

from ..errors import FlowDefinitionError
from ..models import StepEnvironment

F = TypeVar("F", bound=Callable[..., Any])

CONDA_TO_PYPI: dict[str, str] = {
    "pytorch": "torch",
    "pytorch-cpu": "torch",
    "pytorch-gpu": "torch",
    "py-xgboost": "xgboost",
    "py-xgboost-cpu": "xgboost",
    "py-xgboost-gpu": "xgboost",
    "py-lightgbm": "lightgbm",
    "py-opencv": "opencv-python",
    "opencv": "opencv-python",
    "matplotlib-base": "matplotlib",
    "tensorflow-base": "tensorflow",
    "pytables": "tables",
    "pyqt": "PyQt5",
    "python-graphviz": "graphviz",
    "msgpack-python": "msgpack",
    "typing_extensions": "typing-extensions",
}
"""Conda package names whose package on the Python index has another name."""

CONDA_ONLY: dict[str, str] = {
    "cudatoolkit": "the CUDA runtime comes with the GPU wheels of torch and tensorflow",
    "cuda-toolkit": "the CUDA runtime comes with the GPU wheels of torch and tensorflow",
    "cudnn": "the CUDA runtime comes with the GPU wheels of torch and tensorflow",
    "nccl": "the CUDA runtime comes with the GPU wheels of torch and tensorflow",
    "mkl": "NumPy and SciPy wheels bundle their BLAS",
    "openblas": "NumPy and SciPy wheels bundle their BLAS",
    "blas": "NumPy and SciPy wheels bundle their BLAS",
    "libgcc-ng": "wheels bundle their C runtime",
    "libstdcxx-ng": "wheels bundle their C runtime",
    "gcc": "a compiler belongs in the compute's image ([compute] image)",
    "gxx": "a compiler belongs in the compute's image ([compute] image)",
    "ffmpeg": "a system tool belongs in the compute's image ([compute] image)",
    "r-base": "R is not a Python package",
}
"""Packages that exist only on conda channels, with what to do instead."""

_NAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?(\[[A-Za-z0-9._,-]+\])?$")


def _check_packages(kind: str, where: str, packages: Any) -> dict[str, str]:
    if packages is None:
        return {}
    if not isinstance(packages, dict):
        raise FlowDefinitionError(
            f"@{kind} on {where}: packages must be a dict of name -> version, got {packages!r}."
        )
    out = {}
    for name, version in packages.items():
        if not isinstance(name, str) or not _NAME.match(name):
            raise FlowDefinitionError(f"@{kind} on {where}: {name!r} is not a package name.")
        if version is not None and not isinstance(version, str | int | float):
            raise FlowDefinitionError(
                f"@{kind} on {where}: the version of {name!r} must be a string, got {version!r}."
            )
        out[name] = "" if version is None else str(version).strip()
    return out


def _record(kind: str, where: str, packages: Any, python: Any, disabled: bool) -> dict[str, Any]:
    if python is not None and not isinstance(python, str):
        raise FlowDefinitionError(
            f"@{kind} on {where}: python must be a version string like '3.11', got {python!r}."
        )
    return {
        "kind": kind.removesuffix("_base"),
        "packages": _check_packages(kind, where, packages),
        "python": python,
        "disabled": bool(disabled),
    }


def pypi(
    func: F | None = None,
    *,
    packages: dict[str, str] | None = None,
    python: str | None = None,
    disabled: bool = False,
) -> Any:
    """Run the step in an environment with these packages from the Python index:
    ``@pypi(packages={"tomli-w": "1.0.0"})`` (a bare version means ``==``)."""

    def apply(f: F) -> F:
        from .decorators import _decorations

        _decorations(f)["pypi"] = _record("pypi", f"step {f.__name__!r}", packages, python, disabled)
        return f

    return apply(func) if func is not None else apply


def conda(
    func: F | None = None,
    *,
    libraries: dict[str, str] | None = None,
    packages: dict[str, str] | None = None,
    python: str | None = None,
    disabled: bool = False,
) -> Any:
    """Metaflow's ``@conda(libraries={...})`` (or ``packages=``): the same packages, resolved to
    their names on the Python index and installed from it."""

    def apply(f: F) -> F:
        from .decorators import _decorations

        given = {**(libraries or {}), **(packages or {})}
        _decorations(f)["conda"] = _record("conda", f"step {f.__name__!r}", given, python, disabled)
        return f

    return apply(func) if func is not None else apply


def _flow_decorator(kind: str, packages: dict[str, str] | None, python: str | None, disabled: bool) -> Any:
    def apply(cls: Any) -> Any:
        record = _record(kind, f"flow {cls.__name__}", packages, python, disabled)
        found = dict(cls.__dict__.get("_lamina_flow_decorations", {}))
        found[kind] = record
        cls._lamina_flow_decorations = found
        return cls

    return apply


def pypi_base(
    cls: Any = None,
    *,
    packages: dict[str, str] | None = None,
    python: str | None = None,
    disabled: bool = False,
) -> Any:
    """``@pypi`` for every step of the flow (a step's own ``@pypi`` adds to it and wins)."""
    apply = _flow_decorator("pypi_base", packages, python, disabled)
    return apply(cls) if cls is not None else apply


def conda_base(
    cls: Any = None,
    *,
    libraries: dict[str, str] | None = None,
    packages: dict[str, str] | None = None,
    python: str | None = None,
    disabled: bool = False,
) -> Any:
    """``@conda`` for every step of the flow (a step's own ``@conda`` adds to it and wins)."""
    apply = _flow_decorator("conda_base", {**(libraries or {}), **(packages or {})}, python, disabled)
    return apply(cls) if cls is not None else apply


def pypi_name(conda_name: str, where: str) -> str:
    """The Python index's name for a conda package. :raises FlowDefinitionError: conda-only."""
    base = conda_name.split("[", 1)[0].lower()
    if base in CONDA_ONLY or base.startswith("r-"):
        why = CONDA_ONLY.get(base, "R packages are not Python packages")
        raise FlowDefinitionError(
            f"@conda on {where}: {conda_name!r} exists only on conda channels, and Lamina builds step "
            f"environments from the Python package index ({why}). Remove it from the step's libraries."
        )
    return CONDA_TO_PYPI.get(base, conda_name)


def requirement(name: str, version: str) -> str:
    """``("six", "1.16.0")`` -> ``"six==1.16.0"``; a version with an operator is kept as given."""
    if not version:
        return name
    return f"{name}{version}" if version[0] in "<>=!~" else f"{name}=={version}"


def step_environment(flow_cls: type, step: str, decorations: dict[str, Any]) -> StepEnvironment | None:
    """The requirement set of one step, or ``None`` when it runs in the driver's environment."""
    flow_deco = getattr(flow_cls, "_lamina_flow_decorations", {})
    chosen = [k for k in ("pypi", "conda") if k in decorations]
    bases = [k for k in ("pypi_base", "conda_base") if k in flow_deco]
    if len(chosen) > 1 or len(bases) > 1:
        raise FlowDefinitionError(
            f"step {step!r} of {flow_cls.__name__}: use either @pypi or @conda (and either @pypi_base or "
            "@conda_base), not both: each step has one environment."
        )
    base = flow_deco[bases[0]] if bases else None
    own = decorations[chosen[0]] if chosen else None
    if own is not None and own["disabled"] or own is None and (base is None or base["disabled"]):
        return None
    packages: dict[str, str] = {}
    kinds = []
    for record in (base, own):
        if record is None or record["disabled"]:
            continue
        kinds.append(record["kind"])
        for name, version in record["packages"].items():
            resolved = pypi_name(name, f"step {step!r}") if record["kind"] == "conda" else name
            if resolved:
                packages[resolved.lower()] = version
    python = (own or {}).get("python") or (base or {}).get("python")
    digest = hashlib.sha256(
        json.dumps({"packages": dict(sorted(packages.items())), "python": python}, sort_keys=True).encode()
    ).hexdigest()
    return StepEnvironment(
        kind=kinds[-1] if kinds else "pypi",  # type: ignore[arg-type]
        packages=dict(sorted(packages.items())),
        requirements=[requirement(n, v) for n, v in sorted(packages.items())],
        python=python,
        key=digest,
    )
