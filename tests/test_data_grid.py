"""The new datasets through a grid: official-format tiny files in a data home, trained and scored end to end."""

from __future__ import annotations

import dataclasses
import hashlib
import json

import numpy as np
import pytest
import torch

from disent_bench.errors import UserError

from disent_bench.data import cars3d, dsprites, mpi3d, smallnorb
from disent_bench.data.spec import OfficialFile
from disent_bench.executors import get_executor
from disent_bench.grid import expand, load_grid
from grid_helpers import tiny_grid
from official_formats import write_cars3d, write_mpi3d_npz, write_smallnorb


def write_grid(tmp_path, datasets):
    """The grid of these tests: one VAE, 3 steps, on ``datasets``."""
    return tiny_grid(tmp_path, name="more", steps=3, train={"lr": 1e-3, "checkpoint_every": 3, "log_every": 3},
                     datasets=datasets, models=["vae"], eval={"reconstruction": {"num_batches": 1, "batch_size": 8}})


MPI3D_SIZES = (2, 2, 2, 2, 2, 2, 2)


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A data home with tiny official-format files of SmallNORB, Cars3D and MPI3D, the specs pointed at them."""
    home = tmp_path / "home"
    monkeypatch.setenv("DISENT_BENCH_DATA", str(home))
    listed = []
    for name, path in write_smallnorb(home).items():
        listed.append(OfficialFile(name, None, path.stat().st_size, hashlib.sha256(path.read_bytes()).hexdigest()))
    monkeypatch.setattr(smallnorb, "SPEC", dataclasses.replace(smallnorb.SPEC, official_files=tuple(listed)))
    archive = write_cars3d(home / cars3d.OFFICIAL_FILENAME, numbers=(2, 1))
    monkeypatch.setattr(cars3d, "SPEC", dataclasses.replace(cars3d.SPEC,
                                                            official_md5=hashlib.md5(archive.read_bytes()).hexdigest()))
    write_mpi3d_npz(home / "mpi3d_toy.npz", MPI3D_SIZES)
    toy = next(s for s in mpi3d.SPECS if s.name == "mpi3d_toy")
    toy = dataclasses.replace(toy, official_files=(OfficialFile("mpi3d_toy.npz", None,
                                                                check_format=lambda p: mpi3d.check_npz(p, 128)),))
    monkeypatch.setattr(mpi3d, "SPECS", tuple(toy if s.name == "mpi3d_toy" else s for s in mpi3d.SPECS))
    monkeypatch.setitem(mpi3d.SIZES_BY_COUNT, 128, MPI3D_SIZES)  # the tiny file's grid, by its image count
    tiny = dataclasses.replace(dsprites.SPEC, factor_sizes=dsprites.TINY_SPEC.factor_sizes,
                               render_synthetic=dsprites.TINY_SPEC.render_synthetic,
                               factor_values=dsprites.TINY_SPEC.factor_values)
    monkeypatch.setattr(dsprites, "SPEC", tiny)
    return home


def test_every_new_dataset_trains_and_scores_through_a_grid(tmp_path, home):
    entries = [("smallnorb", "official", 1), ("cars3d", "official", 3), ("mpi3d_toy", "official", 3),
               ("scream_dsprites", "synthetic", 3)]
    grid_path = write_grid(tmp_path, [{"name": n, "source": s} for n, s, _ in entries])
    runs = expand(load_grid(grid_path))
    assert [r.dataset["name"] for r in runs] == [n for n, _, _ in entries]
    torch.set_num_threads(1)
    outcomes = get_executor("local").run(runs, tmp_path / "results", progress=False)
    assert [o.status for o in outcomes] == ["done"] * len(entries)
    for run, (name, source, channels) in zip(runs, entries):
        record = json.loads((tmp_path / "results" / "runs" / run.id / "metrics.json").read_text())
        dataset = record["provenance"]["dataset"]
        assert dataset["name"] == name and dataset["source"] == source and dataset["image_shape"][2] == channels
        values = record["results"]["mean"]
        assert np.isfinite(values["mig.score"]) and np.isfinite(values["reconstruction.bce"])


def test_a_grid_asking_for_a_synthetic_smallnorb_fails_before_any_run(tmp_path):
    grid_path = write_grid(tmp_path, [{"name": "smallnorb", "source": "synthetic"}])
    with pytest.raises(UserError, match=r"datasets\[0\]\.source.*smallnorb has no synthetic version.*data fetch smallnorb"):
        load_grid(grid_path)
