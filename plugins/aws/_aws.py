"""What the AWS adapters share: boto3 sessions and clients, error translation, transient errors.

boto3 and botocore are imported inside the functions, never at module import, so listing the
adapters (``lamina plugins list``) never loads an SDK.

Endpoints: every client honours ``AWS_ENDPOINT_URL`` (and the per-service
``AWS_ENDPOINT_URL_<SERVICE>``), which is how ``lamina emulate aws-sagemaker`` points the
adapters at moto. An adapter's ``endpoint_url`` setting, when given, takes precedence.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

from lamina.errors import LaminaError, TransientError

if TYPE_CHECKING:
    import boto3

T = TypeVar("T")

THROTTLING_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "TransactionInProgressException",
        "RequestLimitExceeded",
        "BandwidthLimitExceeded",
        "RequestThrottled",
        "SlowDown",
        "EC2ThrottledException",
        "PriorRequestNotComplete",
        "ServiceUnavailable",
        "InternalError",
        "InternalFailure",
        "RequestTimeout",
        "RequestTimeoutException",
    }
)
"""Error codes AWS answers when a request is worth repeating later (throttling, brownouts)."""

CREDENTIAL_CODES = frozenset(
    {
        "InvalidClientTokenId",
        "UnrecognizedClientException",
        "SignatureDoesNotMatch",
        "InvalidAccessKeyId",
        "ExpiredToken",
        "ExpiredTokenException",
        "InvalidToken",
        "AuthFailure",
    }
)

CREDENTIALS_FIX = (
    "configure AWS credentials the standard way: `aws configure` or `aws sso login`, AWS_PROFILE, "
    "or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (an instance or job role works too). "
    "To try the stack without an AWS account, run it under `lamina emulate aws-sagemaker -- ...`."
)


class AwsThrottled(TransientError):
    """AWS asked us to slow down or was briefly unavailable; the layer facade retries it."""


class AwsError(LaminaError):
    """An AWS request failed for a reason that retrying will not fix."""


class AwsCredentialsError(AwsError):
    """No usable AWS credentials; ``reason`` says why, without the standard fix."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


_SESSION_ENV = (
    "AWS_PROFILE",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_ENDPOINT_URL",
    "AWS_DEFAULT_REGION",
)
_sessions: dict[tuple[str | None, ...], Any] = {}
_lock = threading.Lock()


def session(region: str | None = None, profile: str | None = None) -> boto3.Session:
    """A boto3 session for ``region`` (default: the standard chain's), shared per process.

    Credentials come from boto3's standard chain; Lamina never reads or stores them.
    """
    import boto3

    # a changed environment (another profile, keys or endpoint) gets a new session
    key = (region or None, profile or None, *(os.environ.get(name) for name in _SESSION_ENV))
    with _lock:
        found = _sessions.get(key)
        if found is None:
            found = _sessions[key] = boto3.Session(region_name=region or None, profile_name=profile or None)
        return found


def client(
    service: str,
    region: str | None = None,
    *,
    endpoint_url: str | None = None,
    max_pool_connections: int = 10,
    profile: str | None = None,
) -> Any:
    """A boto3 client with standard-mode retries (which back off on throttling by themselves)."""
    from botocore.config import Config

    config = Config(
        retries={"mode": "standard", "max_attempts": 5},
        max_pool_connections=max(10, max_pool_connections),
        connect_timeout=10,
        read_timeout=60,
    )
    sess = session(region, profile)
    if sess.region_name is None and region is None:
        raise AwsError(
            f"no AWS region is configured for {service}: set `region` in the stack profile, or "
            "export AWS_DEFAULT_REGION (or set one in ~/.aws/config)."
        )
    return sess.client(service, endpoint_url=endpoint_url or None, config=config)


def transient_errors() -> tuple[type[BaseException], ...]:
    """Exception types the facades retry: throttling (translated) and dropped connections."""
    from botocore.exceptions import ConnectionError, HTTPClientError

    return (AwsThrottled, ConnectionError, HTTPClientError)


def error_code(exc: BaseException) -> str:
    """The AWS error code of a ``ClientError`` (``""`` for anything else)."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", ""))
    return ""


def http_status(exc: BaseException) -> int:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return int(response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    return 0


def error_message(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        error = response.get("Error", {})
        code, message = error.get("Code", ""), error.get("Message", "")
        return f"{code}: {message}".strip(": ") or str(exc)
    return str(exc)


def is_throttling(exc: BaseException) -> bool:
    return error_code(exc) in THROTTLING_CODES or http_status(exc) in (429, 503)


@contextmanager
def translated(what: str) -> Iterator[None]:
    """Turn botocore errors into Lamina errors that say what failed and what to do.

    Throttling becomes :class:`AwsThrottled` (retried by the facade); missing or rejected
    credentials become an :class:`AwsError` with the standard fix. Other ``ClientError`` s pass
    through unchanged so callers can inspect their codes.
    """
    from botocore.exceptions import ClientError, NoCredentialsError, NoRegionError, PartialCredentialsError

    try:
        yield
    except ClientError as exc:
        if is_throttling(exc):
            raise AwsThrottled(
                f"{what}: AWS is throttling or briefly unavailable ({error_message(exc)})"
            ) from exc
        if error_code(exc) in CREDENTIAL_CODES:
            reason = f"AWS rejected the credentials ({error_message(exc)})"
            raise AwsCredentialsError(f"{what}: {reason}. Fix: {CREDENTIALS_FIX}", reason) from exc
        raise
    except (NoCredentialsError, PartialCredentialsError) as exc:
        reason = f"no usable AWS credentials were found ({exc})"
        raise AwsCredentialsError(f"{what}: {reason}. Fix: {CREDENTIALS_FIX}", reason) from exc
    except NoRegionError as exc:
        raise AwsError(
            f"{what}: no AWS region is configured. Set `region` in the stack profile or export AWS_DEFAULT_REGION."
        ) from exc


def call(what: str, func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``func(*args, **kwargs)`` inside :func:`translated`."""
    with translated(what):
        return func(*args, **kwargs)


def caller_identity(region: str | None, endpoint_url: str | None = None) -> str:
    """The ARN the credentials belong to (STS ``GetCallerIdentity``); raises like :func:`translated`."""
    sts = client("sts", region or "us-east-1", endpoint_url=endpoint_url)
    return str(call("checking AWS credentials (sts:GetCallerIdentity)", sts.get_caller_identity)["Arn"])


def check_identity(region: str | None, endpoint_url: str | None = None) -> tuple[str, str]:
    """For a layer's check: ``(caller ARN, "")``, or ``("", why)`` when the credentials do not work
    or STS cannot be reached. Never raises; the verdict's fix for a failure is :data:`CREDENTIALS_FIX`.
    """
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return caller_identity(region, endpoint_url), ""
    except LaminaError as exc:
        return "", f"AWS credentials do not work: {describe_failure(exc)}"
    except (ClientError, BotoCoreError) as exc:
        return "", f"cannot reach AWS STS: {describe_failure(exc)}"


def describe_failure(exc: BaseException) -> str:
    """One line for a check verdict (the fix goes in the verdict's own ``fix``)."""
    if isinstance(exc, AwsCredentialsError):
        return exc.reason
    if isinstance(exc, LaminaError):
        return str(exc)
    return error_message(exc) if getattr(exc, "response", None) else f"{type(exc).__name__}: {exc}"


_ARN_ROLE = re.compile(r"^arn:aws[a-z-]*:iam::(\d{12}):role/(?:.*/)?([\w+=,.@-]{1,64})$")


def role_name(arn: str) -> str | None:
    """The role name of an IAM role ARN, or ``None`` when ``arn`` is not one."""
    match = _ARN_ROLE.match(arn or "")
    return match.group(2) if match else None


def split_list(value: Any) -> list[str]:
    """A list setting given as a list or as one comma-separated string (as ``${VAR}`` gives)."""
    if value is None:
        return []
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return [str(v).strip() for v in value if str(v).strip()]
