"""Orchestration: how the runs of a grid get executed. Its parts, one idea each:

* :mod:`.execute`: one run end to end (claim, train resuming, score, record) — what executors ship;
* :mod:`.packs`: runs trained together on one device, then recorded one by one;
* :mod:`.planning`: statuses and time estimates for ``run --dry-run``;
* :mod:`.resources`: the CPU threads a run computes with;
* :mod:`.provenance`: what is recorded with every result about versions, device and data.

A run's folder and files belong to :mod:`disent_bench.run_store`; readers (the report, statuses) use
that, not this package.
"""

from disent_bench.runner.execute import RunOutcome, execute_run, time_breakdown
from disent_bench.runner.packs import execute_pack, make_packs, pack_size
from disent_bench.runner.planning import check_data, plan
from disent_bench.runner.provenance import provenance
from disent_bench.runner.resources import available_cpus, cpu_threads, run_threads

__all__ = ["RunOutcome", "execute_run", "execute_pack", "make_packs", "pack_size", "plan", "check_data",
           "time_breakdown", "provenance", "run_threads", "cpu_threads", "available_cpus"]
