"""Finding profiles by name: the project's, the user's, then those plugins ship."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from ..errors import PluginError, ProfileError, UnknownStack
from .config import user_config_dir
from .profile import StackProfile, load_profile_file, validate_name


@dataclass(frozen=True)
class ProfileEntry:
    name: str
    path: Path
    origin: str
    """``project``, ``user`` or the name of the plugin that ships it (``builtin`` for ours)."""


def project_stacks_dir(project_dir: Path) -> Path:
    return project_dir / ".lamina" / "stacks"


def user_stacks_dir() -> Path:
    return user_config_dir() / "stacks"


def plugin_profiles() -> dict[str, ProfileEntry]:
    from ..discovery import get_registry

    registry = get_registry()
    found: dict[str, ProfileEntry] = {}
    for impl in reversed(registry.pm.hook.lamina_stack_profiles.get_hookimpls()):
        plugin = registry.pm.get_name(impl.plugin) or "?"
        try:
            offered: dict[str, Path] = dict(cast(Any, impl.function()) or {})
        except Exception as exc:  # a plugin's bug, reported with its name rather than a traceback
            raise PluginError(
                f"plugin {plugin!r} failed to list its stack profiles (lamina_stack_profiles): "
                f"{type(exc).__name__}: {exc}. Fix or uninstall it, or skip it with LAMINA_DISABLE_PLUGINS={plugin}"
            ) from exc
        for name, path in offered.items():
            found.setdefault(name, ProfileEntry(name, Path(path), plugin))
    return found


def all_profiles(project_dir: Path) -> dict[str, ProfileEntry]:
    """Every known profile by name; project overrides user overrides plugins."""
    entries = dict(plugin_profiles())
    for origin, folder in (("user", user_stacks_dir()), ("project", project_stacks_dir(project_dir))):
        if folder.is_dir():
            for path in sorted(folder.glob("*.toml")):
                entries[path.stem] = ProfileEntry(path.stem, path, origin)
    return dict(sorted(entries.items()))


def load_profile(name: str, project_dir: Path, *, reason: str = "") -> StackProfile:
    """The profile ``name``; ``reason`` (a config file, ``LAMINA_STACK``) says who chose it."""
    entries = all_profiles(project_dir)
    entry = entries.get(name)
    if entry is None:
        from ..discovery import disabled_plugins

        known = ", ".join(entries) or "none"
        blocked = disabled_plugins()
        raise UnknownStack(
            f"no stack named {name!r}{f' (selected by {reason})' if reason else ''}. Known stacks: {known}"
            + (
                f" (plugins disabled by LAMINA_DISABLE_PLUGINS, with the stacks they ship: {', '.join(sorted(blocked))})"
                if blocked
                else ""
            )
            + f". Register one with `lamina stack register {name} --file PROFILE.toml`"
            + (", or pick another with `lamina stack use NAME`." if reason else ".")
        )
    return load_profile_file(entry.path, name=name, origin=entry.origin)


def register_profile(name: str, source: Path, project_dir: Path, user: bool) -> Path:
    validate_name(name)
    folder = user_stacks_dir() if user else project_stacks_dir(project_dir)
    folder.mkdir(parents=True, exist_ok=True)
    dest = folder / f"{name}.toml"
    tmp = dest.with_suffix(".toml.tmp")
    shutil.copyfile(source, tmp)
    os.replace(tmp, dest)
    return dest


def remove_profile(name: str, project_dir: Path) -> Path:
    for folder in (project_stacks_dir(project_dir), user_stacks_dir()):
        path = folder / f"{name}.toml"
        if path.is_file():
            path.unlink()
            return path
    if name in plugin_profiles():
        raise ProfileError(
            f"stack {name!r} ships with a plugin and cannot be removed; register your own to override it."
        )
    raise UnknownStack(
        f"no registered stack named {name!r} in {project_stacks_dir(project_dir)} or {user_stacks_dir()}."
    )
