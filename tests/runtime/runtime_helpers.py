from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

FLOWS = Path(__file__).parent / "flows"


def read_counts(folder: Path) -> dict[str, int]:
    return {p.name: int(p.read_text()) for p in folder.iterdir()}


def flow_cli(
    flow: str, *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run ``python FLOW ARGS`` the way a user does, in the current (project) directory."""
    return subprocess.run(
        [sys.executable, str(FLOWS / flow), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )
