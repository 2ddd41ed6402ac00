"""The AWS adapters of the ``aws-sagemaker`` stack: Snowflake data, S3 versioning, SageMaker
compute and Step Functions orchestration.

Importing this package imports no SDK: the adapter modules import boto3, the SageMaker SDK and
the Snowflake connector inside their methods. ``AdapterInfo.requires`` names what each adapter
needs, so a missing SDK is reported as ``pip install 'lamina[aws]'`` when a stack uses it.
"""

from __future__ import annotations

from lamina.models import AdapterInfo

from .s3_versioning import ADAPTER as S3_VERSIONING
from .sagemaker_compute import ADAPTER as SAGEMAKER_COMPUTE
from .snowflake_data import ADAPTER as SNOWFLAKE_DATA
from .stepfunctions import ADAPTER as STEP_FUNCTIONS

ADAPTERS: list[AdapterInfo] = [SNOWFLAKE_DATA, S3_VERSIONING, SAGEMAKER_COMPUTE, STEP_FUNCTIONS]

__all__ = ["ADAPTERS"]
