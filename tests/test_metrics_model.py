"""Metrics on a real model: a briefly trained beta-VAE on dsprites_tiny, and the ``disent-bench eval`` command."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from disent_bench.data import get_dataset
from disent_bench.metrics import evaluate
from disent_bench.models import build
from disent_bench.train import TrainConfig, load_model, train

# Samples small enough for a test, large enough to separate a trained model from an untrained one.
SETTINGS = {
    "beta_vae": {"num_train": 60, "num_eval": 40},
    "factor_vae": {"num_train": 60, "num_eval": 40, "num_variance_estimate": 500},
    "mig": {"num_train": 1000},
    "dci": {"num_train": 200, "num_test": 100},
    "sap": {"num_train": 500, "num_test": 250},
    "modularity": {"num_train": 500, "num_test": 250},
    "reconstruction": {"num_batches": 4, "batch_size": 64},
}
METRICS = ["beta_vae", "factor_vae", "mig", "sap", "modularity", "reconstruction"]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("data")


@pytest.fixture(scope="module")
def tiny(data_dir):
    return get_dataset("dsprites_tiny", source="synthetic", data_dir=data_dir, progress=False)


@pytest.fixture(scope="module")
def trained(tiny, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("run")
    model = build("beta_vae", in_channels=1, latent_dim=10, beta=4.0)
    # A dozen steps at a high learning rate: enough to move every score, cheap on a CPU.
    config = TrainConfig(steps=12, batch_size=32, lr=1e-3, seed=0, device="cpu", checkpoint_every=12,
                         log_every=4)
    train(model, tiny, config, run_dir=run_dir, progress=False)
    return run_dir / "checkpoint.pt"


def test_trained_beta_vae_scores_differ_from_untrained(tiny, trained):
    model = load_model(trained)
    untrained = build(**model.hparams)
    kwargs = dict(metrics=METRICS, preset="quick", settings=SETTINGS, seed=0, progress=False)
    after = evaluate(tiny, model, **kwargs)
    before = evaluate(tiny, untrained, **kwargs)
    assert after["images_encoded"] == before["images_encoded"] <= len(tiny)
    # Training must show in the reconstruction and in the information the codes carry.
    assert after["reconstruction.bce"] < 0.9 * before["reconstruction.bce"]
    assert after["reconstruction.bce_sampled"] >= after["reconstruction.bce"] - 1.0
    assert after["beta_vae.eval_accuracy"] != before["beta_vae.eval_accuracy"]
    assert after["mig.score"] != before["mig.score"]
    assert after["modularity.explicitness"] > before["modularity.explicitness"]
    assert all(np.isfinite(v) for v in after.values())


def _cli(monkeypatch, capsys, *args):
    from disent_bench.cli import main

    monkeypatch.setattr(sys, "argv", ["disent-bench", *map(str, args)])
    code = 0
    try:
        main()
    except SystemExit as exc:
        code = exc.code or 0
    out = capsys.readouterr()
    return code, out.out, out.err


def test_eval_command_prints_the_library_scores_as_json(tiny, trained, data_dir, monkeypatch, capsys):
    code, out, err = _cli(monkeypatch, capsys, "--data-dir", data_dir, "eval", trained, "--dataset", "dsprites_tiny",
                          "--source", "synthetic", "--preset", "quick", "--metrics", "mig,reconstruction",
                          "--seed", "5", "--json")
    assert code == 0, err
    report = json.loads(out)
    expected = evaluate(tiny, load_model(trained), metrics=["mig", "reconstruction"], preset="quick", seed=5,
                        progress=False)
    scores = report["scores"]
    for key in ("mig.score", "reconstruction.bce", "reconstruction.mse", "images_encoded"):
        assert scores[key] == pytest.approx(expected[key], rel=1e-9), key
    assert report["dataset"] == "dsprites_tiny" and report["source"] == "synthetic"
    assert "scikit-learn" in report["versions"]


def test_eval_command_table(trained, data_dir, monkeypatch, capsys):
    code, out, err = _cli(monkeypatch, capsys, "--data-dir", data_dir, "eval", trained, "--dataset", "dsprites_tiny",
                          "--source", "synthetic", "--preset", "quick", "--metrics", "mig")
    assert code == 0, err
    assert "mig.score" in out and "images_encoded" in out


def test_eval_command_rejects_bad_input(tmp_path, trained, data_dir, monkeypatch, capsys):
    corrupt = tmp_path / "checkpoint.pt"
    corrupt.write_bytes(b"not a checkpoint")
    code, _, err = _cli(monkeypatch, capsys, "--data-dir", data_dir, "eval", corrupt, "--dataset", "dsprites_tiny",
                        "--source", "synthetic")
    assert code == 2 and err.startswith("error:") and "Traceback" not in err
    code, _, err = _cli(monkeypatch, capsys, "eval", trained, "--dataset", "dsprites_tiny", "--metrics", "mig,bogus")
    assert code == 2 and "unknown metric 'bogus'" in err
    code, _, err = _cli(monkeypatch, capsys, "eval", tmp_path / "missing.pt", "--dataset", "dsprites_tiny")
    assert code == 2 and "not found" in err
