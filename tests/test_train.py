"""The training loop: determinism, bit-identical resume, safe checkpoints, the loss log, learning."""

from __future__ import annotations

import fractions
import json

import numpy as np
import pytest
import torch

from disent_bench import models
from disent_bench.errors import UserError
from disent_bench.train import TrainConfig, checkpoint_step, load_model, resolve_device, train
from training_helpers import assert_same_weights, one_thread, read_log, small_config, squares, weights  # noqa: F401


def test_same_seed_same_weights_and_losses():
    data = squares()
    runs = [train(models.build("vae", in_channels=1), data, small_config(), progress=False) for _ in range(2)]
    assert_same_weights(weights(runs[0].model), weights(runs[1].model))
    assert [r["loss"] for r in runs[0].log] == [r["loss"] for r in runs[1].log]
    assert [r["step"] for r in runs[0].log] == [2, 4, 6]
    other = train(models.build("vae", in_channels=1), data, small_config(seed=4), progress=False)
    assert not torch.equal(weights(other.model)[0], weights(runs[0].model)[0])


def test_beta_vae_with_beta_one_trains_exactly_like_vae():
    data = squares()
    vae = train(models.build("vae", in_channels=1), data, small_config(steps=4), progress=False)
    beta_one = train(models.build("beta_vae", in_channels=1, beta=1.0), data, small_config(steps=4), progress=False)
    assert_same_weights(weights(vae.model), weights(beta_one.model))
    assert vae.log == [dict(row, elapsed=r["elapsed"], images_per_s=r["images_per_s"])
                       for row, r in zip(beta_one.log, vae.log)]


def test_resume_is_bit_identical_and_log_has_no_duplicates(tmp_path):
    data = squares()
    whole = train(models.build("beta_vae", in_channels=1, beta=4.0), data, small_config(), tmp_path / "a",
                  progress=False)

    run_dir = tmp_path / "b"
    first = train(models.build("beta_vae", in_channels=1, beta=4.0), data, small_config(steps=3), run_dir,
                  progress=False)
    assert first.step == 3 and checkpoint_step(run_dir) == 3
    # As if killed after logging a row beyond the checkpoint: resume must drop it.
    with open(run_dir / "train_log.csv", "a") as handle:
        handle.write("4,1.0,1.0,0.0,1.0,1.0\n")
    (run_dir / ".checkpoint.pt.abc123.tmp").write_bytes(b"half a checkpoint")  # a kill during a write
    resumed = train(models.build("beta_vae", in_channels=1, beta=4.0), data, small_config(), run_dir,
                    progress=False)
    assert resumed.start_step == 3 and resumed.step == 6
    assert sorted(p.name for p in run_dir.iterdir()) == ["checkpoint.pt", "train_log.csv"]
    assert_same_weights(weights(whole.model), weights(resumed.model))
    assert_same_weights(weights(whole.model), weights(load_model(run_dir)))
    logged = read_log(run_dir / "train_log.csv")
    assert [row["step"] for row in logged] == [2.0, 4.0, 6.0]
    # The step-4 row mixes steps from both sessions and still equals the uninterrupted run's.
    assert [row["loss"] for row in logged] == [row["loss"] for row in read_log(tmp_path / "a" / "train_log.csv")]


def test_periodic_checkpoints_and_finished_run(tmp_path):
    data = squares()
    result = train(models.build("ae", in_channels=1), data, small_config(steps=5, checkpoint_every=2), tmp_path,
                   progress=False)
    assert checkpoint_step(tmp_path) == 5
    assert [row["step"] for row in result.log] == [2, 4, 5]
    assert set(result.final_losses) == {"total", "reconstruction", "kl"} and result.final_losses["kl"] == 0.0
    # Nothing left to do: resuming a finished run trains nothing and returns the saved model.
    again = train(models.build("ae", in_channels=1), data, small_config(steps=5), tmp_path, progress=False)
    assert again.start_step == again.step == 5 and again.images_per_s == 0.0
    assert [row["step"] for row in read_log(tmp_path / "train_log.csv")] == [2, 4, 5]
    assert_same_weights(weights(result.model), weights(again.model))
    loaded = load_model(tmp_path / "checkpoint.pt")
    assert not loaded.training and loaded.hparams == result.model.hparams


def test_checkpoint_of_another_model_is_refused_and_untouched(tmp_path):
    data = squares()
    train(models.build("ae", in_channels=1), data, small_config(steps=2), tmp_path, progress=False)
    before = (tmp_path / "checkpoint.pt").read_bytes(), (tmp_path / "train_log.csv").read_bytes()
    with pytest.raises(UserError, match="another model"):
        train(models.build("vae", in_channels=1), data, small_config(steps=4), tmp_path, progress=False)
    with pytest.raises(UserError, match="batch_size=8 but the config says 16"):
        train(models.build("ae", in_channels=1), data, small_config(steps=4, batch_size=16), tmp_path,
              progress=False)
    assert ((tmp_path / "checkpoint.pt").read_bytes(), (tmp_path / "train_log.csv").read_bytes()) == before


@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all", b"PK\x03\x04garbage"])
def test_corrupt_checkpoint_is_refused_and_untouched(tmp_path, content):
    (tmp_path / "checkpoint.pt").write_bytes(content)
    with pytest.raises(UserError, match="corrupt"):
        train(models.build("ae", in_channels=1), squares(), small_config(steps=2), tmp_path, progress=False)
    with pytest.raises(UserError, match="corrupt"):
        load_model(tmp_path)
    assert (tmp_path / "checkpoint.pt").read_bytes() == content
    assert not (tmp_path / "train_log.csv").exists()


def test_truncated_checkpoint_is_refused(tmp_path):
    train(models.build("ae", in_channels=1), squares(), small_config(steps=1), tmp_path, progress=False)
    path = tmp_path / "checkpoint.pt"
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(UserError, match="corrupt"):
        load_model(path)


def test_a_pickled_object_is_not_executed(tmp_path):
    # weights_only loading refuses arbitrary objects instead of running their code.
    torch.save({"format": "disent-bench-checkpoint", "payload": fractions.Fraction(1, 3)}, tmp_path / "checkpoint.pt")
    with pytest.raises(UserError, match="corrupt"):
        load_model(tmp_path)


def test_validation():
    with pytest.raises(UserError, match="batch_size"):
        TrainConfig(batch_size=0)
    with pytest.raises(UserError, match="lr"):
        TrainConfig(lr=-1.0)
    with pytest.raises(UserError, match="betas"):
        TrainConfig(betas=(0.9, 1.5))
    with pytest.raises(UserError, match="unknown key.*stepz"):
        TrainConfig.from_dict({"stepz": 3})
    assert TrainConfig.from_dict({"betas": [0.5, 0.9]}).betas == (0.5, 0.9)
    with pytest.raises(UserError, match="unknown device"):
        resolve_device("tpu")
    assert resolve_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="CUDA is not available"):
            resolve_device("cuda:0")
    with pytest.raises(UserError, match="3 channel"):
        train(models.build("ae", in_channels=3), squares(1), small_config(), progress=False)


def test_training_lowers_the_reconstruction_loss(tmp_path):
    from disent_bench.data import get_dataset

    data = get_dataset("dsprites_tiny", source="synthetic", data_dir=tmp_path / "data", progress=False)
    # A higher lr than the reference's 1e-4 so that 100 steps show learning.
    config = small_config(steps=100, batch_size=16, lr=2e-3, log_every=5, seed=0)
    result = train(models.build("vae", in_channels=1), data, config, tmp_path / "run", progress=False)
    start, end = result.log[0]["reconstruction"], result.log[-1]["reconstruction"]
    # The first 5 steps average near ln(2) nats per pixel (untrained logits ~ 0); 100 steps later the
    # decoder has at least learnt the mostly-black dSprites images (the mean-image plateau is ~700).
    assert start > 0.6 * 4096 * np.log(2)
    assert end < 0.35 * start, (start, end)
    assert all(np.isfinite(row["kl"]) and row["kl"] > 0 for row in result.log)


def test_speed_command_prints_json():
    from typer.testing import CliRunner

    from disent_bench.cli import app

    outcome = CliRunner().invoke(app, ["speed", "--json", "--steps", "3", "--repeats", "1", "--device", "cpu",
                                      "--batch-size", "16", "--encode-batch-size", "64"])
    assert outcome.exit_code == 0, outcome.output
    result = json.loads(outcome.stdout)
    for key in ("device", "batch_size", "train_images_per_s", "bare_images_per_s", "ratio", "ratio_cpu_time",
                "encode_images_per_s"):
        assert key in result
    assert result["device"] == "cpu" and result["batch_size"] == 16
    assert result["train_images_per_s"] > 0 and result["bare_images_per_s"] > 0 and result["encode_images_per_s"] > 0
    assert result["ratio"] == pytest.approx(result["train_images_per_s"] / result["bare_images_per_s"])


def test_divergence_stops_training_and_keeps_the_last_good_checkpoint(tmp_path):
    data = squares()
    config = small_config(steps=8, log_every=2, checkpoint_every=2)
    model = models.build("ae", in_channels=1)
    original_loss = model.loss
    calls = {"n": 0}

    def loss_turning_nan(x, **kwargs):
        calls["n"] += 1
        losses = original_loss(x, **kwargs)
        if calls["n"] > 4:  # steps 5.. diverge
            nan = losses["total"] * float("nan")
            return {"total": nan, "reconstruction": nan, "kl": losses["kl"]}
        return losses

    model.loss = loss_turning_nan
    with pytest.raises(FloatingPointError, match="diverged at step 6"):
        train(model, data, config, tmp_path, progress=False)
    # Stopped at the first log step that saw NaN, without overwriting the step-4 checkpoint.
    assert calls["n"] == 6
    assert checkpoint_step(tmp_path) == 4
    restored = load_model(tmp_path / "checkpoint.pt")
    assert all(torch.isfinite(t).all() for t in restored.state_dict().values())
