"""``@resources`` as Dask worker resources, and what a cluster's workers offer."""

from __future__ import annotations

from lamina.adapter import machine
from lamina.models import Resources

from .settings import _RESOURCE_OF, GIB, MIB

# -- resources ---------------------------------------------------------------------------------


def dask_resources(resources: Resources) -> dict[str, float]:
    """The Dask worker resources a step's ``@resources`` asks for (zero or unset: not asked)."""
    wanted: dict[str, float] = {}
    if resources.cpu:
        wanted["CPU"] = float(resources.cpu)
    if resources.memory:
        wanted["MEMORY"] = float(resources.memory * MIB)
    if resources.gpu:
        wanted["GPU"] = float(resources.gpu)
    if resources.disk:
        wanted["DISK"] = float(resources.disk * GIB)
    return wanted


def describe_resources(offer: dict[str, float]) -> str:
    """``CPU=2, MEMORY=4000000000 (3815 MiB), GPU=1``: Dask's names, with readable sizes."""
    if not offer:
        return "no resources"
    order = list(_RESOURCE_OF.values())
    parts = []
    for name, amount in sorted(
        offer.items(), key=lambda kv: (order.index(kv[0]) if kv[0] in order else len(order), kv[0])
    ):
        text = f"{name}={amount:.12g}"
        if name == "MEMORY":
            text += f" ({amount / MIB:.0f} MiB)"
        elif name == "DISK":
            text += f" ({amount / GIB:.3g} GiB)"
        parts.append(text)
    return ", ".join(parts)


def describe_request(resources: Resources) -> str:
    """The request as the step wrote it: ``cpu=64, memory=2048``."""
    return ", ".join(f"{k}={v:g}" for k, v in resources.model_dump().items() if v)


def fits(offer: dict[str, float], wanted: dict[str, float]) -> bool:
    return all(offer.get(name, 0.0) >= amount for name, amount in wanted.items())


def largest_offer(
    offers: dict[str, dict[str, float]], wanted: dict[str, float]
) -> tuple[str, dict[str, float]]:
    """The worker that comes closest to ``wanted``: most resources met, then the largest share."""

    def closeness(item: tuple[str, dict[str, float]]) -> tuple[int, float, float]:
        offer = item[1]
        met = sum(1 for name, amount in wanted.items() if offer.get(name, 0.0) >= amount)
        share = sum(min(offer.get(name, 0.0) / amount, 1.0) for name, amount in wanted.items())
        return met, share, sum(offer.get(name, 0.0) for name in wanted)

    return max(offers.items(), key=closeness)


def default_worker_resources(n_workers: int) -> dict[str, float]:
    """What each LocalCluster worker offers without ``worker_resources``: an even share of the machine."""
    have = machine()
    offer = {"CPU": round(have["cpu"] / n_workers, 3)}
    if have["memory"]:
        offer["MEMORY"] = float(have["memory"] * MIB // n_workers)
    return offer


def _cli_resources(wanted: dict[str, float]) -> str:
    return " ".join(f"{name}={amount:.12g}" for name, amount in wanted.items())
