"""The one rule for secrets (lamina.redaction): names matched on whole tokens, values masked
wherever printed, and output captured in chunks redacted across chunk boundaries in linear time."""

from __future__ import annotations

import pytest
from lamina.redaction import is_secret_name, mask_text, name_tokens, redact, redact_mapping
from lamina.runtime.capture import LineEcho

SECRET_NAMES = [
    "password", "SNOWFLAKE_PASSWORD", "PGPASSWORD", "db_pass", "DB_PASSWD", "MYSQL_PWD", "passphrase",
    "client_secret", "AWS_SECRET_ACCESS_KEY", "AWSSecretAccessKey", "GITHUB_TOKEN", "HF_TOKEN",
    "session_token", "refreshToken", "API_KEY", "apiKey", "apikey", "OPENAI_API_KEY", "private_key",
    "access_key", "AccountKey", "storage_account_key", "sas_key", "master_key", "ssh_key",
    "credentials", "DB_CREDENTIAL", "creds", "GITHUB_PAT", "ADO_PAT", "basic_auth", "AUTH",
    "AZURE_STORAGE_CONNECTION_STRING", "conn_str", "SLACK_WEBHOOK_KEY",
]  # fmt: skip

NOT_SECRETS = [
    "path", "PATH", "PWD", "OLDPWD", "code_key", "record_key", "stdout_key", "stderr_key", "sort_key",
    "partition_key", "primary_key", "key", "secrets_arn", "LAMINA_SAGEMAKER_SECRETS_ARN",
    "SNOWFLAKE_PASSWORD_ENV", "password_env", "private_key_file", "private_key_path", "credentials_path",
    "token_file", "token_url", "AWS_ACCESS_KEY_ID", "client_id", "secret_name", "auth_type", "auth_method",
    "GOOGLE_APPLICATION_CREDENTIALS", "AWS_SHARED_CREDENTIALS_FILE", "max_tokens", "num_tokens",
    "tokenizer", "bypass", "passport", "compass", "pattern", "patch", "DATABASE_URL", "metadata_url",
    "LAMINA_S3_BUCKET", "DASK_SCHEDULER_ADDRESS", "author", "keyboard",
]  # fmt: skip


@pytest.mark.parametrize("name", SECRET_NAMES)
def test_secret_names(name: str) -> None:
    assert is_secret_name(name)


@pytest.mark.parametrize("name", NOT_SECRETS)
def test_names_that_are_not_secrets(name: str) -> None:
    assert not is_secret_name(name)


def test_names_split_on_separators_and_camel_case() -> None:
    assert name_tokens("AWSSecretAccessKey") == ["aws", "secret", "access", "key"]
    assert name_tokens("my-api.key_2") == ["my", "api", "key", "2"]


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("postgresql://lamina:hunter2@db:5432/x", "postgresql://lamina:***@db:5432/x"),
        ("redis://:pa55word@cache:6379/0", "redis://:***@cache:6379/0"),
        ("mysql+pymysql://root:p%40ss@h/db?x=1", "mysql+pymysql://root:***@h/db?x=1"),
        (
            "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=Zm9vYmFy+/==;EndpointSuffix=core.windows.net",
            "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=***;EndpointSuffix=core.windows.net",
        ),
        (
            "Server=db;Database=x;User Id=sa;Password=Secr3t!;",
            "Server=db;Database=x;User Id=sa;Password=***;",
        ),
        (
            "https://acct.blob.core.windows.net/c/b?sv=2022-11-02&se=2026&sp=r&sig=abc%2Bdef%3D",
            "https://acct.blob.core.windows.net/c/b?sv=2022-11-02&se=2026&sp=r&sig=***",
        ),
        (
            "https://b.s3.amazonaws.com/k?X-Amz-Signature=deadbeef&x=1",
            "https://b.s3.amazonaws.com/k?X-Amz-Signature=***&x=1",
        ),
        (
            "https://example.com/path?page=2 user@example.com",
            "https://example.com/path?page=2 user@example.com",
        ),
    ],
)
def test_secret_values_are_masked_in_text_and_bytes(text: str, masked: str) -> None:
    assert mask_text(text, []) == masked
    assert redact(text.encode(), []) == masked.encode()


def test_metadata_redaction_uses_the_same_rule() -> None:
    stack = {
        "versioning": {"adapter": "s3", "secret_access_key": "AKIA", "secrets_arn": "arn:x", "code_key": "k"},
        "data": {"url": "postgresql://u:pw123@h/db", "private_key_file": "/keys/k.p8"},
    }
    assert redact_mapping(stack) == {
        "versioning": {"adapter": "s3", "secret_access_key": "***", "secrets_arn": "arn:x", "code_key": "k"},
        "data": {"url": "postgresql://u:***@h/db", "private_key_file": "/keys/k.p8"},
    }


def _echo(chunks: list[bytes], secrets: list[bytes]) -> tuple[bytes, LineEcho]:
    echo = LineEcho(b"[s/0] ", secrets)
    shown = b"".join(echo.feed(c) for c in chunks) + echo.close()
    return shown, echo


LINE = b"token hunter2-XYZ, db postgresql://bob:pass-word-99@db/x, AccountKey=abcdEFG123==; sas ?sv=1&sig=SIGVALUE9 ok\n"


@pytest.mark.parametrize("cut", range(1, len(LINE)))
def test_a_secret_split_between_two_reads_is_still_masked_in_the_echo(cut: int) -> None:
    shown, _ = _echo([LINE[:cut], LINE[cut:]], [b"hunter2-XYZ"])
    assert shown == b"[s/0] token ***, db postgresql://bob:***@db/x, AccountKey=***; sas ?sv=1&sig=*** ok\n"


@pytest.mark.parametrize("offset", [-40, -13, -5, 0, 5, 13])
def test_a_secret_at_the_cut_of_a_long_line_shown_in_pieces_is_masked(offset: int) -> None:
    head = 1_048_576 + 65_536 - 4096 + offset  # where the first piece of the line is cut
    data = b"x" * head + b" hunter2-XYZ postgresql://bob:pass-word-99@db/x " + b"y" * 200_000
    shown, _ = _echo([data[i : i + 65536] for i in range(0, len(data), 65536)], [b"hunter2-XYZ"])
    assert b"hunter2" not in shown and b"pass-word" not in shown
    assert shown.startswith(b"[s/0] xxx") and shown.count(b"[s/0]") == 1 and shown.endswith(b"y\n")


def test_echo_work_is_linear_in_the_output_whatever_the_line_length() -> None:
    size = 50_000_000
    one_line = b"#" * size
    shown, echo = _echo([one_line[i : i + 65536] for i in range(0, size, 65536)], [b"hunter2-XYZ"])
    assert len(shown) == size + len(b"[s/0] \n")
    assert echo.scanned <= 3 * size  # re-splitting the whole pending line on every read searched ~380 x size
    lines = (b"#" * 99 + b"\n") * (size // 100)
    _, per_line = _echo([lines[i : i + 65536] for i in range(0, size, 65536)], [b"hunter2-XYZ"])
    assert echo.scanned <= 1.5 * per_line.scanned


def test_a_profile_with_a_password_inside_a_url_is_refused_without_showing_it(tmp_path) -> None:
    from lamina.errors import ProfileError
    from lamina.stack.profile import load_profile_file

    profile = tmp_path / "mine.toml"
    profile.write_text(
        '[data]\nadapter = "duckdb"\nurl = "postgresql://u:SuperSecret9@h/db"\n[compute]\nadapter = "local"\n'
        '[orchestration]\nadapter = "local"\n[versioning]\nadapter = "local"\n'
    )
    with pytest.raises(ProfileError, match=r"key 'url' holds a literal password or another secret inside its value") as caught:
        load_profile_file(profile)
    assert "SuperSecret9" not in str(caught.value) and "postgresql://u:***@h/db" in str(caught.value)
    profile.write_text(profile.read_text().replace("postgresql://u:SuperSecret9@h/db", "${DATABASE_URL}"))
    assert load_profile_file(profile).layers["data"].settings["url"] == "${DATABASE_URL}"


def test_an_unexpected_error_in_a_command_shows_its_traceback_with_secrets_masked(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from lamina.cli.common import guarded

    monkeypatch.setenv("DB_PASSWORD", "hunter2-very-secret")

    def buggy() -> int:
        raise RuntimeError("connect failed for postgresql://ana:hunter2-very-secret@db/x")

    assert guarded(buggy) == 1
    err = capsys.readouterr().err
    assert "RuntimeError" in err and "hunter2-very-secret" not in err and "please report it" in err
