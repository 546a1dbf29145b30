"""The same grid gives the same numbers however it is executed, because every run computes with its grid's
``cpus_per_run`` threads: here in this process (set to another thread count) and as parallel local jobs;
tests/test_executors_ray.py and tests/test_executors_slurm.py compare Ray and Slurm jobs with this process."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from disent_bench.executors import get_executor
from disent_bench.grid import expand, load_grid
from grid_helpers import environ, scores, tiny_grid


def results(out_dir: Path) -> dict[str, dict]:
    """Every run's metrics (without wall times), the threads it computed with, and its loss log."""
    found = {}
    for path in sorted((out_dir / "runs").glob("*/metrics.json")):
        data = json.loads(path.read_text())
        found[path.parent.name] = {
            "results": scores(path),
            "torch_threads": data["provenance"]["torch_threads"],
            "log": [line.split(",")[:4] for line in (path.parent / "train_log.csv").read_text().splitlines()]}
    return found


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("eq")
    tiny_grid(root, name="equivalence", benchmark={"cpus_per_run": 2},
              train={"batch_size": 16, "checkpoint_every": 3, "log_every": 3},
              models=[{"name": "beta_vae", "beta": [1.0, 4.0]}], metrics=["mig", "beta_vae", "sap", "reconstruction"],
              eval={"mig": {"num_train": 200}, "beta_vae": {"num_train": 40, "num_eval": 20}})
    with environ(DISENT_BENCH_DATA=str(root / "datasets")):
        yield root


@pytest.fixture(scope="module")
def in_process(env):
    runs = expand(load_grid(env / "grid.toml"))
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # not what the grid says: the run must set its own
    try:
        outcomes = get_executor("local").run(runs, env / "in_process", jobs=1, progress=False)
    finally:
        assert torch.get_num_threads() == 1  # and give the caller's setting back
        torch.set_num_threads(before)
    assert [o.status for o in outcomes] == ["done", "done"], outcomes
    found = results(env / "in_process")
    assert {r["torch_threads"] for r in found.values()} == {2}
    return runs, found


@pytest.mark.slow
def test_parallel_local_jobs_give_the_same_numbers(env, in_process):
    runs, expected = in_process
    outcomes = get_executor("local").run(runs, env / "jobs2", jobs=2, progress=False)
    assert [o.status for o in outcomes] == ["done", "done"], outcomes
    assert results(env / "jobs2") == expected
