"""Packs in the grid runner: which runs train together, and a packed grid writes every run's own results."""

from __future__ import annotations

import json

import pytest

from disent_bench.errors import UserError
from disent_bench.executors import get_executor
from disent_bench.grid import expand, load_grid
from disent_bench.runner import make_packs, pack_size
from grid_helpers import tiny_grid


def grid(tmp_path, pack=3):
    """The runs of a grid of three families (an AE, beta_vae at two betas, factor_vae), two seeds each."""
    path = tiny_grid(tmp_path, name="packs", seeds=[0, 1], steps=4, benchmark={"pack": pack},
                     models=["ae", {"name": "beta_vae", "beta": [1, 4]},
                             {"name": "factor_vae", "gamma": 10, "steps": 2}])
    return expand(load_grid(path))


def test_packs_group_a_family_across_values_and_seeds(tmp_path):
    runs = grid(tmp_path, pack=3)
    packs = make_packs(runs)
    names = [[run.model["name"] for run in pack] for pack in packs]
    assert names == [["ae", "ae"], ["beta_vae"] * 3, ["beta_vae"], ["factor_vae", "factor_vae"]]
    assert sorted(run.id for pack in packs for run in pack) == sorted(run.id for run in runs)
    assert [len(pack) for pack in make_packs(grid(tmp_path, pack=1))] == [1] * len(runs)
    assert pack_size(grid(tmp_path, pack="auto")[0]) == 1  # on a CPU packing does not pay


@pytest.mark.parametrize("value", [0, -2, 2.5, "many"])
def test_bad_pack_values_are_refused(tmp_path, value):
    with pytest.raises(UserError, match="benchmark.pack"):
        grid(tmp_path, pack=value)


def test_a_packed_grid_writes_every_runs_own_results(tmp_path, data_home):
    runs = grid(tmp_path, pack=4)
    alone_runs = grid(tmp_path, pack=1)
    outcomes = get_executor("local").run(runs, tmp_path / "packed", progress=False)
    assert [o.status for o in outcomes] == ["done"] * len(runs)
    get_executor("local").run(alone_runs, tmp_path / "alone", progress=False)
    for run in runs:
        packed = json.loads((tmp_path / "packed" / "runs" / run.id / "metrics.json").read_text())
        alone = json.loads((tmp_path / "alone" / "runs" / run.id / "metrics.json").read_text())
        assert packed["provenance"]["packed_with"] == (2 if run.model["name"] in ("ae", "factor_vae") else 4)
        assert (tmp_path / "packed" / "runs" / run.id / "train_log.csv").is_file()
        # Metrics unchanged at reported precision (3 decimals for scores, 1 for reconstruction error).
        assert packed["results"]["mean"]["mig.score"] == pytest.approx(alone["results"]["mean"]["mig.score"], abs=5e-4)
        assert packed["results"]["mean"]["reconstruction.bce"] == pytest.approx(
            alone["results"]["mean"]["reconstruction.bce"], abs=0.05)
    again = get_executor("local").run(runs, tmp_path / "packed", progress=False)
    assert [o.status for o in again] == ["skipped"] * len(runs)


@pytest.mark.slow
def test_slurm_runs_a_pack_as_one_job(tmp_path, data_home):
    pytest.importorskip("submitit", reason="submitit is not installed (pip install 'disent-bench[slurm]')")
    from disent_bench.executors.slurm import SlurmExecutor

    runs = [run for run in grid(tmp_path, pack=2) if run.model["name"] == "beta_vae"][:2]
    outcomes = SlurmExecutor(cluster="local", poll_s=0.2).run(runs, tmp_path / "slurm", progress=False)
    assert [o.status for o in outcomes] == ["done", "done"]
    assert outcomes[0].extra["job_id"] == outcomes[1].extra["job_id"]  # one job for the pack
    for run in runs:
        record = json.loads((tmp_path / "slurm" / "runs" / run.id / "metrics.json").read_text())
        assert record["provenance"]["packed_with"] == 2
