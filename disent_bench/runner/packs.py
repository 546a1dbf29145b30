"""Packs: runs of one model family trained together on one device (:mod:`disent_bench.train.packed`),
then each scored and recorded on its own.

Which runs may share a pack is :mod:`disent_bench.identity`'s rule (:func:`pack_group` applies it to
run specs, before anything is built); how many share one is the grid's ``[benchmark] pack``.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Mapping

from disent_bench import models
from disent_bench.devices import resolve_device
from disent_bench.errors import UserError
from disent_bench.grid import RunSpec
from disent_bench.identity import class_pack_problem, pack_signature
from disent_bench.progress import say
from disent_bench.run_store import checkpoint_step, claim, is_done, run_dir
from disent_bench.runner.execute import (Prepared, RunOutcome, execute_run, failed, prepare, score_and_record,
                                         train_prepared)
from disent_bench.runner.resources import cpu_threads, run_threads
from disent_bench.train.packed import train_packed

__all__ = ["AUTO_PACK", "pack_size", "pack_group", "make_packs", "execute_pack"]

#: ``[benchmark] pack = "auto"``: runs per pack by device. On a CPU packing does not pay (measured with
#: ``disent-bench speed --pack``: a pack of 4 trains about half as many images/s as runs alone); on CUDA
#: it turns kernel-launch-bound single runs into batched work.
AUTO_PACK = {"cpu": 1, "mps": 1, "cuda": 8}


def pack_size(run: RunSpec) -> int:
    """How many runs may train together with ``run``: the grid's ``pack`` (``"auto"``: by device)."""
    value = (run.resources or {}).get("pack", "auto")
    if value == "auto":
        try:
            kind = resolve_device(run.device).type
        except UserError:
            kind = "cpu"  # the run will fail with the device error itself
        return AUTO_PACK.get(kind, 1)
    return max(1, int(value))


def pack_group(run: RunSpec) -> str | None:
    """Runs with equal groups may share a pack (None: this run trains alone)."""
    try:
        cls = models.resolve(run.model["name"])
    except UserError:
        return None
    if class_pack_problem(cls):
        return None  # not packable: trained alone
    return pack_signature(cls, {**run.model["params"], "latent_dim": run.model["latent_dim"]}, run.train,
                          model=run.model["name"], dataset=run.dataset, device=run.device, threads=run_threads(run))


def make_packs(runs: list[RunSpec]) -> list[list[RunSpec]]:
    """The runs as units of work: packs of at most ``pack_size`` runs that can train together, in grid order."""
    groups: dict[str, list[RunSpec]] = {}
    units: list[list[RunSpec]] = []
    for run in runs:
        size = pack_size(run)
        key = pack_group(run) if size > 1 else None
        if key is None:
            units.append([run])
            continue
        members = groups.get(key)
        if members is None or len(members) >= size:
            members = groups[key] = []
            units.append(members)
        members.append(run)
    return units


def execute_pack(runs: list[RunSpec] | list[Mapping], out_dir: str | os.PathLike, *,
                 progress: bool = False, wait: bool = False) -> list[RunOutcome]:
    """:func:`execute_run` for a pack: its runs train together where they stand at the same step, then each
    is scored and recorded on its own. Never raises for a failure of a run; returns an outcome per run."""
    runs = [run if isinstance(run, RunSpec) else RunSpec.from_json(run) for run in runs]
    if len(runs) == 1:
        return [execute_run(runs[0], out_dir, progress=progress, wait=wait)]
    start = time.perf_counter()
    outcomes: dict[str, RunOutcome] = {}
    with contextlib.ExitStack() as stack:
        mine: list[RunSpec] = []
        for run in runs:
            directory = run_dir(out_dir, run.id)
            if not stack.enter_context(claim(directory, wait=wait)):
                outcomes[run.id] = RunOutcome(run.id, "claimed")
            elif is_done(directory, run):
                outcomes[run.id] = RunOutcome(run.id, "skipped")
            else:
                mine.append(run)
        with cpu_threads(max(run_threads(run) for run in runs)):
            outcomes.update(_train_pack(mine, out_dir, progress=progress, start=start))
    return [outcomes[run.id] for run in runs]


def _train_pack(runs: list[RunSpec], out_dir, *, progress: bool, start: float) -> dict[str, RunOutcome]:
    outcomes: dict[str, RunOutcome] = {}
    prepared: list[Prepared] = []
    for run in runs:
        directory = run_dir(out_dir, run.id)
        try:
            prepared.append(prepare(run, directory, progress=progress))
        except Exception as exc:  # noqa: BLE001 - this run fails; the pack goes on without it
            outcomes[run.id] = failed(run, directory, exc, time.perf_counter() - start)
    # Only runs at the same step train together (a pack interrupted between two runs' checkpoints resumes
    # as smaller packs); a run whose checkpoint cannot be read trains alone and reports why.
    by_step: dict[int | None, list[Prepared]] = {}
    for item in prepared:
        try:
            step = checkpoint_step(item.directory) or 0
        except UserError:
            step = None
        by_step.setdefault(step, []).append(item)
    for step, group in by_step.items():
        if step is None or len(group) == 1:
            for item in group:
                outcomes[item.run.id] = _train_one(item, progress=progress, start=start)
            continue
        t0 = time.perf_counter()
        try:
            results = train_packed([item.model for item in group], group[0].dataset, [item.config for item in group],
                                   [item.directory for item in group], progress=progress)
        except UserError as exc:  # not packable after all (e.g. a user model with buffers): train alone
            say(f"warning: training {len(group)} runs alone instead of packed: {exc}")
            for item in group:
                outcomes[item.run.id] = _train_one(item, progress=progress, start=start)
            continue
        seconds = time.perf_counter() - t0
        for item, result in zip(group, results):
            item.timing["train"] = seconds / len(group)  # the pack's time, shared
            if isinstance(result, BaseException):
                outcomes[item.run.id] = failed(item.run, item.directory, result, time.perf_counter() - start)
                continue
            try:
                outcome = score_and_record(item, result, progress=progress, packed_with=len(group))
            except Exception as exc:  # noqa: BLE001
                outcome = failed(item.run, item.directory, exc, time.perf_counter() - start)
            outcome.seconds = time.perf_counter() - start
            outcome.extra = {**outcome.extra, "packed_with": len(group)}
            outcomes[item.run.id] = outcome
    return outcomes


def _train_one(item: Prepared, *, progress: bool, start: float) -> RunOutcome:
    try:
        outcome = train_prepared(item, progress=progress)
    except Exception as exc:  # noqa: BLE001
        return failed(item.run, item.directory, exc, time.perf_counter() - start)
    outcome.seconds = time.perf_counter() - start
    return outcome
