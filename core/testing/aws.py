"""Pytest fixtures for the emulated AWS stack (the AWS plugin's emulator, started once per session).

- ``aws_emulator`` (session): fakesnow, moto and the SageMaker job runner on 127.0.0.1
  (:class:`lamina.plugins.aws.emulator.AwsEmulator`).
- ``aws_env``: points one test's environment at it (``--stack aws-sagemaker`` then works).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ..plugins.aws.emulator import (  # noqa: F401 - re-exported for tests
    ACCOUNT,
    BUCKET,
    IMAGE,
    REGION,
    SAGEMAKER_ROLE,
    SFN_ROLE,
    SNOWFLAKE_PASSWORD,
    AwsEmulator,
    JobRunner,
    emulator_client,
)


@pytest.fixture(scope="session")
def aws_emulator() -> Iterator[AwsEmulator]:
    """The emulated AWS stack, started once per test session and stopped at its end."""
    with AwsEmulator() as emulator:
        yield emulator


@pytest.fixture
def aws_env(aws_emulator: AwsEmulator, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """This test's environment points at the emulated AWS stack (``--stack aws-sagemaker``)."""
    for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "SNOWFLAKE_TOKEN", "LAMINA_STACK"):
        monkeypatch.delenv(key, raising=False)
    for key, value in aws_emulator.env.items():
        monkeypatch.setenv(key, value)
    return dict(aws_emulator.env)
