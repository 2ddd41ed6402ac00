"""``python -m lamina``: the ``lamina`` command, plus the internal ``task`` and ``worker`` entry points."""

from __future__ import annotations

import sys


def _main() -> int:
    argv = sys.argv[1:]
    if argv and argv[0] == "task":
        from .runtime.task import main

        return main(argv[1:])
    if argv and argv[0] == "worker":
        from .runtime.worker import main as worker_main

        return worker_main(argv[1:])
    from .cli.main import main as cli_main

    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(_main())
