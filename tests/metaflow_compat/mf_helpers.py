"""Helpers of the Metaflow-compatibility tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

FLOWS = Path(__file__).parent / "flows"


def flow_cli(flow: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``python FLOW ARGS`` as a user runs it, in the current (project) directory."""
    return subprocess.run(
        [sys.executable, str(FLOWS / flow), *args],
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, **(env or {})},
    )


def printed(output: str) -> list[str]:
    """What the steps printed, without the ``[step/task]`` prefix Lamina adds to each line."""
    import re

    return [m.group(1) for m in re.finditer(r"^\[[^\]]+\] ?(.*)$", output, re.M)]


def movies() -> list[dict[str, str]]:
    """The rows of the tutorials' movie CSV."""
    import csv

    with open(FLOWS / "movies.csv", newline="") as fh:
        return list(csv.DictReader(fh))
