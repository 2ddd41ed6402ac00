"""The adapter boundary holds: plugins and contrib import only Lamina's public modules, and
only the versioning core knows the blob store's key layout."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PUBLIC = {
    "lamina",
    "lamina.adapter",
    "lamina.hookspecs",
    "lamina.models",
    "lamina.errors",
    "lamina.redaction",
    "lamina.data_tools",
}


def _imports(path: Path, package: str) -> list[tuple[int, str]]:
    """``(line, absolute module)`` of every import in a source file of ``package``."""
    tree = ast.parse(path.read_text(), str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            found.append((node.lineno, module))
    return found


def _plugin_files() -> list[tuple[Path, str, str]]:
    """``(file, the file's package, the plugin's own package)`` for plugins/ and contrib/."""
    out = []
    for path in sorted((REPO / "plugins").rglob("*.py")):
        rel = path.relative_to(REPO / "plugins").with_suffix("")
        parts = rel.parts[:-1] if rel.name != "__init__" else rel.parts[:-1]
        package = ".".join(["lamina", "plugins", *parts]) if rel.name != "__init__" else ".".join(
            ["lamina", "plugins", *rel.parts[:-1]]
        )
        own = ".".join(["lamina", "plugins", rel.parts[0]]) if len(rel.parts) > 1 else f"lamina.plugins.{rel.name}"
        out.append((path, package, own))
    for path in sorted((REPO / "contrib").rglob("src/*/**/*.py")):
        src = next(p for p in path.parents if p.name == "src")
        rel = path.relative_to(src).with_suffix("")
        package = ".".join(rel.parts[:-1]) if rel.name != "__init__" else ".".join(rel.parts[:-1])
        out.append((path, package, rel.parts[0]))
    return out


@pytest.mark.parametrize("path,package,own", _plugin_files(), ids=lambda v: str(v)[-60:] if isinstance(v, Path) else "")
def test_plugins_and_contrib_import_only_public_lamina_modules(path: Path, package: str, own: str) -> None:
    for line, module in _imports(path, package):
        if not (module == "lamina" or module.startswith("lamina.")):
            continue
        if module in PUBLIC or module == own or module.startswith(own + ".") or module == "lamina.plugins":
            continue
        if module.startswith("lamina.testing") and "/tests/" in str(path):
            continue
        pytest.fail(
            f"{path.relative_to(REPO)}:{line} imports {module}, which is internal to Lamina: "
            f"adapters build on {', '.join(sorted(PUBLIC))} (see docs/writing-an-adapter.md)"
        )


def test_only_the_versioning_core_knows_the_key_layout() -> None:
    """Records, logs and pointers go through the run store; nobody else builds their keys."""
    offenders = []
    for root in ("core", "plugins", "contrib"):
        for path in sorted((REPO / root).rglob("*.py")):
            rel = path.relative_to(REPO)
            if rel.parts[:2] == ("core", "versioning") or rel.parts == ("core", "adapter.py"):
                continue
            source = path.read_text()
            if "versioning.layout" in source or "versioning import layout" in source:
                offenders.append(str(rel))
    assert not offenders, f"these modules use the private key layout: {offenders}; use lamina.versioning.runstore"
