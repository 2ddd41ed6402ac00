"""Facts about this machine and waiting on a platform: shared by compute adapters (public
through :mod:`lamina.adapter`)."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def machine() -> dict[str, Any]:
    """What this machine offers: ``{"cpu": cores, "memory": MiB, "gpu": count}``."""
    cores = os.cpu_count() or 1
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // (1024 * 1024)
    except (ValueError, OSError, AttributeError):
        memory = 0
    gpus = 0
    if shutil.which("nvidia-smi"):
        try:
            out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=5).stdout
            gpus = sum(1 for line in out.splitlines() if line.startswith("GPU "))
        except (OSError, subprocess.SubprocessError):
            gpus = 0
    return {"cpu": cores, "memory": memory, "gpu": gpus}


def wait_until(
    probe: Callable[[], T | None], *, timeout: float, interval: float, first: bool = True
) -> T | None:
    """Call ``probe`` every ``interval`` seconds until it answers something other than ``None``
    or ``timeout`` seconds have passed; return the answer, or ``None`` on timeout.

    :param first: probe at once (else wait one interval first). The last probe happens at the
        deadline, so a timeout of 0 probes exactly once.
    """
    deadline = time.monotonic() + timeout
    if not first:
        time.sleep(min(interval, timeout))
    while True:
        answer = probe()
        if answer is not None:
            return answer
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        time.sleep(min(interval, remaining))
