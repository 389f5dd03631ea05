"""Connecting to a Dask cluster: ``local[:N]`` starts one on this machine, anything else is a
scheduler's address (or a ``dask scheduler --scheduler-file`` JSON file)."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_LOCAL = re.compile(r"local(?::(\d+))?")


def local_workers(address: str) -> int | None:
    """The worker count of ``local`` / ``local:N`` (None for a scheduler's address).

    ``local`` alone gives one worker per physical core.

    >>> local_workers("local:3"), local_workers("tcp://10.0.0.5:8786")
    (3, None)
    """
    m = _LOCAL.fullmatch(address.strip())
    if m is None:
        if address.strip().startswith("local"):
            raise ValueError(f"--dask {address}: write local or local:N (N worker processes)")
        return None
    if m.group(1) is None:
        from ..runtime import physical_cores

        return physical_cores()
    n = int(m.group(1))
    if n < 1:
        raise ValueError(f"--dask {address}: N must be at least 1")
    return n


@contextmanager
def connect(address: str, timeout: float = 30.0) -> Iterator:
    """A ``distributed.Client`` for ``address``, closed (with its local cluster) on exit.

    ``local:N`` starts a ``LocalCluster`` of N worker processes with one thread each (edgemine
    tasks then run one Numba/BLAS thread each); a ``tcp://HOST:PORT`` address joins a running
    scheduler, whose workers need edgemine installed and the files' paths visible.

    Example:
        >>> with connect("local:1") as client:  # doctest: +SKIP
        ...     client.submit(sum, [1, 2]).result()
        3
    """
    from distributed import Client, LocalCluster

    n = local_workers(address)
    cluster = None
    if n is not None:
        import dask

        # Dask starts workers with MALLOC_TRIM_THRESHOLD_ set (to hand memory back sooner);
        # that makes glibc map and unmap every large temporary array: training ran 1.1-2.3x
        # slower (tools/results/dask.md). edgemine's tasks reuse their memory, so unset it.
        with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}):
            cluster = LocalCluster(
                n_workers=n,
                threads_per_worker=1,
                processes=True,
                dashboard_address=":0",  # any free port: never a clash with another cluster
                silence_logs=logging.ERROR,
            )
        client = Client(cluster)
    elif address.endswith(".json") and Path(address).is_file():
        client = Client(scheduler_file=address, timeout=timeout)
    else:
        try:
            client = Client(address, timeout=timeout)
        except OSError as e:
            raise ConnectionError(
                f"--dask {address}: cannot reach a Dask scheduler ({e})"
            ) from None
    try:
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
