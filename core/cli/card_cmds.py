"""``lamina card view | get PATHSPEC``: a task's ``@card``, opened in a browser or written out."""

from __future__ import annotations

import argparse
import os
import tempfile

from ..errors import LaminaError, NotFound


def run(args: argparse.Namespace) -> int:
    from .inspect_cmds import _bind_stack

    _bind_stack(args.stack)
    document = _card(args.pathspec)
    if args.card_command == "get":
        with open(args.file, "w", encoding="utf-8") as fh:
            fh.write(document)
        print(f"wrote the card of {args.pathspec} to {args.file}")
        return 0
    fd, path = tempfile.mkstemp(prefix="lamina-card-", suffix=".html")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(document)
    if args.no_open:
        print(path)
        return 0
    import webbrowser

    if not webbrowser.open(f"file://{path}"):
        print(f"no browser to open; the card is at {path}")
    else:
        print(f"opened {path}")
    return 0


def _card(pathspec: str) -> str:
    """The card of ``[FLOW/]RUN/STEP[/TASK]`` (a step with one task may omit the task)."""
    from ..client import Run
    from .inspect_cmds import _split

    run_id, step, task_id = _split(pathspec)
    if step is None:
        raise LaminaError(f"{pathspec!r}: a card belongs to a task; give FLOW/RUN/STEP/TASK.")
    run = Run(run_id)
    step_obj = run[step]
    if task_id is None:
        tasks = step_obj.tasks
        if len(tasks) != 1:
            raise LaminaError(
                f"step {step_obj.pathspec} has {len(tasks)} tasks; name one: {step_obj.pathspec}/TASK "
                f"(tasks: {', '.join(t.id for t in tasks[:10])})"
            )
        task = tasks[0]
    else:
        task = step_obj[task_id]
    document = task.card
    if document is None:
        raise NotFound(f"task {task.pathspec} has no card; add @card to step '{step}' and run it again.")
    return document
