"""The wheel holds the whole package, and installs into a clean environment that works.

setuptools maps core/ -> lamina, plugins/ -> lamina.plugins and stacks/ -> lamina.stacks; a
folder left out of the package list, or a data file left out of package-data, would vanish
from the wheel without any error. So the built wheel is compared with the source tree.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

from packaging_helpers import SQLITE_CONTRIB, CleanVenv, Wheels

# source folder -> where its files land in the wheel
PACKAGE_DIRS = {"core": "lamina", "plugins": "lamina/plugins", "stacks": "lamina/stacks"}
MIGRATIONS = Path("core") / "versioning" / "migrations"
UI_STATIC = Path("core") / "ui" / "static"


def wheel_files(wheel: Path) -> set[str]:
    with zipfile.ZipFile(wheel) as archive:
        return {name for name in archive.namelist() if not name.endswith("/")}


def mapped(source_root: Path, path: Path) -> str:
    relative = path.relative_to(source_root)
    return "/".join([PACKAGE_DIRS[relative.parts[0]], *relative.parts[1:]])


def expected_files(source: Path) -> set[str]:
    """What the source tree says must be in the wheel."""
    wanted = {"lamina/py.typed"}
    for folder in ("core", "plugins"):
        wanted |= {mapped(source, p) for p in (source / folder).rglob("*.py") if "__pycache__" not in p.parts}
    wanted |= {mapped(source, p) for p in (source / "stacks").glob("*.toml")}
    for data_dir in (MIGRATIONS, UI_STATIC):
        wanted |= {
            mapped(source, p)
            for p in (source / data_dir).rglob("*")
            if p.is_file() and "__pycache__" not in p.parts
        }
    return wanted


def test_the_wheel_holds_every_module_profile_and_migration(source_copy: Path, wheels: Wheels) -> None:
    files = wheel_files(wheels.lamina)
    wanted = expected_files(source_copy)
    assert {  # the walk works
        "lamina/stacks/local.toml",
        "lamina/versioning/migrations/env.py",
        "lamina/ui/static/index.html",
        "lamina/ui/static/app.js",
    } <= wanted
    missing = sorted(wanted - files)
    assert not missing, "missing from the wheel (add them to setup.py or package-data):\n  " + "\n  ".join(
        missing
    )


def test_the_wheel_installs_only_the_lamina_package(wheels: Wheels) -> None:
    top_level = {name.split("/")[0] for name in wheel_files(wheels.lamina)}
    assert top_level == {"lamina", "lamina-0.1.0.dist-info"}  # no stray core/ or plugins/ package
    with zipfile.ZipFile(wheels.lamina) as archive:
        entry_points = archive.read("lamina-0.1.0.dist-info/entry_points.txt").decode()
    assert "lamina = lamina.cli.main:main" in entry_points


def test_the_contrib_wheel_holds_its_profile_and_entry_point(source_copy: Path, wheels: Wheels) -> None:
    files = wheel_files(wheels.sqlite)
    source = source_copy / SQLITE_CONTRIB / "src"
    modules = {p.relative_to(source).as_posix() for p in source.rglob("*.py")}
    assert modules | {"lamina_sqlite/py.typed", "lamina_sqlite/stacks/sqlite-local.toml"} <= files
    with zipfile.ZipFile(wheels.sqlite) as archive:
        entry_points = archive.read("lamina_sqlite-0.1.0.dist-info/entry_points.txt").decode()
    assert "[lamina]\nsqlite = lamina_sqlite.plugin" in entry_points


def test_the_installed_package_runs_from_the_clean_environment(
    source_copy: Path, clean_venv: CleanVenv, tmp_path: Path
) -> None:
    probe = """
import importlib.resources, json, lamina
from lamina.versioning import metadata
root = importlib.resources.files("lamina")
print(json.dumps({
    "file": lamina.__file__,
    "stacks": sorted(p.name for p in (root / "stacks").iterdir() if p.name.endswith(".toml")),
    "typed": (root / "py.typed").is_file(),
    "migrations": str(metadata.MIGRATIONS_DIR),
}))
"""
    result = clean_venv.run("python", "-c", probe, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    assert Path(found["file"]).is_relative_to(clean_venv.root), found["file"]
    assert found["stacks"] == sorted(p.name for p in (source_copy / "stacks").glob("*.toml"))
    assert "local.toml" in found["stacks"]
    assert found["typed"]
    migrations = Path(found["migrations"])
    assert migrations.is_relative_to(clean_venv.root)
    assert (migrations / "env.py").is_file() and any((migrations / "versions").glob("*.py"))

    version = clean_venv.run("lamina", "--version", cwd=tmp_path)
    assert (version.returncode, version.stdout.strip()) == (0, "lamina 0.1.0")
    stacks = clean_venv.run("lamina", "stack", "list", cwd=tmp_path)
    assert stacks.returncode == 0, stacks.stderr
    assert "local" in stacks.stdout
