"""Building Lamina's wheels and a clean virtual environment with them, for the packaging tests.

The environment is built offline and in seconds, without touching the checkout:

1. the working tree is copied (without .venv, .git and build output) and both distributions
   are built from the copy with ``pip wheel --no-build-isolation``: the wheel ``pip install .``
   builds, with no build/ or *.egg-info left in the checkout;
2. a virtual environment is created without pip and without the system site-packages;
3. Lamina's runtime dependencies, as the built wheels declare them, are taken from the
   interpreter running the tests: every file of their distributions (and of theirs,
   recursively) is linked into one folder that the new environment has on its path through a
   .pth file. Nothing else of this environment is visible there: not the editable lamina, not
   lamina-sqlite, not the test tools;
4. the wheels are installed into it with this interpreter's pip (``pip --python``).

The fixtures that use these live in tests/conftest.py. This module has a name of its own because
the test folders have no ``__init__.py``: ``from conftest import ...`` would find whichever
conftest was imported last.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

COPY_IGNORE = shutil.ignore_patterns(
    ".git",
    ".venv",
    "venv",
    "build",
    "dist",
    "*.egg-info",
    "__pycache__",
    ".lamina",
    ".mypy_cache",
    ".ruff_cache",
    ".pytest_cache",
    "node_modules",
    ".anchor-venv",
    ".work",
)
SQLITE_CONTRIB = Path("contrib") / "lamina-sqlite"


def run_checked(args: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    """Run a build or install step; on failure, fail the test with its whole output."""
    result = subprocess.run(args, capture_output=True, text=True, **kwargs)  # type: ignore[call-overload]
    if result.returncode != 0:
        pytest.fail(
            f"{' '.join(map(str, args))} exited {result.returncode}\n"
            f"--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}",
            pytrace=False,
        )
    return result


def build_wheel(source: Path, dest: Path) -> Path:
    """``pip wheel`` of one source tree, offline and without build isolation."""
    before = set(dest.glob("*.whl"))
    run_checked(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--quiet",
            "--wheel-dir",
            str(dest),
            str(source),
        ]
    )
    (wheel,) = set(dest.glob("*.whl")) - before
    return wheel


@dataclass(frozen=True)
class Wheels:
    lamina: Path
    sqlite: Path


def wheel_requirements(wheel: Path) -> list[str]:
    """The ``Requires-Dist`` lines of a built wheel: what it needs, as its source says now."""
    from email.parser import Parser

    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        meta = Parser().parsestr(archive.read(name).decode())
    return meta.get_all("Requires-Dist") or []


def _runtime_names(requirements: list[str]) -> list[str]:
    """Names of the requirements needed at run time (no extras) on this platform."""
    from packaging.requirements import Requirement

    names = []
    for line in requirements:
        requirement = Requirement(line)
        if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
            names.append(requirement.name)
    return names


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def dependency_closure(requirements: list[str], exclude: set[str]) -> list[metadata.Distribution]:
    """The installed distributions that ``requirements`` need, recursively, except ``exclude``."""
    seen: dict[str, metadata.Distribution] = {}
    pending = _runtime_names(requirements)
    while pending:
        name = _normalize(pending.pop())
        if name in seen or name in exclude:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            pytest.fail(f"{name} is a dependency of Lamina but is not installed here", pytrace=False)
        seen[name] = dist
        pending.extend(_runtime_names(dist.requires or []))
    return list(seen.values())


def link_distributions(dists: list[metadata.Distribution], dest: Path) -> None:
    """Link every top-level file or folder of ``dists`` (modules, dist-info, bundled libs) into ``dest``."""
    dest.mkdir()
    for dist in dists:
        files = dist.files
        if not files:
            pytest.fail(
                f"{dist.metadata['Name']} has no RECORD: cannot tell which files are its", pytrace=False
            )
        for top in {f.parts[0] for f in files if f.parts and f.parts[0] not in ("..", "__pycache__")}:
            source = Path(str(dist.locate_file(top)))
            if source.exists() and not (dest / top).exists():
                (dest / top).symlink_to(source)


@dataclass(frozen=True)
class CleanVenv:
    """A virtual environment with only Lamina, lamina-sqlite and their dependencies installed."""

    root: Path
    config_dir: Path

    @property
    def bin(self) -> Path:
        return self.root / "bin"

    @property
    def python(self) -> Path:
        return self.bin / "python"

    def env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """The environment a user's shell would give: this venv first, no Lamina settings."""
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("LAMINA_", "PYTHON", "VIRTUAL_ENV"))
        }
        env.update(
            PATH=f"{self.bin}{os.pathsep}{env.get('PATH', '')}",
            VIRTUAL_ENV=str(self.root),
            PYTHONNOUSERSITE="1",
            LAMINA_CONFIG_DIR=str(self.config_dir),
        )
        env.update(extra or {})
        return env

    def run(
        self, *args: str | Path, cwd: Path, env: Mapping[str, str] | None = None, timeout: float = 240
    ) -> subprocess.CompletedProcess[str]:
        """Run a command of the venv (``lamina``, ``python``...) in ``cwd``; never raises on failure."""
        command = [str(a) for a in args]
        if not os.path.isabs(command[0]) and (self.bin / command[0]).exists():
            command[0] = str(self.bin / command[0])
        return subprocess.run(
            command, cwd=cwd, env=self.env(env), capture_output=True, text=True, timeout=timeout
        )


def create_clean_venv(base: Path, wheels: Wheels) -> CleanVenv:
    """A virtual environment in ``base`` with the two wheels and their dependencies (see above)."""
    root = base / "venv"
    venv.EnvBuilder(with_pip=False, system_site_packages=False, symlinks=True).create(root)
    deps = base / "deps"
    requirements = wheel_requirements(wheels.lamina) + wheel_requirements(wheels.sqlite)
    link_distributions(dependency_closure(requirements, exclude={"lamina", "lamina-sqlite"}), deps)
    purelib = Path(
        sysconfig.get_path("purelib", vars={"base": str(root), "platbase": str(root)}, scheme="venv")
    )
    (purelib / "_lamina_test_dependencies.pth").write_text(f"{deps}\n")
    python = root / "bin" / "python"
    run_checked(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "--no-deps",
            "--no-index",
            "--quiet",
        ]
        + [str(wheels.lamina), str(wheels.sqlite)]
    )
    return CleanVenv(root=root, config_dir=base / "user-config")
