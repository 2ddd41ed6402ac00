"""The AWS adapters of the ``aws-sagemaker`` stack: Snowflake data, S3 versioning, SageMaker
compute and Step Functions orchestration.

Importing this package imports no SDK: the adapter modules import boto3, the SageMaker SDK and
the Snowflake connector inside their methods. ``AdapterInfo.requires`` names what each adapter
needs, so a missing SDK is reported as ``pip install 'lamina[aws]'`` when a stack uses it.
"""

from __future__ import annotations

from lamina.hookspecs import EmulatorInfo
from lamina.models import AdapterInfo

from .s3_versioning import ADAPTER as S3_VERSIONING
from .sagemaker_compute import ADAPTER as SAGEMAKER_COMPUTE
from .snowflake_data import ADAPTER as SNOWFLAKE_DATA
from .stepfunctions import ADAPTER as STEP_FUNCTIONS

ADAPTERS: list[AdapterInfo] = [SNOWFLAKE_DATA, S3_VERSIONING, SAGEMAKER_COMPUTE, STEP_FUNCTIONS]

_FACTORY = "lamina.plugins.aws.emulator:AwsServices"
EMULATORS: list[EmulatorInfo] = [
    EmulatorInfo(
        name="snowflake",
        serves=(("data", "snowflake"),),
        factory=_FACTORY,
        extra="aws-emulator",
        requires=("fakesnow", "snowflake.connector"),
        description="fakesnow in server mode; the real Snowflake connector talks HTTP to it",
    ),
    EmulatorInfo(
        name="s3",
        serves=(("versioning", "s3"),),
        factory=_FACTORY,
        extra="aws-emulator",
        requires=("moto", "boto3"),
        description="moto in server mode: S3, IAM, STS, Secrets Manager, CloudWatch Logs",
    ),
    EmulatorInfo(
        name="sagemaker",
        serves=(("compute", "sagemaker"),),
        factory=_FACTORY,
        extra="aws-emulator",
        requires=("moto", "boto3"),
        description="moto's SageMaker with a job runner that runs each training job's command",
    ),
    EmulatorInfo(
        name="step-functions",
        serves=(("orchestration", "step-functions"),),
        factory=_FACTORY,
        extra="aws-emulator",
        requires=("moto", "boto3"),
        description="moto's Step Functions, executing state machines",
    ),
]

__all__ = ["ADAPTERS", "EMULATORS"]
