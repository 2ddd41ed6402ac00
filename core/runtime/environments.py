"""Build and use step environments (``@pypi``/``@conda``), on any compute.

An environment is a virtual environment of the running interpreter, under
``<cache>/envs/<key>-<interpreter>``, holding exactly the step's requirement set, installed with
``uv`` when it is installed, else with ``pip``. Lamina itself is not installed into it: a ``.pth``
file adds the running environment's site-packages *after* the environment's own, so the step's
packages win, Lamina and its dependencies import as in the driver, and nothing else is new.

The driver builds every environment of a run before the first task (so a bad package name fails
at once and tasks start fast). A task whose spec carries an environment, and that is not already
running in it, starts ``ENVPYTHON -m lamina task`` and waits: this happens inside the one task
entry point, so the local worker, Dask and every cloud job get it alike; a remote container
builds the environment from its own cache or the index on first use.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import EnvironmentBuildError, LaminaError
from ..models import StepEnvironment

if TYPE_CHECKING:
    from ..models import TaskSpec

ENV_KEY_VARIABLE = "LAMINA_STEP_ENVIRONMENT"
"""Set in a task process that runs inside its step's environment (the environment's key)."""
READY = "lamina-environment.json"


def environments_dir() -> Path:
    from ..versioning.artifacts import default_cache_dir

    return default_cache_dir() / "envs"


def _interpreter_tag() -> str:
    """The running interpreter and its site-packages: an environment is built for both."""
    base = "|".join([sys.version, os.path.realpath(sys.executable), *_base_site_dirs()])
    return (
        f"py{sys.version_info.major}{sys.version_info.minor}-{hashlib.sha256(base.encode()).hexdigest()[:8]}"
    )


def _base_site_dirs() -> list[str]:
    paths = sysconfig.get_paths()
    return list(dict.fromkeys(os.path.realpath(paths[k]) for k in ("purelib", "platlib")))


def environment_dir(env: StepEnvironment) -> Path:
    return environments_dir() / f"{env.key[:16]}-{_interpreter_tag()}"


def _python(target: Path) -> Path:
    return target / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def python_notice(env: StepEnvironment, step: str) -> str | None:
    """Why the environment's Python differs from the one asked for, or ``None``."""
    running = ".".join(str(v) for v in sys.version_info[:3])
    if env.python and not (running + ".").startswith(env.python.rstrip(".") + "."):
        return (
            f"lamina: step '{step}' asks for Python {env.python}; its environment uses this "
            f"interpreter, Python {running} (every task of a run runs on the driver's Python)"
        )
    return None


def ensure_environment(env: StepEnvironment, step: str = "") -> str:
    """Build the environment unless it exists; return its interpreter's path. Idempotent, and
    safe to call from several processes at once (a file lock serialises builds).

    :raises EnvironmentBuildError: the installer failed; the message carries its last lines.
    """
    target = environment_dir(env)
    python = _python(target)
    if (target / READY).exists():
        return str(python)
    target.parent.mkdir(parents=True, exist_ok=True)
    with _locked(target.with_name(target.name + ".lock")):
        if (target / READY).exists():
            return str(python)
        if target.exists():  # a build that died half-way
            shutil.rmtree(target)
        try:
            tool = _build(target, env, step)
        except BaseException:
            shutil.rmtree(target, ignore_errors=True)
            raise
        record = {**env.model_dump(mode="json"), "installer": tool, "python_used": sys.version.split()[0]}
        (target / READY).write_text(json.dumps(record, indent=2))
    return str(python)


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _uv() -> str | None:
    found = shutil.which("uv")
    if found:
        return found
    try:
        from uv import find_uv_bin  # the `uv` distribution on PyPI ships its binary so

        return str(find_uv_bin())
    except (ImportError, FileNotFoundError):
        return None


def _build(target: Path, env: StepEnvironment, step: str) -> str:
    python = _python(target)
    uv = _uv()
    child_env = dict(os.environ)
    # trust the system's certificates, as pip does: a company's proxy to the index signs with its own CA
    child_env.setdefault("UV_NATIVE_TLS", "1")
    if uv:
        steps = [[uv, "venv", "--quiet", "--python", sys.executable, str(target)]]
        if env.requirements:
            steps.append([uv, "pip", "install", "--quiet", "--python", str(python), *env.requirements])
    else:
        steps = [[sys.executable, "-m", "venv", "--without-pip", str(target)]]
        if env.requirements:
            steps.append(
                [
                    sys.executable,
                    "-m",
                    "pip",
                    "--python",
                    str(python),
                    "install",
                    "--quiet",
                    *env.requirements,
                ]
            )
    for command in steps:
        done = subprocess.run(command, capture_output=True, text=True, env=child_env)
        if done.returncode != 0:
            tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-8:])
            raise EnvironmentBuildError(
                f"step '{step}': could not build its @{env.kind} environment ({', '.join(env.requirements) or 'no packages'}) "
                f"with {'uv' if uv else 'pip'}:\n{tail}\nCheck each package's name and version on the Python index."
            )
    _link_base(python)
    return "uv" if uv else "pip"


def _link_base(python: Path) -> None:
    """Make Lamina and the driver's packages importable after the environment's own."""
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    lines = [f"import site; site.addsitedir({d!r})" for d in _base_site_dirs()]
    Path(purelib, "_lamina_base.pth").write_text("\n".join(lines) + "\n")


def run_in_environment(spec: TaskSpec, echo: bool) -> int:
    """Run the task in its step's environment: build it if needed, then ``ENVPYTHON -m lamina
    task`` with the same spec. Returns that process's exit code; a build failure is recorded as
    the task's failure."""
    from .task import EXIT_FAILED

    assert spec.environment is not None
    try:
        python = ensure_environment(spec.environment, spec.step)
    except LaminaError as exc:
        _record_failure(spec, str(exc))
        return EXIT_FAILED
    fd, path = tempfile.mkstemp(prefix="lamina-task-", suffix=".json")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(spec.model_dump_json())
        command = [python, "-m", "lamina", "task", "--spec-file", path]
        if not echo:
            command.append("--quiet")
        sys.stdout.flush()
        sys.stderr.flush()
        env = {**os.environ, ENV_KEY_VARIABLE: spec.environment.key}
        from .supervise import PREFIXED_BY_PARENT, supervised

        if supervised():  # this process's parent shows the output with the task's prefix already
            env[PREFIXED_BY_PARENT] = "1"
        return subprocess.run(command, env=env).returncode
    finally:
        os.unlink(path)


def _record_failure(spec: TaskSpec, message: str) -> None:
    from ..models import TaskRecord
    from ..versioning.runstore import RunStore
    from .task import task_stack

    RunStore(task_stack(spec).versioning).save_record(TaskRecord.begin(spec, error=message))


def in_environment(spec: TaskSpec) -> bool:
    return spec.environment is None or os.environ.get(ENV_KEY_VARIABLE) == spec.environment.key
