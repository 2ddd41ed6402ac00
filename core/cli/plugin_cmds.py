"""``lamina plugins list``."""

from __future__ import annotations

import argparse

from .common import print_json, table


def run(args: argparse.Namespace) -> int:
    from ..discovery import disabled_plugins, get_registry, missing_modules

    registry = get_registry()
    registry.adapters()
    rows = []
    for info in registry.plugins.values():
        for adapter in sorted(info.adapters, key=lambda a: (a.layer, a.name)):
            missing = missing_modules(adapter)
            rows.append(
                {
                    "plugin": info.name,
                    "version": info.version,
                    "source": info.source,
                    "layer": adapter.layer,
                    "adapter": adapter.name,
                    "installed": not missing,
                    "install": adapter.install_hint() if missing else "",
                    "description": adapter.description,
                }
            )
        if not info.adapters:
            rows.append(
                {
                    "plugin": info.name,
                    "version": info.version,
                    "source": info.source,
                    "layer": "",
                    "adapter": "",
                    "installed": True,
                    "install": "",
                    "description": "",
                }
            )
    if args.json:
        print_json({"plugins": rows, "disabled": sorted(disabled_plugins())})
        return 0
    print(
        table(
            [
                (
                    r["plugin"],
                    r["version"],
                    r["layer"],
                    r["adapter"],
                    "yes" if r["installed"] else f"no: {r['install']}",
                )
                for r in rows
            ],
            ["PLUGIN", "VERSION", "LAYER", "ADAPTER", "INSTALLED"],
        )
    )
    blocked = disabled_plugins()
    if blocked:
        print(f"\ndisabled by LAMINA_DISABLE_PLUGINS: {', '.join(sorted(blocked))}")
    return 0
