"""Settings of the ``dask`` compute adapter (the ``[compute]`` table of a profile)."""

from __future__ import annotations

from typing import Literal

from lamina.models import AdapterSettings
from lamina.redaction import refuse_secret_names
from pydantic import Field, field_validator

ADAPTER_NAME = "dask"
MIB = 1024**2
GIB = 1024**3
LOG_TAIL = 16_000
"""Characters of a task process's own output kept for :meth:`DaskCompute.compute_logs`."""
WORKER_ENV = "LAMINA_DASK_WORKER"
"""Set in every task's environment: the address of the Dask worker running it."""
_RESOURCE_OF = {"cpu": "CPU", "memory": "MEMORY", "gpu": "GPU", "disk": "DISK"}


class DaskComputeSettings(AdapterSettings):
    """Settings of the ``dask`` compute adapter (the ``[compute]`` table of a profile)."""

    address: str | None = Field(
        default=None,
        description="scheduler address (tcp://host:8786); none: start a LocalCluster on 127.0.0.1 per run",
    )
    n_workers: int | None = Field(
        default=None, ge=1, le=256, description="LocalCluster only: worker processes; default: the cores"
    )
    worker_resources: dict[str, float] | None = Field(
        default=None,
        description="LocalCluster only: what each worker offers, e.g. {CPU = 2, MEMORY = 4e9, GPU = 1}; "
        "default: the machine's cores and memory split evenly between the workers",
    )
    timeout: float = Field(
        default=30.0, gt=0, le=3600, description="seconds to reach the scheduler or start the LocalCluster"
    )
    python: str | None = Field(
        default=None, description="the interpreter that runs tasks on the workers; default: the worker's own"
    )
    environment: dict[str, str] = Field(
        default_factory=dict, description="extra non-secret environment variables for every task"
    )
    mode: Literal["auto", "process"] = Field(
        default="auto",
        description="auto: a warm `lamina worker` per Dask worker forks each task where the flow file is "
        "on the worker; process: a new `python -m lamina task` process per task",
    )


    @field_validator("address")
    @classmethod
    def _address(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip()
        if "://" not in value:
            value = "tcp://" + value
        scheme, _, rest = value.partition("://")
        if not rest or ":" not in rest:
            raise ValueError(
                f"{value!r} is not a Dask scheduler address: write tcp://HOST:PORT (the scheduler prints it, "
                "e.g. tcp://127.0.0.1:8786), or leave `address` out to start a LocalCluster"
            )
        return f"{scheme}://{rest}"

    @field_validator("worker_resources")
    @classmethod
    def _resources(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        if value is None:
            return None
        for name, amount in value.items():
            if amount <= 0:
                raise ValueError(f"worker_resources.{name} must be positive, got {amount:g}")
            if name.lower() in _RESOURCE_OF and name != _RESOURCE_OF[name.lower()]:
                raise ValueError(
                    f"worker_resources.{name}: @resources maps onto {_RESOURCE_OF[name.lower()]!r} "
                    "(upper case); Dask resource names are case-sensitive"
                )
        return value

    @field_validator("environment")
    @classmethod
    def _no_secrets(cls, value: dict[str, str]) -> dict[str, str]:
        return refuse_secret_names(
            value, "a profile holds no secrets", "Set it in the workers' own environment instead."
        )
