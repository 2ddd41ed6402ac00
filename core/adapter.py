"""The adapter author's toolkit: what Lamina's own adapters and third parties' build on.

Adapters (``lamina.plugins.*`` and any distribution with a ``lamina`` entry point) import only
``lamina``, this module, ``lamina.hookspecs``, ``lamina.models``, ``lamina.errors``,
``lamina.redaction``, ``lamina.data_tools``, their own package's modules and, in their tests,
``lamina.testing``. Everything else in the core is private and may change between releases; a
test keeps first-party plugins and ``contrib/`` to these modules.

Names are imported on first use, so ``import lamina.adapter`` costs nothing.

Settings and hooks
    ``AdapterSettings`` (base of every adapter's settings: unknown keys are errors, an empty
    string for a setting whose default is ``None`` means unset, as ``${VAR:-}`` gives),
    ``AdapterContext``, ``hookimpl``, ``CONTRACTS`` and ``CONTRACT_VERSION`` (see
    :mod:`lamina.hookspecs`).

Compute adapters
    ``EXIT_OK``, ``EXIT_FAILED``, ``EXIT_INFRA`` (a task's exit codes: its step succeeded; its step
    failed, and its record says why; the task could not run at all), ``run_task_command(argv)``
    (``python -m lamina task ARGV`` in this process), ``task_command(python)`` (the command line
    that runs one task from ``--spec-file``), ``serve_worker`` (the warm worker that forks a child
    per task: ``python -m lamina worker`` runs it, over two pipes of JSON lines), ``remote_snapshot(stack)`` (the stack a remote task gets: non-secret
    ``${VAR}`` resolved here, secrets left to the task's own environment), ``machine()`` (cores,
    memory, GPUs), ``wait_until(probe, timeout=, interval=)``, ``pack(obj)``/``unpack(chunks)``
    (a JSON object in argument-sized chunks, for platforms that cap an argument's length).

Deployers (orchestration adapters)
    ``deploy_template(descriptor)``, ``task_arguments(descriptor, step)`` (a deployed task's
    command after the interpreter; the deployer appends ``--run-id``, ``--attempt``, ``--frame``),
    ``run_key_template(kind, flow, step)`` (a run store key with ``{run_id}``/``{task_id}``/
    ``{attempt}`` placeholders, for a definition that must name one), ``check_trigger_parameters``,
    ``new_run_id()``, ``parse_frame``, ``deployment_name(flow, project, branch, max_length=...)``
    (the one rule that names a deployed resource, cut to a service's limits),
    ``current_user()`` (whose a triggered run is).

Versioning adapters
    ``OWNED_TEMP_SUFFIX`` (a ``versioning_put(path=...)`` file the caller abandons: a backend on
    the same filesystem may move it into place), ``replacing(path)`` and ``temp_sibling(path)``
    (atomic local files), ``round_trip(adapter)`` and ``ping_database(url)`` (self-check probes).

Emulators
    ``free_port()``, ``wait_for_port(port, ...)``, ``start_group(cmd)``/``stop_group(proc)`` (a
    process group that nothing outlives), ``Job`` and ``JobRunner`` (runs the jobs a stand-in
    received as the cloud would), ``EmulatorInfo`` (what a plugin's ``lamina_emulators`` hook
    answers).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS: dict[str, str] = {
    "AdapterSettings": "lamina.models",
    "AdapterContext": "lamina.hookspecs",
    "hookimpl": "lamina.hookspecs",
    "CONTRACTS": "lamina.hookspecs",
    "CONTRACT_VERSION": "lamina.hookspecs",
    "EmulatorInfo": "lamina.hookspecs",
    "CommandInfo": "lamina.hookspecs",
    "EXIT_OK": "lamina.runtime.task",
    "EXIT_FAILED": "lamina.runtime.task",
    "EXIT_INFRA": "lamina.runtime.task",
    "run_task_command": "lamina.runtime.task",
    "task_command": "lamina.runtime.task",
    "serve_worker": "lamina.runtime.worker",
    "remote_snapshot": "lamina.stack.profile",
    "machine": "lamina.runtime.platform",
    "wait_until": "lamina.runtime.platform",
    "pack": "lamina.runtime.deployed",
    "unpack": "lamina.runtime.deployed",
    "deploy_template": "lamina.runtime.deployed",
    "task_arguments": "lamina.runtime.deployed",
    "check_trigger_parameters": "lamina.runtime.deployed",
    "parse_frame": "lamina.runtime.deployed",
    "run_key_template": "lamina.versioning.runstore",
    "deployment_name": "lamina.runtime.branches",
    "current_user": "lamina.runtime.scheduler",
    "new_run_id": "lamina.versioning.runstore",
    "OWNED_TEMP_SUFFIX": "lamina.versioning.layout",
    "replacing": "lamina.versioning.store_tools",
    "temp_sibling": "lamina.versioning.store_tools",
    "round_trip": "lamina.versioning.store_tools",
    "ping_database": "lamina.versioning.store_tools",
    "free_port": "lamina.emulation",
    "wait_for_port": "lamina.emulation",
    "start_group": "lamina.emulation",
    "stop_group": "lamina.emulation",
    "Job": "lamina.emulation",
    "JobRunner": "lamina.emulation",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    pass


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'lamina.adapter' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
