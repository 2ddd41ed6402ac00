"""``lamina stack list | show | use | register | remove | check``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..errors import ProfileError
from .common import print_json, table


def run(args: argparse.Namespace) -> int:
    handler = {
        "list": _list,
        "show": _show,
        "use": _use,
        "register": _register,
        "remove": _remove,
        "check": _check,
    }[args.stack_command]
    return handler(args)


def _project() -> Path:
    from ..stack.config import find_project_dir

    return find_project_dir()


def _readiness(profile: Any) -> list[tuple[str, str, bool, str]]:
    from ..discovery import adapter_status

    rows = []
    for layer, cfg in profile.layers.items():
        ok, why = adapter_status(layer, cfg.adapter)
        rows.append((layer, cfg.adapter, ok, why))
    return rows


def _list(args: argparse.Namespace) -> int:
    from ..stack.catalog import all_profiles
    from ..stack.config import selected_stack
    from ..stack.profile import load_profile_file

    project = _project()
    current, _ = selected_stack(None, project)
    out = []
    for name, entry in all_profiles(project).items():
        try:
            profile = load_profile_file(entry.path, name=name, origin=entry.origin)
            ready = all(ok for _, _, ok, _ in _readiness(profile))
            layers = " ".join(f"{layer}={cfg.adapter}" for layer, cfg in profile.layers.items())
            status = "ready" if ready else "adapters missing"
            description = profile.description
        except ProfileError as exc:
            layers, status, description = "", "invalid", str(exc)
        out.append(
            {
                "name": name,
                "current": name == current,
                "origin": entry.origin,
                "status": status,
                "layers": layers,
                "description": description,
            }
        )
    if args.json:
        print_json(out)
        return 0
    print(
        table(
            [("*" if r["current"] else "", r["name"], r["origin"], r["status"], r["layers"]) for r in out],
            ["", "STACK", "FROM", "STATUS", "LAYERS"],
        )
    )
    return 0


def _show(args: argparse.Namespace) -> int:
    from ..stack.catalog import load_profile
    from ..stack.config import selected_stack

    project = _project()
    name, reason = selected_stack(args.name, project)
    profile = load_profile(name, project)
    readiness = _readiness(profile)
    if args.json:
        print_json(
            {
                "name": profile.name,
                "source": profile.source,
                "selected_by": reason if not args.name else "argument",
                "description": profile.description,
                "layers": {
                    layer: {
                        "adapter": adapter,
                        "available": ok,
                        "status": why,
                        "settings": profile.layers[layer].settings,
                    }
                    for layer, adapter, ok, why in readiness
                },
                "options": profile.options.model_dump(),
            }
        )
        return 0
    print(f"stack {profile.name}  ({profile.source})")
    if not args.name:
        print(f"selected by: {reason}")
    if profile.description:
        print(profile.description)
    for layer, adapter, ok, why in readiness:
        print(f"\n[{layer}] {adapter}  {'ok' if ok else 'NOT AVAILABLE'}: {why}")
        for key, value in profile.layers[layer].settings.items():
            print(f"    {key} = {value!r}")
    missing = [r for r in readiness if not r[2]]
    if not missing:
        _validate_quietly(profile)
    return 0


def _validate_quietly(profile: Any) -> None:
    """Settings are checked against each adapter's model (with ``${VAR}`` left unresolved)."""
    from ..discovery import get_registry
    from ..stack.profile import validate_settings

    try:
        validate_settings(profile, get_registry(), resolve_env=False)
    except ProfileError as exc:
        if "${" not in str(exc):
            raise


def _use(args: argparse.Namespace) -> int:
    from ..stack.catalog import load_profile
    from ..stack.config import project_config_file, user_config_file, write_stack_choice

    project = _project()
    profile = load_profile(args.name, project)
    path = user_config_file() if args.user else project_config_file(project)
    write_stack_choice(path, args.name)
    print(
        f"now using stack {args.name} ({'your default' if args.user else f'project {project}'}; written to {path})"
    )
    missing = [r for r in _readiness(profile) if not r[2]]
    for layer, adapter, _, why in missing:
        print(f"  note: the {layer} adapter {adapter!r} is {why}")
    if missing:
        print("  runs on this stack fail until those adapters are installed.")
    return 0


def _register(args: argparse.Namespace) -> int:
    from ..discovery import get_registry
    from ..stack.catalog import register_profile
    from ..stack.profile import load_profile_file, validate_name, validate_settings

    validate_name(args.name)
    source = Path(args.file)
    profile = load_profile_file(source, name=args.name)
    problems = [r for r in _readiness(profile) if not r[2]]
    unknown = [r for r in problems if r[3].startswith("unknown")]
    if unknown:
        validate_settings(profile, get_registry(), resolve_env=False)  # raises the precise error
    if not problems:
        _validate_quietly(profile)
    dest = register_profile(args.name, source, _project(), user=args.user)
    print(f"registered stack {args.name} ({dest})")
    for layer, adapter, _, why in problems:
        print(f"  note: the {layer} adapter {adapter!r} is {why}")
    return 0


def _remove(args: argparse.Namespace) -> int:
    from ..stack.catalog import remove_profile

    path = remove_profile(args.name, _project())
    print(f"removed stack {args.name} ({path})")
    return 0


def _check(args: argparse.Namespace) -> int:
    from ..errors import LaminaError
    from ..models import LAYERS
    from ..stack import resolve_stack

    stack = resolve_stack(args.name)
    print(f"checking stack {stack.name}")
    failed = 0
    for layer in LAYERS:
        try:
            result = stack.layer(layer).check()
            ok, message, fix = result.ok, result.message, result.fix
            adapter = result.adapter
        except LaminaError as exc:
            ok, message, fix, adapter = False, str(exc), "", stack.profile.layers[layer].adapter
        except Exception as exc:  # a probe must report, never crash the command
            ok, message, fix, adapter = (
                False,
                f"{type(exc).__name__}: {exc}",
                "",
                stack.profile.layers[layer].adapter,
            )
        failed += not ok
        print(f"  {'ok  ' if ok else 'FAIL'}  {layer:<13} {adapter}: {message}")
        if fix and not ok:
            print(f"        fix: {fix}")
    stack.close()
    print("all layers ok" if not failed else f"{failed} layer(s) failed")
    return 0 if not failed else 1
