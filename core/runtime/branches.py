"""Variants side by side: ``@project`` flows deploy and run under a branch.

A flow decorated with ``@project(name="churn")`` deploys once per branch: ``--branch NAME``,
``--production`` (the branch ``prod``), or by default the user's own branch ``user.NAME``. Each
branch is a separate deployment (state machine, pipeline, schedule) with its own runs, so a
production model and an experiment run on the same stack without touching each other. Runs carry
their project and branch as the tags ``project:NAME`` and ``branch:NAME``; ``lamina runs
--project/--branch`` filters on them and ``lamina compare FLOW@BRANCH FLOW@OTHER`` compares the
latest run of each.

Names of deployed resources are cut to each service's limits by one rule,
:func:`deployment_name`, so no deployer invents its own.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import FlowDefinitionError, ParameterError

if TYPE_CHECKING:
    from ..flow.spec import FlowSpec

PRODUCTION = "prod"
_BRANCH = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


@dataclass(frozen=True)
class Branch:
    project: str
    name: str

    @property
    def tags(self) -> list[str]:
        return [f"project:{self.project}", f"branch:{self.name}"]


def flow_project(flow_cls: type[FlowSpec]) -> str | None:
    """The ``@project`` name of a flow, or ``None``."""
    return getattr(flow_cls, "_lamina_project", None)


def resolve_branch(flow_cls: type[FlowSpec], branch: str | None, production: bool) -> Branch | None:
    """The branch a run or deployment of ``flow_cls`` belongs to, or ``None`` without ``@project``.

    :raises ParameterError: ``--branch``/``--production`` without ``@project``, both at once, or a
        branch name that cannot be one.
    """
    from .scheduler import current_user

    project = flow_project(flow_cls)
    if project is None:
        if branch or production:
            raise ParameterError(
                f"{flow_cls.__name__} has no @project, so it has no branches: decorate the class with "
                '@project(name="...") to deploy variants side by side, or drop --branch/--production.'
            )
        return None
    if branch and production:
        raise ParameterError("give --branch NAME or --production, not both.")
    name = PRODUCTION if production else branch or f"user.{current_user()}"
    if not _BRANCH.match(name):
        raise ParameterError(
            f"branch {name!r}: use letters, digits, '.', '_' or '-' (63 at most), starting with a letter or digit."
        )
    return Branch(project, name)


def check_project_name(name: object, where: str) -> str:
    if not isinstance(name, str) or not _BRANCH.match(name) or "." in name:
        raise FlowDefinitionError(
            f"@project on {where}: name must be letters, digits, '_' or '-' (63 at most), got {name!r}."
        )
    return name


def deployment_name(
    flow: str,
    project: str | None = None,
    branch: str | None = None,
    *,
    prefix: str = "",
    max_length: int = 80,
    allowed: str = r"A-Za-z0-9_-",
    separator: str = "-",
) -> str:
    """The one rule for naming a deployed resource (a state machine, a pipeline, a schedule):
    ``{prefix}{project}-{branch}-{flow}`` with every character the service refuses replaced by
    ``separator``; a name longer than ``max_length`` keeps its start and ends with a hash of the
    whole, so two branches never collide.

    :param allowed: the characters the service accepts, as the inside of a regex ``[...]``.
    """
    whole = "-".join(part for part in (project, branch, flow) if part)
    name = prefix + re.sub(f"[^{allowed}]", separator, whole)
    if len(name) <= max_length:
        return name
    digest = hashlib.sha256((prefix + whole).encode()).hexdigest()[:8]
    return name[: max_length - len(digest) - 1].rstrip(separator) + separator + digest
