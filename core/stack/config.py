"""Where a project is, where the user's configuration is, and which stack runs."""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path

from ..errors import ProfileError

DEFAULT_STACK = "local"


def find_project_dir(start: Path | None = None) -> Path:
    """The nearest directory, from ``start`` upward, holding ``.lamina/``; else ``start``."""
    env = os.environ.get("LAMINA_PROJECT_DIR")
    if env:
        return Path(env).resolve()
    here = (start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if (candidate / ".lamina").is_dir():
            return candidate
    return here


def user_config_dir() -> Path:
    """``$LAMINA_CONFIG_DIR``, else ``$XDG_CONFIG_HOME/lamina``, else ``~/.config/lamina``."""
    env = os.environ.get("LAMINA_CONFIG_DIR")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CONFIG_HOME")
    return (Path(xdg) if xdg else Path.home() / ".config") / "lamina"


def project_config_file(project_dir: Path) -> Path:
    return project_dir / ".lamina" / "config.toml"


def user_config_file() -> Path:
    return user_config_dir() / "config.toml"


def read_config(path: Path) -> dict:
    if not path.is_file():
        return {}
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"{path}: not valid TOML ({exc}). Fix the file or delete it.") from exc
    stack = data.get("stack")
    if stack is not None and not isinstance(stack, str):
        raise ProfileError(f"{path}: key 'stack' must be a string naming a stack, got {stack!r}.")
    return data


_STACK_LINE = re.compile(r"^[ \t]*stack[ \t]*=.*$", re.M)
_TABLE_LINE = re.compile(r"^[ \t]*\[", re.M)


def write_stack_choice(path: Path, name: str) -> None:
    """Set the top-level ``stack`` key, keeping the file's other keys, tables and comments."""
    read_config(path)  # refuse to edit a file that is not valid TOML
    text = path.read_text() if path.is_file() else ""
    line = f"stack = {_toml_value(name)}"
    first_table = _TABLE_LINE.search(text)
    head_end = first_table.start() if first_table else len(text)
    match = _STACK_LINE.search(text, 0, head_end)
    if match:
        text = text[: match.start()] + line + text[match.end() :]
    else:
        text = line + "\n" + text
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} to TOML")


def selected_stack(explicit: str | None, project_dir: Path) -> tuple[str, str]:
    """Which stack runs, and why: ``--stack``, ``LAMINA_STACK``, the project's, the user's, ``local``."""
    if explicit:
        return explicit, "--stack"
    env = os.environ.get("LAMINA_STACK")
    if env:
        return env, "LAMINA_STACK"
    project = read_config(project_config_file(project_dir)).get("stack")
    if project:
        return project, str(project_config_file(project_dir))
    user = read_config(user_config_file()).get("stack")
    if user:
        return user, str(user_config_file())
    return DEFAULT_STACK, "default"
