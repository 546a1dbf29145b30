"""The CUDA path: training, exact resume, the uint8 store on the GPU, packed against alone, GPU encoding and a
grid with ``device = "cuda"``. Skipped where there is no CUDA device (CI); ``scripts/gpu-check`` runs them."""

from __future__ import annotations

import json

import pytest
import torch

from disent_bench import models
from disent_bench.train import train
from disent_bench.train.packed import train_packed
from grid_helpers import tiny_grid
from training_helpers import read_log, small_config, squares, weights

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here (run scripts/gpu-check on a GPU machine)")]


def cuda_config(**overrides):
    return small_config(device="cuda", **overrides)


@pytest.mark.parametrize("name", ["beta_vae", "factor_vae", "annealed_vae"])
def test_trains_on_cuda_deterministically_and_resumes_exactly(name, tmp_path):
    data = squares()
    whole = train(models.build(name, in_channels=1), data, cuda_config(), tmp_path / "whole", progress=False)
    assert whole.device.startswith("cuda") and all(p.is_cuda for p in whole.model.parameters())
    again = train(models.build(name, in_channels=1), data, cuda_config(), progress=False)
    train(models.build(name, in_channels=1), data, cuda_config(steps=3), tmp_path / "parts", progress=False)
    resumed = train(models.build(name, in_channels=1), data, cuda_config(), tmp_path / "parts", progress=False)
    # cuDNN may pick non-deterministic kernels: equality is checked to float tolerance, and reported.
    for other in (again, resumed):
        diff = max((a - b).abs().max().item() for a, b in zip(weights(whole.model), weights(other.model)))
        assert diff < 1e-5, diff
    assert [r["step"] for r in read_log(tmp_path / "parts" / "train_log.csv")] == [2, 4, 6]


def test_the_uint8_store_gathers_on_the_gpu():
    data = squares()
    indices = torch.tensor([0, 5, 15], device="cuda")
    batch = data.batch(indices, torch.device("cuda"))
    assert batch.is_cuda and batch.dtype == torch.float32
    assert torch.equal(batch.cpu(), data.batch(indices.cpu(), torch.device("cpu")))


def test_packed_matches_alone_on_cuda(tmp_path):
    data = squares()
    params = [{"gamma": 10}, {"gamma": 40}]
    configs = [cuda_config(seed=0), cuda_config(seed=1)]
    alone = [train(models.build("factor_vae", in_channels=1, **p), data, c, progress=False) for p, c in zip(params, configs)]
    packed = train_packed([models.build("factor_vae", in_channels=1, **p) for p in params], data, configs, progress=False)
    for a, b in zip(alone, packed):
        assert max((x - y).abs().max().item() for x, y in zip(weights(a.model), weights(b.model))) < 0.05 * 1e-4 * 6


def test_evaluation_encodes_on_the_gpu(data_home):
    from disent_bench.data import get_dataset
    from disent_bench.metrics import evaluate

    data = get_dataset("dsprites_tiny", "synthetic", progress=False)
    model = models.build("beta_vae", in_channels=1, beta=4).to("cuda").eval()
    on_gpu = evaluate(data, model, metrics=["mig", "reconstruction"], preset="quick", device="cuda", progress=False,
                      settings={"mig": {"num_train": 200}, "reconstruction": {"num_batches": 2, "batch_size": 16}})
    on_cpu = evaluate(data, model.to("cpu"), metrics=["mig", "reconstruction"], preset="quick", device="cpu",
                      progress=False,
                      settings={"mig": {"num_train": 200}, "reconstruction": {"num_batches": 2, "batch_size": 16}})
    assert on_gpu["mig.score"] == pytest.approx(on_cpu["mig.score"], abs=0.02)
    assert on_gpu["reconstruction.bce"] == pytest.approx(on_cpu["reconstruction.bce"], rel=1e-4)


def test_a_tiny_grid_on_cuda(tmp_path, data_home):
    from disent_bench.executors import get_executor
    from disent_bench.grid import expand, load_grid

    grid = tiny_grid(tmp_path, name="cuda", device="cuda", benchmark={"pack": 2}, steps=4,
                     train={"batch_size": 16, "log_every": None}, models=[{"name": "beta_vae", "beta": [1, 4]}])
    runs = expand(load_grid(grid))
    outcomes = get_executor("local").run(runs, tmp_path / "out", progress=False)
    assert [o.status for o in outcomes] == ["done", "done"], outcomes
    for run in runs:
        record = json.loads((tmp_path / "out" / "runs" / run.id / "metrics.json").read_text())
        assert record["provenance"]["device"].startswith("cuda") and record["provenance"]["packed_with"] == 2
