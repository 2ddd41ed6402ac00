"""SageMaker training instance types, and how ``@resources`` maps onto them.

The table lists the ``ml.*`` training instance types with their vCPUs, memory and GPUs. A
request picks the smallest type that satisfies every asked dimension (fewest GPUs, then vCPUs,
then memory, then the order below, which puts general purpose before compute and memory
optimised families of the same size). ``disk`` does not choose a type: it sizes the job's EBS
volume (up to :data:`MAX_VOLUME_GB`).
"""

from __future__ import annotations

from dataclasses import dataclass

from lamina.errors import ResourceUnsatisfiable
from lamina.models import Resources

MAX_VOLUME_GB = 16384
"""The largest EBS volume a SageMaker training job can attach."""


@dataclass(frozen=True)
class InstanceType:
    name: str
    cpu: int
    memory_gib: float
    gpu: int = 0
    accelerator: str = ""

    @property
    def memory_mib(self) -> int:
        return int(self.memory_gib * 1024)

    def describe(self) -> str:
        if not self.cpu:
            return self.name  # a type the table does not list, used as the profile names it
        gpu = f", {self.gpu}x {self.accelerator}" if self.gpu else ""
        return f"{self.name} ({self.cpu} vCPU, {self.memory_gib:g} GiB{gpu})"


INSTANCE_TYPES: tuple[InstanceType, ...] = (
    # general purpose
    InstanceType("ml.m5.large", 2, 8),
    InstanceType("ml.m5.xlarge", 4, 16),
    InstanceType("ml.m5.2xlarge", 8, 32),
    InstanceType("ml.m5.4xlarge", 16, 64),
    InstanceType("ml.m5.12xlarge", 48, 192),
    InstanceType("ml.m5.24xlarge", 96, 384),
    # compute optimised
    InstanceType("ml.c5.xlarge", 4, 8),
    InstanceType("ml.c5.2xlarge", 8, 16),
    InstanceType("ml.c5.4xlarge", 16, 32),
    InstanceType("ml.c5.9xlarge", 36, 72),
    InstanceType("ml.c5.18xlarge", 72, 144),
    # memory optimised
    InstanceType("ml.r5.large", 2, 16),
    InstanceType("ml.r5.xlarge", 4, 32),
    InstanceType("ml.r5.2xlarge", 8, 64),
    InstanceType("ml.r5.4xlarge", 16, 128),
    InstanceType("ml.r5.12xlarge", 48, 384),
    InstanceType("ml.r5.24xlarge", 96, 768),
    # GPU
    InstanceType("ml.g4dn.xlarge", 4, 16, 1, "NVIDIA T4"),
    InstanceType("ml.g4dn.2xlarge", 8, 32, 1, "NVIDIA T4"),
    InstanceType("ml.g5.xlarge", 4, 16, 1, "NVIDIA A10G"),
    InstanceType("ml.g5.2xlarge", 8, 32, 1, "NVIDIA A10G"),
    InstanceType("ml.g5.4xlarge", 16, 64, 1, "NVIDIA A10G"),
    InstanceType("ml.g4dn.12xlarge", 48, 192, 4, "NVIDIA T4"),
    InstanceType("ml.g5.12xlarge", 48, 192, 4, "NVIDIA A10G"),
    InstanceType("ml.g5.48xlarge", 192, 768, 8, "NVIDIA A10G"),
    InstanceType("ml.p3.2xlarge", 8, 61, 1, "NVIDIA V100"),
    InstanceType("ml.p3.8xlarge", 32, 244, 4, "NVIDIA V100"),
    InstanceType("ml.p3.16xlarge", 64, 488, 8, "NVIDIA V100"),
    InstanceType("ml.p4d.24xlarge", 96, 1152, 8, "NVIDIA A100"),
    InstanceType("ml.p5.48xlarge", 192, 2048, 8, "NVIDIA H100"),
)

BY_NAME = {t.name: t for t in INSTANCE_TYPES}


def largest() -> InstanceType:
    """The biggest offer: most GPUs, then vCPUs, then memory."""
    return max(INSTANCE_TYPES, key=lambda t: (t.gpu, t.cpu, t.memory_gib))


def _fits(t: InstanceType, resources: Resources) -> bool:
    if resources.cpu is not None and t.cpu < resources.cpu:
        return False
    if resources.memory is not None and t.memory_mib < resources.memory:
        return False
    return not (resources.gpu and t.gpu < resources.gpu)


def pick_instance_type(step: str, resources: Resources, default: str) -> InstanceType:
    """The instance type for a step: ``default`` when it fits (or nothing was asked; a default
    missing from the table is then used as given), else the smallest type of the table that does.

    :raises ResourceUnsatisfiable: no type satisfies the request; the message names the step,
        the request, and the largest offer in each dimension.
    """
    base = BY_NAME.get(default)
    if resources.disk is not None and resources.disk > MAX_VOLUME_GB:
        raise ResourceUnsatisfiable(
            f"step '{step}': @resources(disk={resources.disk}) asks for more than the largest SageMaker "
            f"training volume ({MAX_VOLUME_GB} GiB). Lower the request, or keep the data in the data layer."
        )
    if resources.cpu is None and resources.memory is None and not resources.gpu:
        return base or InstanceType(default, 0, 0)
    if base is not None and _fits(base, resources):
        return base
    candidates = [t for t in INSTANCE_TYPES if _fits(t, resources)]
    if not resources.gpu:
        cpu_only = [t for t in candidates if t.gpu == 0]
        candidates = cpu_only or candidates
    if not candidates:
        asked = ", ".join(
            f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
            for k, v in (("cpu", resources.cpu), ("memory", resources.memory), ("gpu", resources.gpu))
            if v is not None
        )
        big = largest()
        most_memory = max(INSTANCE_TYPES, key=lambda t: t.memory_gib)
        most_cpu = max(INSTANCE_TYPES, key=lambda t: t.cpu)
        raise ResourceUnsatisfiable(
            f"step '{step}': @resources({asked}) cannot be met by any SageMaker training instance type. "
            f"The largest offer is {big.describe()}; the most vCPUs {most_cpu.describe()}, the most memory "
            f"{most_memory.describe()} (memory is in MiB: {most_memory.memory_mib}). Lower the request, "
            "or run the step on a stack whose compute offers it."
        )
    return min(
        candidates,
        key=lambda t: (t.gpu, t.cpu, t.memory_gib, INSTANCE_TYPES.index(t)),
    )


def volume_size(resources: Resources, default_gb: int) -> int:
    """EBS volume size for a step: the larger of the profile's default and ``@resources(disk=)``."""
    return max(default_gb, resources.disk or 0)
