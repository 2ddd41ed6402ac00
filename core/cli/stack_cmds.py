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
            _validate(profile)
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
    profile = load_profile(name, project, reason="" if args.name or reason == "default" else reason)
    _validate(profile)
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
    return 0


def _validate(profile: Any, *, installed_only: bool = False) -> None:
    """Check each layer's settings against its adapter's model, before anything is shown or saved.

    ``${VAR}`` references stay unresolved (they are resolved when the stack runs); an adapter
    that is known but not installed is reported as missing, not as an error; an adapter nobody
    offers is a ``ProfileError`` listing the installed ones.
    """
    from ..discovery import get_registry
    from ..stack.profile import validate_settings

    registry = get_registry()
    layers = None
    if installed_only:  # an adapter nobody offers yet may come with a plugin installed later
        layers = tuple(
            layer for layer, cfg in profile.layers.items() if registry.adapter(layer, cfg.adapter) is not None
        )
    validate_settings(profile, registry, resolve_env=False, skip_unavailable=True, layers=layers)


def _use(args: argparse.Namespace) -> int:
    from ..stack.catalog import load_profile
    from ..stack.config import project_config_file, user_config_file, write_stack_choice

    project = _project()
    profile = load_profile(args.name, project)
    _validate(profile, installed_only=True)  # a malformed profile is refused; a missing adapter is not
    path = user_config_file() if args.user else project_config_file(project)
    write_stack_choice(path, args.name)
    print(
        f"now using stack {args.name} ({'your default' if args.user else f'project {project}'}; written to {path})"
    )
    missing = [r for r in _readiness(profile) if not r[2]]
    for layer, adapter, _, why in missing:
        print(f"  note: the {layer} adapter {adapter!r} is not available: {why}")
    if missing:
        print("  runs on this stack fail until those adapters are installed.")
    return 0


def _register(args: argparse.Namespace) -> int:
    from ..stack.catalog import all_profiles, register_profile
    from ..stack.profile import load_profile_file, validate_name

    validate_name(args.name)
    source = Path(args.file)
    profile = load_profile_file(source, name=args.name)
    _validate(profile)
    project = _project()
    before = all_profiles(project).get(args.name)
    dest = register_profile(args.name, source, project, user=args.user)
    print(f"registered stack {args.name} ({dest})")
    if before is not None and before.path != dest:
        print(f"  it overrides the {before.origin} stack of that name ({before.path})")
    for layer, adapter, ok, why in _readiness(profile):
        if not ok:
            print(f"  note: the {layer} adapter {adapter!r} is not available: {why}")
    return 0


def _remove(args: argparse.Namespace) -> int:
    from ..stack.catalog import all_profiles, remove_profile
    from ..stack.config import selected_stack

    project = _project()
    path = remove_profile(args.name, project)
    print(f"removed stack {args.name} ({path})")
    remaining = all_profiles(project).get(args.name)
    if remaining is not None:
        print(f"  the {remaining.origin} stack of that name is used again ({remaining.path})")
    else:
        current, reason = selected_stack(None, project)
        if current == args.name:
            print(
                f"  note: {reason} still selects it; switch with `lamina stack use NAME` "
                "(runs fail until you do)."
            )
    return 0


def _check(args: argparse.Namespace) -> int:
    """Probe each layer and give a verdict per layer; exit 1 when any layer fails.

    A layer whose adapter is missing, whose settings reference an unset variable, or whose
    probe raises is reported as failing; the other layers are still probed.
    """
    from ..errors import LaminaError
    from ..models import LAYERS
    from ..stack import resolve_stack

    stack = resolve_stack(args.name, validate=False)
    print(f"checking stack {stack.name}")
    failed = 0
    try:
        for layer in LAYERS:
            adapter = stack.profile.layers[layer].adapter
            fix = ""
            try:
                facade: Any = stack.layer(layer)  # every layer's facade has check()
                result = facade.check()
                if result is None:
                    ok, message = False, "the adapter's check hook returned nothing"
                else:
                    ok, message, fix, adapter = result.ok, result.message, result.fix, result.adapter
            except LaminaError as exc:
                ok, message = False, str(exc)
            except Exception as exc:  # a probe must report, never crash the command
                ok, message = False, f"{type(exc).__name__}: {exc}"
            failed += not ok
            print(f"  {'ok  ' if ok else 'FAIL'}  {layer:<13} {adapter}: {message}")
            if fix and not ok:
                print(f"        fix: {fix}")
    finally:
        stack.close()
    print("all layers ok" if not failed else f"{failed} layer(s) failed")
    return 0 if not failed else 1
