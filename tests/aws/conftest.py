"""Fixtures of the aws-sagemaker tests: the emulated AWS stack, started once per session.

``aws_emulator`` (session) runs fakesnow, moto and the SageMaker job runner on 127.0.0.1;
``aws_env`` points one test's environment at it. Both come from ``lamina.testing.aws``.
"""

from __future__ import annotations

import importlib.util

import pytest

# find_spec, not import: importing fakesnow here would leave a /tmp/fakesnow_bucket_* behind
for _module, _extra in (
    ("moto", "test"),
    ("fakesnow", "test"),
    ("boto3", "aws"),
    ("snowflake.connector", "aws"),
):
    if importlib.util.find_spec(_module.split(".")[0]) is None:
        pytest.skip(f"the aws tests need {_module}: pip install 'lamina[{_extra}]'", allow_module_level=True)
pytest.register_assert_rewrite("lamina.testing.data_suite")

# aws_emulator and aws_env come from tests/conftest.py: one session-wide emulator for every folder
