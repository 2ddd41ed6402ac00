"""``lamina stack check aws-sagemaker``: a verdict per layer, and a clear fix for each failure."""

from __future__ import annotations

from pathlib import Path

import pytest
from lamina.cli.main import main as lamina_main


@pytest.fixture
def check(
    aws_env: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LAMINA_CONFIG_DIR", str(tmp_path / "user-config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # no instance-metadata credentials here

    def run() -> tuple[int, str]:
        code = lamina_main(["stack", "check", "aws-sagemaker"])
        captured = capsys.readouterr()
        return code, captured.out + captured.err

    return run


def verdicts(output: str) -> dict[str, str]:
    """``{layer: "ok"|"FAIL"}`` from the command's output."""
    found = {}
    for line in output.splitlines():
        parts = line.split()
        if (
            len(parts) >= 2
            and parts[0] in ("ok", "FAIL")
            and parts[1] in ("data", "compute", "orchestration", "versioning")
        ):
            found[parts[1]] = parts[0]
    return found


def test_the_emulated_stack_checks_ok(check) -> None:
    code, output = check()
    assert code == 0, output
    assert verdicts(output) == {"data": "ok", "compute": "ok", "orchestration": "ok", "versioning": "ok"}
    assert "warehouse FAKESNOW_WAREHOUSE" in output and "s3://lamina-emulated/lamina/" in output


def test_a_wrong_bucket_is_reported_with_the_fix(check, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAMINA_S3_BUCKET", "no-such-lamina-bucket")
    code, output = check()
    assert code != 0
    assert verdicts(output)["versioning"] == "FAIL"
    assert "the bucket 'no-such-lamina-bucket' does not exist" in output
    assert (
        "fix: create it (`aws s3 mb s3://no-such-lamina-bucket`)" in output and "LAMINA_S3_BUCKET" in output
    )


def test_missing_aws_credentials_are_reported_per_layer(check, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    code, output = check()
    assert code != 0
    layers = verdicts(output)
    assert (layers["compute"], layers["orchestration"], layers["versioning"]) == ("FAIL", "FAIL", "FAIL")
    assert layers["data"] == "ok"  # Snowflake does not use AWS credentials
    assert output.count("no usable AWS credentials") == 3
    assert "fix: configure AWS credentials the standard way: `aws configure`" in output


def test_a_missing_snowflake_password_is_reported(check, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SNOWFLAKE_PASSWORD")
    code, output = check()
    assert code != 0 and verdicts(output)["data"] == "FAIL"
    assert "no Snowflake password for user 'lamina': export SNOWFLAKE_PASSWORD" in output


def test_a_missing_warehouse_is_reported_with_the_fix(check, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SNOWFLAKE_WAREHOUSE", "NO_SUCH_WH")
    code, output = check()
    assert code != 0
    assert verdicts(output) == {"data": "FAIL", "compute": "ok", "orchestration": "ok", "versioning": "ok"}
    assert "the warehouse 'NO_SUCH_WH' does not exist" in output
    assert "warehouses visible: FAKESNOW_WAREHOUSE" in output
    assert "fix: set `warehouse` in [data] (SNOWFLAKE_WAREHOUSE)" in output


def test_a_missing_sagemaker_role_is_reported(check, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAMINA_SAGEMAKER_ROLE", "arn:aws:iam::123456789012:role/not-created")
    code, output = check()
    assert code != 0 and verdicts(output)["compute"] == "FAIL"
    assert "the role arn:aws:iam::123456789012:role/not-created does not exist" in output
    assert "trust sagemaker.amazonaws.com" in output
