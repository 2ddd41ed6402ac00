"""The one error hierarchy of Lamina.

Every message says what happened, where (file, table, key, step, line) and what to do. The
command line prints a ``LaminaError`` as one short paragraph without a traceback and exits with
``exit_code``.
"""

from __future__ import annotations


class LaminaError(Exception):
    """Base of every error Lamina raises on purpose."""

    exit_code = 1


class ProfileError(LaminaError):
    """A stack profile is malformed: bad TOML, unknown key, wrong type, unknown adapter."""

    exit_code = 2


class UnknownStack(ProfileError):
    """No profile of that name is registered."""


class PluginError(LaminaError):
    """A plugin failed to import, to register, or does not match its layer's hookspec."""

    exit_code = 2


class AdapterNotInstalled(LaminaError):
    """An adapter's optional dependencies are missing; the message names the extra to install."""

    exit_code = 2


class FlowDefinitionError(LaminaError):
    """A flow's graph or parameters are invalid; the message names the step and line."""

    exit_code = 2


class ParameterError(FlowDefinitionError):
    """A parameter is missing, unknown or of the wrong type."""


class ResourceUnsatisfiable(LaminaError):
    """A step asks for resources the stack's compute cannot provide."""

    exit_code = 2


class TransientError(LaminaError):
    """A failure worth retrying (throttling, a dropped connection, a busy lock).

    Adapters may raise this directly, or declare their SDK's transient exception types through
    their layer's ``*_transient_errors`` hook.
    """


class TaskFailed(LaminaError):
    """A task raised, crashed or timed out."""

    def __init__(self, message: str, *, step: str = "", task_id: str = "", traceback: str = "") -> None:
        super().__init__(message)
        self.step = step
        self.task_id = task_id
        self.traceback = traceback


class RunFailed(LaminaError):
    """A run stopped because a task failed; the message says how to resume."""


class ArtifactNotFound(LaminaError, AttributeError):
    """A task has no artifact of that name."""


class DataError(LaminaError):
    """A data-layer request failed (unknown table, bad SQL, wrong input type)."""


class NotFound(LaminaError, KeyError):
    """A flow, run, step or task was not found in the metadata store."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else ""


class StoreError(LaminaError):
    """The blob store or metadata store failed or holds inconsistent records."""


class RunInterrupted(LaminaError, KeyboardInterrupt):
    """A run was stopped by Ctrl-C (SIGINT) or SIGTERM; its finished tasks are kept for ``resume``.

    Exits 130 for SIGINT and 143 for SIGTERM (128 + the signal), as shells and supervisors expect.
    It is also a ``KeyboardInterrupt``, so code that stops on Ctrl-C (a notebook) still does.
    """

    exit_code = 130

    def __init__(self, message: str, signum: int = 2) -> None:
        super().__init__(message)
        self.signum = signum
        self.exit_code = 128 + signum


class EnvironmentBuildError(LaminaError):
    """A step's ``@pypi``/``@conda`` environment could not be built (a package or version that the
    package index does not have, no network to it)."""

    exit_code = 2
