"""The ``dask`` compute adapter: each task runs on a worker of a Dask distributed cluster.

Two ways to get a cluster (the profile's ``[compute]`` table):

- ``address = "tcp://127.0.0.1:8786"``: connect to a running scheduler; its workers run the tasks.
- no ``address``: start a ``distributed.LocalCluster`` on 127.0.0.1 for each run (``n_workers``
  worker processes of one thread each, every worker offering ``worker_resources``) and close it
  when the run ends.

A task is one Dask task that runs Lamina's task entry point on the worker, with
``LAMINA_PROJECT_DIR`` set to the driver's project and ``LAMINA_DASK_WORKER`` to the worker's
address. Never ``run_task`` in the Dask worker process itself: a task loads the flow as
``__main__``, points file descriptors 1 and 2 at its log capture and arms ``SIGALRM`` for
``@timeout``, all of which belong to the whole process, while a Dask worker runs tasks in threads
beside its own event loop; and a step that changes module state, leaks memory or crashes would
take the worker with it. Instead (``mode``):

- ``auto`` (where the flow file is on the worker and ``fork`` exists): the first task of a run on
  a Dask worker starts a warm ``python -m lamina worker``, the local stack's own warm worker, which
  imports Lamina and the flow once and forks a child per task that calls ``run_task``. Isolation
  is that of a fresh process, at the cost of a fork. The adapter stops these workers when the run
  ends.
- ``process`` (and ``auto`` when the flow file is not on the worker: the task then restores the
  code package from the blob store): each task is a new ``python -m lamina task --spec-file``
  process. The spec travels in a file on the worker, so a join over ten thousand inputs is not
  limited by the longest command-line argument.

``@resources`` maps onto Dask worker resources: ``cpu`` onto ``CPU``, ``memory`` (MiB) onto
``MEMORY`` (bytes), ``gpu`` onto ``GPU`` and ``disk`` (GiB) onto ``DISK`` (bytes). A step that
asks for any of them runs only on a worker that declares at least that much
(``dask worker ADDRESS --resources "CPU=4 MEMORY=16e9 GPU=1"``), and a request that no worker can
meet fails in :meth:`DaskCompute.compute_validate`, before anything is submitted.

With the ``local`` versioning and ``duckdb`` data adapters (the ``dask`` stack), the workers must
see the driver's project directory: a LocalCluster does, and so does a cluster on one machine or
on a shared filesystem. Workers elsewhere need a stack whose versioning and data live in a
service (S3, Snowflake...).

This module imports no Dask at import time: ``import lamina`` and ``lamina stack list`` stay fast.
"""

from __future__ import annotations

from .adapter import ADAPTER, DaskCompute
from .settings import DaskComputeSettings

__all__ = ["ADAPTER", "DaskCompute", "DaskComputeSettings"]
