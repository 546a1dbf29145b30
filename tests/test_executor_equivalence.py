"""The same grid gives the same numbers however it is executed: in this process, as parallel local jobs, on Ray
and as Slurm jobs (submitit's local back-end), because every run computes with its grid's ``cpus_per_run`` threads."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from disent_bench.executors import get_executor
from disent_bench.grid import expand, load_grid

GRID = """
[benchmark]
name = "equivalence"
seeds = [0]
device = "cpu"
cpus_per_run = 2

[train]
steps = 6
batch_size = 16
checkpoint_every = 3
log_every = 3
latent_dim = 4

[[datasets]]
name = "dsprites_tiny"
source = "synthetic"

[[models]]
name = "beta_vae"
beta = [1.0, 4.0]

[eval]
metrics = ["mig", "beta_vae", "dci", "reconstruction"]
preset = "quick"
[eval.mig]
num_train = 200
[eval.dci]
num_train = 100
num_test = 50
[eval.beta_vae]
batch_size = 8
num_train = 40
num_eval = 20
[eval.reconstruction]
num_batches = 2
batch_size = 16
"""


def results(out_dir: Path) -> dict[str, dict]:
    """Every run's metrics (without wall times), the threads it computed with, and its loss log."""
    found = {}
    for path in sorted((out_dir / "runs").glob("*/metrics.json")):
        data = json.loads(path.read_text())
        found[path.parent.name] = {
            "results": {rep: {k: v for k, v in values.items() if not k.endswith("seconds")}
                        for rep, values in data["results"].items()},
            "torch_threads": data["provenance"]["torch_threads"],
            "log": [line.split(",")[:4] for line in (path.parent / "train_log.csv").read_text().splitlines()]}
    return found


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("eq")  # short: Ray puts unix sockets under TMPDIR (at most 107 bytes)
    saved = {k: os.environ.get(k) for k in ("DISENT_BENCH_DATA", "TMPDIR", "RAY_ADDRESS")}
    os.environ["DISENT_BENCH_DATA"] = str(root / "datasets")
    (root / "tmp").mkdir()
    os.environ["TMPDIR"] = str(root / "tmp")
    os.environ.pop("RAY_ADDRESS", None)
    (root / "grid.toml").write_text(GRID)
    yield root
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


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


@pytest.mark.slow
def test_ray_gives_the_same_numbers(env, in_process):
    ray = pytest.importorskip("ray", reason="ray is not installed (pip install 'disent-bench[ray]')")
    import logging

    runs, expected = in_process
    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False,
             object_store_memory=128 * 1024 ** 2)
    try:
        outcomes = get_executor("ray").run(runs, env / "ray", progress=False)
    finally:
        ray.shutdown()
    assert [o.status for o in outcomes] == ["done", "done"], outcomes
    assert results(env / "ray") == expected


@pytest.mark.slow
def test_slurm_jobs_give_the_same_numbers(env, in_process):
    pytest.importorskip("submitit", reason="submitit is not installed (pip install 'disent-bench[slurm]')")
    from disent_bench.executors.slurm import SlurmExecutor

    runs, expected = in_process
    outcomes = SlurmExecutor(cluster="local", poll_s=0.2).run(runs, env / "slurm", progress=False)
    assert [o.status for o in outcomes] == ["done", "done"], outcomes
    assert results(env / "slurm") == expected
