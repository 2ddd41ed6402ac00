"""The built-in ``local`` stack passes the conformance suites of ``lamina.testing``.

``ComputeSuite`` holds the local compute (warm worker processes) to what every compute adapter
promises; ``StackSuite`` on ``local`` compares the stack with itself, which proves the corpus is
deterministic (a flow that printed its timing, say, would fail here before it fails elsewhere).
"""

from __future__ import annotations

import pytest
from lamina.testing import ComputeSuite, StackSuite


class TestLocalCompute(ComputeSuite):
    @pytest.fixture
    def compute_stack(self) -> str:
        return "local"


class TestLocalStack(StackSuite):
    @pytest.fixture
    def stack_name(self) -> str:
        return "local"
