"""The emulated ``aws-sagemaker`` stack passes the conformance suites of ``lamina.testing``.

``ComputeSuite`` holds the ``sagemaker`` compute adapter to what every compute adapter promises:
every task is a training job that the emulator's job runner executes from the job's definition.
``StackSuite`` runs the corpus of flow shapes on the whole stack (Snowflake tables, SageMaker
jobs, S3 blobs) and compares each result with ``local``. Both reuse the session's emulator.
"""

from __future__ import annotations

import pytest
from lamina.testing import ComputeSuite, StackSuite

STACK = "aws-sagemaker"


@pytest.mark.slow
class TestSageMakerComputeConformance(ComputeSuite):
    @pytest.fixture
    def compute_stack(self, aws_env: dict[str, str]) -> str:
        return STACK


@pytest.mark.slow
class TestAwsSageMakerStack(StackSuite):
    @pytest.fixture
    def stack_name(self, aws_env: dict[str, str]) -> str:
        return STACK
