"""The CPU a run computes with: its thread count, set for the run whatever executes it, and the cores here.

The thread count changes the last digits of results (the order of floating-point sums), so it is a
setting of the grid (``[benchmark] cpus_per_run``), the same for every executor and ``--jobs``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import torch
from threadpoolctl import threadpool_limits

from disent_bench.grid import DEFAULT_CPUS_PER_RUN, RunSpec

__all__ = ["run_threads", "cpu_threads", "available_cpus"]


def run_threads(run: RunSpec) -> int:
    """CPU threads the run computes with: its grid's ``cpus_per_run`` (whatever executes it)."""
    return max(1, int((run.resources or {}).get("cpus_per_run", DEFAULT_CPUS_PER_RUN)))


@contextlib.contextmanager
def cpu_threads(threads: int) -> Iterator[None]:
    """Compute with ``threads`` CPU threads: torch's intra-op pool and the BLAS/OpenMP pools numpy and
    scikit-learn use (so the order of floating-point sums, and with it the last digits of every result,
    depends on the grid only, not on the executor or on ``--jobs``)."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with threadpool_limits(limits=threads):
            yield
    finally:
        torch.set_num_threads(before)


def available_cpus() -> int:
    """The cores this process may run on (its affinity on Linux, else the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1
