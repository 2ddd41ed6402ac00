"""Metaflow's platform decorators, read as portable requests, and ``--with`` on the command line.

``@batch(cpu=4, memory=16000)`` and ``@kubernetes(cpu=1, memory=500)`` name one platform; a
Lamina flow runs on whatever stack is chosen, so they mean ``@resources`` with the same numbers
there. Settings that only make sense on that platform (a queue, a namespace, an IAM role) have no
portable meaning: they belong to a stack profile's compute settings, and the decorator refuses
them with a message that says which setting replaces them, rather than ignoring them silently.

``python flow.py run --with retry --with kubernetes:cpu=2`` adds a decorator to every step, as
Metaflow's ``--with`` does; a step's own ``@retry``/``@catch``/``@timeout`` wins over ``--with``,
and resource requests combine by taking the larger of each number.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from typing import Any, TypeVar

from ..errors import FlowDefinitionError

F = TypeVar("F", bound=Callable[..., Any])

_ROLE = "the compute role in the stack profile ([compute] role; aws-sagemaker: $LAMINA_SAGEMAKER_ROLE)"
_IMAGE = (
    "the container image in the stack profile ([compute] image; aws-sagemaker: $LAMINA_SAGEMAKER_IMAGE); "
    "for per-step packages use @pypi or @conda"
)
_TARGET = (
    "the compute adapter's settings in the stack profile ([compute] instance_type on aws-sagemaker, "
    "compute_target on azure-ml, address on dask)"
)
_NETWORK = "the network settings of the compute in the stack profile ([compute] subnets, security_group_ids)"
_SECRETS = (
    "credentials from the cloud's standard chain, or the compute's secrets setting in the stack profile "
    "([compute] secrets_arn on aws-sagemaker)"
)
_NO_MEANING = (
    "nothing portable: a compute adapter that offers it takes it in the stack profile's [compute] table"
)

BATCH_REFUSED: dict[str, str] = {
    "queue": _TARGET,
    "iam_role": _ROLE,
    "execution_role": _ROLE,
    "image": _IMAGE,
    "aws_batch_tags": "tags given with --tag, recorded with the run",
    "shared_memory": _NO_MEANING,
    "max_swap": _NO_MEANING,
    "swappiness": _NO_MEANING,
    "use_tmpfs": _NO_MEANING,
    "tmpfs_tempdir": _NO_MEANING,
    "tmpfs_size": _NO_MEANING,
    "tmpfs_path": _NO_MEANING,
    "inferentia": _TARGET,
    "trainium": _TARGET,
    "efa": _TARGET,
    "log_driver": "the compute's own logging: Lamina stores every task's stdout and stderr with the run",
    "log_options": "the compute's own logging: Lamina stores every task's stdout and stderr with the run",
    "host_volumes": _NO_MEANING,
    "efs_volumes": _NO_MEANING,
    "privileged": _NO_MEANING,
}

KUBERNETES_REFUSED: dict[str, str] = {
    "namespace": _TARGET,
    "service_account": _ROLE,
    "image": _IMAGE,
    "image_pull_policy": _IMAGE,
    "image_pull_secrets": _SECRETS,
    "secrets": _SECRETS,
    "node_selector": _TARGET,
    "tolerations": _TARGET,
    "labels": "tags given with --tag, recorded with the run",
    "annotations": "tags given with --tag, recorded with the run",
    "gpu_vendor": _TARGET,
    "compute_pool": _TARGET,
    "persistent_volume_claims": _NO_MEANING,
    "shared_memory": _NO_MEANING,
    "use_tmpfs": _NO_MEANING,
    "tmpfs_tempdir": _NO_MEANING,
    "tmpfs_size": _NO_MEANING,
    "tmpfs_path": _NO_MEANING,
    "port": _NETWORK,
    "hostname_resolution_timeout": _NETWORK,
    "qos": _TARGET,
    "security_context": _NO_MEANING,
}

_noticed: set[str] = set()


def _number(platform: str, step: str, key: str, value: Any) -> float:
    try:
        number = float(value)  # Metaflow accepts numbers given as strings ("4")
    except (TypeError, ValueError):
        raise FlowDefinitionError(
            f"@{platform} on step {step!r}: {key} must be a number, got {value!r}."
        ) from None
    if number < 0:
        raise FlowDefinitionError(f"@{platform} on step {step!r}: {key} must not be negative, got {value!r}.")
    return number


def portable_resources(platform: str, step: str, given: dict[str, Any]) -> dict[str, Any]:
    """``@resources`` arguments for a ``@batch``/``@kubernetes`` call, or the error for the first
    setting with no portable meaning."""
    refused = BATCH_REFUSED if platform == "batch" else KUBERNETES_REFUSED
    out: dict[str, Any] = {}
    for key, value in given.items():
        if value is None or value is False or value in ({}, [], ""):
            continue  # Metaflow's defaults for the platform-only settings: nothing asked
        if key in ("cpu", "gpu", "memory"):
            number = _number(platform, step, key, value)
            out[key] = number if key == "cpu" else int(math.ceil(number))
        elif key == "disk" and platform == "kubernetes":  # MiB on Kubernetes, GiB in @resources
            out["disk"] = int(math.ceil(_number(platform, step, key, value) / 1024))
        elif key == "ephemeral_storage" and platform == "batch":  # GiB, as @resources
            out["disk"] = int(math.ceil(_number(platform, step, key, value)))
        elif key in refused:
            raise FlowDefinitionError(
                f"@{platform}({key}=...) on step {step!r} has no portable meaning: a Lamina flow runs on "
                f"whichever stack is chosen. Use {refused[key]}, and remove {key}= from the decorator."
            )
        else:
            known = ", ".join(
                ["cpu", "gpu", "memory", "disk" if platform == "kubernetes" else "ephemeral_storage"]
            )
            raise FlowDefinitionError(
                f"@{platform} on step {step!r}: unknown setting {key!r}; the portable ones are {known}."
            )
    return out


def merge_resources(a: dict[str, Any] | None, b: dict[str, Any] | None) -> dict[str, Any]:
    """Two resource requests as one: the larger of each number (Metaflow combines them so)."""
    out = {"cpu": None, "memory": None, "gpu": None, "disk": None}
    for request in (a or {}, b or {}):
        for key, value in request.items():
            if value is not None:
                out[key] = value if out[key] is None else max(out[key], value)
    return out


def _platform(platform: str, func: Any, kwargs: dict[str, Any]) -> Any:
    from .decorators import _decorations

    def apply(f: F) -> F:
        request = portable_resources(platform, f.__name__, kwargs)
        deco = _decorations(f)
        deco["resources"] = merge_resources(deco.get("resources"), request)
        deco.setdefault("platform", []).append(platform)
        return f

    return apply(func) if func is not None else apply


def batch(func: F | None = None, **settings: Any) -> Any:
    """Metaflow's ``@batch``: ``cpu``, ``gpu``, ``memory`` (MiB) and ``ephemeral_storage`` (GiB)
    become ``@resources`` on whatever stack runs the flow; AWS Batch-only settings are refused."""
    return _platform("batch", func, settings)


def kubernetes(func: F | None = None, **settings: Any) -> Any:
    """Metaflow's ``@kubernetes``: ``cpu``, ``gpu``, ``memory`` and ``disk`` (MiB) become
    ``@resources`` on whatever stack runs the flow; Kubernetes-only settings are refused."""
    return _platform("kubernetes", func, settings)


def notice_platforms(step_decorations: dict[str, dict[str, Any]], stack_name: str) -> None:
    """One line on stderr, once per process and platform, saying what ``@batch``/``@kubernetes``
    mean here."""
    for step, deco in step_decorations.items():
        for platform in deco.get("platform", []):
            if platform in _noticed:
                continue
            _noticed.add(platform)
            res = {k: v for k, v in (deco.get("resources") or {}).items() if v is not None}
            args = ", ".join(f"{k}={v:g}" for k, v in res.items())
            sys.stderr.write(
                f"lamina: @{platform} (step '{step}') is read as @resources({args}), "
                f"run on the stack's compute ({stack_name})\n"
            )


# -- --with ---------------------------------------------------------------------------------

WITH_NAMES = ("resources", "retry", "catch", "timeout", "batch", "kubernetes", "environment", "card")


def _value(raw: str) -> Any:
    lowered = raw.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    for kind in (int, float):
        try:
            return kind(raw)
        except ValueError:
            pass
    return raw


def parse_with(text: str) -> tuple[str, dict[str, Any]]:
    """``"kubernetes:cpu=2,memory=4000"`` -> ``("kubernetes", {"cpu": 2, "memory": 4000})``."""
    from ..errors import ParameterError

    name, _, rest = text.partition(":")
    name = name.strip()
    if name not in WITH_NAMES:
        raise ParameterError(
            f"--with {text!r}: unknown decorator {name!r}; --with takes {', '.join(WITH_NAMES)} "
            "(e.g. --with retry:times=2 or --with kubernetes:cpu=2,memory=4000)."
        )
    kwargs: dict[str, Any] = {}
    for item in filter(None, (part.strip() for part in rest.split(","))):
        key, eq, raw = item.partition("=")
        if not eq or not key.strip():
            raise ParameterError(f"--with {text!r}: write NAME:KEY=VALUE,KEY=VALUE, got {item!r}.")
        kwargs[key.strip()] = _value(raw)
    return name, kwargs


def with_decorations(step: str, specs: list[str]) -> dict[str, Any]:
    """What ``--with`` specs add to one step, as that step's decorator dict would hold it."""
    from . import decorators

    def target() -> None:
        """a stand-in step that receives the decorators"""

    target.__name__ = step
    for text in specs:
        name, kwargs = parse_with(text)
        if name == "card":
            from ..cards import card as factory
        else:
            factory = {"batch": batch, "kubernetes": kubernetes}.get(name) or getattr(decorators, name)
        try:
            factory(**kwargs)(target)
        except TypeError as exc:
            from ..errors import ParameterError

            raise ParameterError(f"--with {text!r}: {exc}") from None
    return decorators.decorations(target)


def apply_with(own: dict[str, Any], added: dict[str, Any]) -> dict[str, Any]:
    """A step's decorators with ``--with`` ones added: its own win; resources combine."""
    out = dict(added)
    out.update(own)
    if "resources" in own or "resources" in added:
        out["resources"] = merge_resources(own.get("resources"), added.get("resources"))
    if "platform" in own or "platform" in added:
        out["platform"] = list(own.get("platform", [])) + list(added.get("platform", []))
    return out
