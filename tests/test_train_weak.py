"""Weak supervision and correlated training data through the trainer, the grid, the runner and the report."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from disent_bench import models
from disent_bench.data import get_dataset
from disent_bench.errors import UserError
from disent_bench.grid import expand, load_grid
from disent_bench.report.runs import load_runs, sections
from disent_bench.runner.packs import make_packs, pack_group
from disent_bench.train import TrainConfig, train
from disent_bench.train.sampling import draw_step_input, training_weights
from grid_helpers import run_locally, tiny_grid
from training_helpers import assert_same_weights, one_thread, small_config, squares, weights  # noqa: F401

CORRELATED = {"name": "dsprites_tiny", "source": "synthetic",
              "correlations": [{"factors": ["posX", "posY"], "sigma": 0.2}]}


def test_a_pair_counts_as_two_images():
    assert models.resolve("ada_gvae").images_per_example() == 2
    assert models.resolve("ml_vae").images_per_example() == 2
    assert models.resolve("beta_vae").images_per_example() == 1
    result = train(models.build("ada_gvae", in_channels=1, k=1), squares(), small_config(steps=2), progress=False)
    assert result.step == 2 and result.images_per_s > 0


def test_pairs_reach_the_model_as_pairs_with_their_labels():
    dataset = get_dataset("dsprites_tiny", "synthetic", progress=False)
    model = models.build("gvae", in_channels=1, latent_dim=6, k=1, pairs="paper")
    generator = torch.Generator().manual_seed(0)
    images, extra = draw_step_input(model, dataset, 16, generator, torch.device("cpu"), None)
    assert images.shape == (16, 2, 1, 64, 64) and extra["labels"].shape == (16,)
    # paper pairs with k = 1: the two images differ (in exactly the labelled factor)
    assert all(not torch.equal(images[i, 0], images[i, 1]) for i in range(16))
    again, extra_again = draw_step_input(model, dataset, 16, torch.Generator().manual_seed(0), torch.device("cpu"),
                                         None)
    assert torch.equal(images, again) and torch.equal(extra["labels"], extra_again["labels"])


def test_correlated_training_draws_follow_the_correlation():
    dataset = get_dataset("dsprites_tiny", "synthetic", progress=False)
    config = TrainConfig(correlations=tuple(CORRELATED["correlations"]), device="cpu")
    weights_ = training_weights(dataset, config, torch.device("cpu"))
    assert weights_.shape == (len(dataset),) and float(weights_.sum()) == pytest.approx(1.0)
    model = models.build("beta_vae", in_channels=1)
    generator = torch.Generator().manual_seed(0)
    drawn = []
    for _ in range(40):
        images, _ = draw_step_input(model, dataset, 64, generator, torch.device("cpu"), weights_)
        drawn.append(images)
    # the factors of the drawn images (the pixels of dsprites_tiny determine them: read them back by index)
    generator = torch.Generator().manual_seed(0)
    indices = torch.cat([torch.multinomial(weights_, 64, replacement=True, generator=generator) for _ in range(40)])
    factors = dataset.factors_of(indices.numpy())
    posx, posy = factors[:, 3], factors[:, 4]
    assert np.corrcoef(posx, posy)[0, 1] > 0.7
    assert training_weights(dataset, TrainConfig(device="cpu"), torch.device("cpu")) is None


def test_correlated_run_resumes_exactly_and_refuses_other_correlations(tmp_path):
    data = squares()
    correlated = {"correlations": ({"factors": ["x", "y"], "sigma": 0.3, "anti": False},)}
    whole = train(models.build("beta_vae", in_channels=1, beta=4), data, small_config(**correlated),
                  tmp_path / "whole", progress=False)
    plain = train(models.build("beta_vae", in_channels=1, beta=4), data, small_config(), progress=False)
    assert not all(torch.equal(a, b) for a, b in zip(weights(whole.model), weights(plain.model)))
    train(models.build("beta_vae", in_channels=1, beta=4), data, small_config(steps=3, **correlated),
          tmp_path / "parts", progress=False)
    resumed = train(models.build("beta_vae", in_channels=1, beta=4), data, small_config(**correlated),
                    tmp_path / "parts", progress=False)
    assert resumed.start_step == 3
    assert_same_weights(weights(whole.model), weights(resumed.model))
    with pytest.raises(UserError, match="correlations"):
        train(models.build("beta_vae", in_channels=1, beta=4), data, small_config(steps=8), tmp_path / "parts",
              progress=False)


def test_grid_ids_packs_and_clear_errors(tmp_path):
    grid = tiny_grid(tmp_path, seeds=(0, 1), datasets=("dsprites_tiny", CORRELATED),
                     models=({"name": "beta_vae", "beta": 4}, {"name": "ada_gvae", "beta": 4, "k": "random"}))
    runs = expand(load_grid(grid))
    correlated = [r for r in runs if r.dataset.get("correlations")]
    assert len(correlated) == 4 and all("dsprites_tiny_corr-" in r.id for r in correlated)
    assert correlated[0].dataset["correlations"] == [{"factors": ["posX", "posY"], "sigma": 0.2, "anti": False}]
    plain_ids = {r.id for r in runs if not r.dataset.get("correlations")}
    assert not plain_ids & {r.id for r in correlated}
    # pair models train alone; beta-VAE runs pack with their own training data only
    assert all(pack_group(r) is None for r in runs if r.model["name"] == "ada_gvae")
    for pack in make_packs(runs):
        assert len({json.dumps(r.dataset, sort_keys=True) for r in pack}) == 1

    cases = [
        ({"datasets": ({**CORRELATED, "correlations": [{"factors": ["posX", "posZ"], "sigma": 0.2}]},)}, "posZ"),
        ({"datasets": ({**CORRELATED, "correlations": [{"factors": ["posX", "posY"], "sigma": 0}]},)}, "sigma"),
        ({"models": ({"name": "ada_gvae", "k": 9},)}, "k = 9 does not fit"),
        ({"models": ({"name": "gvae", "k": 1},), "train": {"latent_dim": 3}}, "latent_dim >= the number of factors"),
        ({"models": ({"name": "ada_gvae", "pairs": "papers"},)}, "pairs"),
    ]
    for i, (overrides, message) in enumerate(cases):
        bad = tiny_grid(tmp_path / f"bad{i}.toml", **overrides)
        with pytest.raises(UserError, match=message):
            load_grid(bad)


def test_report_keeps_supervision_and_training_data_apart(tmp_path):
    grid = tiny_grid(tmp_path, steps=4, train={"latent_dim": 5}, datasets=("dsprites_tiny", CORRELATED),
                     models=({"name": "beta_vae", "beta": 4}, {"name": "ada_gvae", "beta": 4, "k": "random"},
                             {"name": "gvae", "beta": 4, "k": 1}))
    out = tmp_path / "results"
    run_locally(grid, out)
    frame = load_runs(out)
    labels = set(frame["label"])
    assert {"β-VAE (β = 4)", "Ada-GVAE (β = 4, k = rnd)", "GVAE (β = 4, k = 1)"} <= labels
    titled = {(s["training_data"], s["supervision"]) for s, _ in sections(frame)}
    assert titled == {("", ""), ("", "weak: pairs"), ("correlated: posX~posY σ=0.2", ""),
                      ("correlated: posX~posY σ=0.2", "weak: pairs")}
    record = json.loads(next((out / "runs").glob("*_corr-ada_gvae*/metrics.json")).read_text())
    assert record["config"]["dataset"]["correlations"][0]["sigma"] == 0.2


def test_data_show_draws_the_joint_histogram_of_training_draws(tmp_path):
    cli = [sys.executable, "-m", "disent_bench", "data", "show", "dsprites_tiny", "--source", "synthetic"]
    out = tmp_path / "show.png"
    done = subprocess.run([*cli, "--out", str(out), "--correlations", "posX,posY,0.2"], capture_output=True,
                          text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    joint = tmp_path / "show-correlations.png"
    assert joint.stat().st_size > 5000 and "posX~posY σ=0.2" in done.stdout
    bad = subprocess.run([*cli, "--out", str(out), "--correlations", "posX,posW,0.2"], capture_output=True,
                         text=True, cwd=tmp_path)
    assert bad.returncode == 2 and "posW" in bad.stderr and "Traceback" not in bad.stderr


def test_correlated_runs_packed_give_the_numbers_they_give_alone(tmp_path):
    results = {}
    for pack in (1, 2):
        grid = tiny_grid(tmp_path / f"pack{pack}.toml", seeds=(0, 1), datasets=(CORRELATED,),
                         models=({"name": "beta_vae", "beta": 4},), benchmark={"pack": pack})
        results[pack] = run_locally(grid, tmp_path / f"pack{pack}" / "results")["scores"]
    # Packed training differs from training alone only in rounding (tests/test_train_packed.py); a pack that
    # drew its batches uniformly instead of by the correlated weights would train on other images entirely.
    assert results[1].keys() == results[2].keys() and len(results[1]) == 2
    for run_id, by_rep in results[1].items():
        for key, value in by_rep["mean"].items():
            assert results[2][run_id]["mean"][key] == pytest.approx(value, rel=1e-4, abs=1e-6), key


def test_k_minus_one_and_random_are_one_run(tmp_path):
    ids = []
    for spelling in (-1, "random"):
        grid = tiny_grid(tmp_path / f"k{spelling}.toml", models=({"name": "ada_gvae", "k": spelling},))
        ids.append([run.id for run in expand(load_grid(grid))])
    assert ids[0] == ids[1] and "krandom" in ids[0][0]
