"""Shared by the ``lamina`` command and ``python flow.py``: error reporting and table output."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from typing import Any

from ..errors import LaminaError, RunInterrupted


def fail(exc: LaminaError) -> int:
    """Print a Lamina error as one short paragraph, no traceback, secrets masked (values of
    secret-named environment variables, URL passwords, ``AccountKey=``...); return its exit status."""
    from ..redaction import mask_text

    sys.stderr.write(f"lamina: error: {mask_text(str(exc))}\n")
    return exc.exit_code


def guarded(func: Callable[[], int | None]) -> int:
    try:
        return func() or 0
    except RunInterrupted as exc:  # not an error of the user's: the driver already said what to do
        sys.stderr.write(f"lamina: {exc}\n")
        return exc.exit_code
    except LaminaError as exc:
        return fail(exc)
    except BrokenPipeError:
        return 0
    except KeyboardInterrupt:
        sys.stderr.write("lamina: interrupted\n")
        return 130
    except Exception:  # a bug (ours or a plugin's): show it, but never a secret it carries
        import traceback

        from ..redaction import mask_text

        sys.stderr.write(mask_text(traceback.format_exc()))
        sys.stderr.write(
            "lamina: an unexpected error (a bug in Lamina or in a plugin): the traceback above has its "
            "secrets masked; please report it.\n"
        )
        return 1


def table(rows: Sequence[Sequence[Any]], headers: Sequence[str]) -> str:
    cells = [[str(c) for c in headers]] + [["" if c is None else str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, default=str))
