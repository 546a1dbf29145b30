"""Packed training: runs of a family trained together match the same runs trained alone, each with its own
streams, hyper-parameters, checkpoint, log, resume and failure."""

from __future__ import annotations

import pytest
import torch

from disent_bench import models
from disent_bench.errors import UserError
from disent_bench.models.vae import BetaVAE
from disent_bench.train import read_checkpoint, train
from disent_bench.train.packed import pack_problem, train_packed
from training_helpers import one_thread, read_log, small_config, squares, weights  # noqa: F401

# Packed and alone differ only in the kernels' order of summation. Adam moves a weight by at most about lr
# per step, so after 6 steps of lr 1e-4 two trajectories can part by at most 2 * 6 * lr, and we ask for 5%
# of one run's travel (3e-5) on nearly every weight. Not on all: where a weight's gradient is a
# cancellation (near zero), Adam's first steps move it by +-lr whatever its size, so the sign of a rounding
# error decides. Measured after 6 steps: on an AMD EPYC every weight within 1.6e-5; on an Intel Xeon
# (AVX-512, other oneDNN kernels) 1.1% of one AE's weights parted by up to 4.7e-4, median 3e-7, with
# losses equal to 4e-8. Two different runs part on most weights (asserted, so the check can fail).
WEIGHT_TOLERANCE = 0.05 * 1e-4 * 6
WEIGHT_BOUND = 2 * 6 * 1e-4
WITHIN_TOLERANCE = 0.97
# Losses agree to float32 sums in another order (measured: up to 6e-5 relative for FactorVAE on the Xeon).
LOSS_TOLERANCE = 1e-4

PAIRS = {"ae": [{}, {}], "beta_vae": [{"beta": 1}, {"beta": 4}], "factor_vae": [{"gamma": 10}, {"gamma": 40}],
         "beta_tc_vae": [{"beta": 2}, {"beta": 6}], "dip_vae_i": [{"lambda_od": 1}, {"lambda_od": 10}],
         "dip_vae_ii": [{"lambda_od": 2}, {"lambda_od": 5}],
         "annealed_vae": [{"c_max": 5, "iteration_threshold": 3}, {"c_max": 25, "iteration_threshold": 3}]}


def close_weights(a, b) -> float:
    """The largest absolute difference between two models' weights."""
    return max((x - y).abs().max().item() for x, y in zip(weights(a), weights(b)))


def follows(a, b) -> bool:
    """Model ``b`` followed ``a``'s trajectory up to rounding (see WEIGHT_TOLERANCE)."""
    differences = torch.cat([(x - y).abs().flatten().double() for x, y in zip(weights(a), weights(b))])
    return bool(differences.max() <= WEIGHT_BOUND
                and (differences <= WEIGHT_TOLERANCE).double().mean() >= WITHIN_TOLERANCE
                and differences.median() <= 1e-6)


def configs(**overrides):
    return [small_config(seed=seed, **overrides) for seed in (0, 1)]


@pytest.mark.parametrize("name", sorted(PAIRS))
def test_packed_runs_match_the_same_runs_alone(name, tmp_path):
    data = squares()
    alone = [train(models.build(name, in_channels=1, **p), data, c, tmp_path / f"alone{i}", progress=False)
             for i, (p, c) in enumerate(zip(PAIRS[name], configs()))]
    packed = train_packed([models.build(name, in_channels=1, **p) for p in PAIRS[name]], data, configs(),
                          [tmp_path / "p0", tmp_path / "p1"], progress=False)
    assert close_weights(alone[0].model, alone[1].model) > 100 * WEIGHT_TOLERANCE  # the two runs really differ
    assert not follows(alone[0].model, alone[1].model)
    for i, (a, b) in enumerate(zip(alone, packed)):
        assert follows(a.model, b.model)
        log_alone, log_packed = read_log(tmp_path / f"alone{i}" / "train_log.csv"), read_log(tmp_path / f"p{i}" / "train_log.csv")
        assert list(log_alone[0]) == list(log_packed[0])  # the same columns, the model's own terms included
        for row_a, row_b in zip(log_alone, log_packed):
            for key in row_a:
                if key not in ("images_per_s", "elapsed"):
                    assert row_b[key] == pytest.approx(row_a[key], rel=LOSS_TOLERANCE, abs=1e-6), key
        assert read_checkpoint(tmp_path / f"p{i}")["model_hparams"] == a.model.hparams


def test_a_packed_run_resumes_exactly_and_its_checkpoint_resumes_alone(tmp_path):
    data, params = squares(), PAIRS["factor_vae"]

    def build():
        return [models.build("factor_vae", in_channels=1, **p) for p in params]

    whole = train_packed(build(), data, configs(), [tmp_path / "w0", tmp_path / "w1"], progress=False)
    train_packed(build(), data, configs(steps=3), [tmp_path / "r0", tmp_path / "r1"], progress=False)
    resumed = train_packed(build(), data, configs(), [tmp_path / "r0", tmp_path / "r1"], progress=False)
    for a, b in zip(whole, resumed):
        assert b.start_step == 3
        assert close_weights(a.model, b.model) == 0.0  # the same computation: bit for bit
    # A packed checkpoint has a lone run's layout: the run can go on alone (as after a pack is split).
    train_packed(build(), data, configs(steps=3), [tmp_path / "s0", tmp_path / "s1"], progress=False)
    alone = train(build()[0], data, configs()[0], tmp_path / "s0", progress=False)
    assert alone.start_step == 3 and follows(alone.model, whole[0].model)


class PoisonedVAE(BetaVAE):
    """A beta-VAE whose loss turns NaN from step 3 on when beta > 10 (packable: it keeps GaussianVAE's loss)."""

    def regulariser(self, *, kl, mu, logvar, z, step, noise, hyper):
        reg, terms = super().regulariser(kl=kl, mu=mu, logvar=logvar, z=z, step=step, noise=noise, hyper=hyper)
        if step >= 3:
            reg = reg * torch.where(torch.as_tensor(hyper["beta"]) > 10, float("nan"), 1.0)
        return reg, terms


def test_a_diverging_run_stops_alone_and_the_pack_goes_on(tmp_path):
    data = squares()
    members = [PoisonedVAE(in_channels=1, beta=4), PoisonedVAE(in_channels=1, beta=20)]
    config = [small_config(seed=0, steps=6, log_every=2, checkpoint_every=2),
              small_config(seed=1, steps=6, log_every=2, checkpoint_every=2)]
    results = train_packed(members, data, config, [tmp_path / "ok", tmp_path / "nan"], progress=False)
    assert isinstance(results[1], FloatingPointError)
    assert results[0].step == 6
    assert "diverged at step 4" in str(results[1])
    assert read_checkpoint(tmp_path / "nan")["step"] == 2  # its last good checkpoint stays
    alone = train(PoisonedVAE(in_channels=1, beta=4), data, config[0], progress=False)
    assert follows(results[0].model, alone.model)


class OwnLossVAE(BetaVAE):
    def loss(self, x, *, generator=None, step=0):
        return super().loss(x, generator=generator, step=step)


def test_what_cannot_pack_says_why():
    assert pack_problem(models.build("factor_vae", in_channels=1)) is None
    assert "overrides loss" in pack_problem(OwnLossVAE(in_channels=1))
    with pytest.raises(UserError, match="different models"):
        train_packed([models.build("beta_vae", in_channels=1), models.build("beta_tc_vae", in_channels=1)],
                     squares(), configs(), progress=False)
    with pytest.raises(UserError, match="training settings"):
        train_packed([models.build("beta_vae", in_channels=1)] * 2, squares(),
                     [small_config(seed=0), small_config(seed=1, lr=1e-3)], progress=False)


def test_speed_pack_command_prints_json():
    import json

    from typer.testing import CliRunner

    from disent_bench.cli import app

    outcome = CliRunner().invoke(app, ["speed", "--pack", "2", "--json", "--steps", "1", "--repeats", "1",
                                      "--warmup-steps", "0", "--device", "cpu", "--batch-size", "8"])
    assert outcome.exit_code == 0, outcome.output
    result = json.loads(outcome.stdout)
    assert result["pack"] == 2 and result["alone_images_per_s"] > 0
    assert result["speedup"] == pytest.approx(result["pack_images_per_s"] / result["alone_images_per_s"])
    assert result["per_run_images_per_s"] == pytest.approx(result["pack_images_per_s"] / 2)


def test_packed_runs_see_their_own_nuisance(tmp_path):
    from disent_bench import data as data_api
    from disent_bench.data.dsprites_variants import NoisyDSprites

    noisy = NoisyDSprites(data_api.get_dataset("dsprites_tiny", "synthetic", tmp_path, progress=False))
    params = PAIRS["beta_vae"]
    alone = [train(models.build("beta_vae", in_channels=3, **p), noisy, c, progress=False)
             for p, c in zip(params, configs())]
    packed = train_packed([models.build("beta_vae", in_channels=3, **p) for p in params], noisy, configs(),
                          progress=False)
    for a, b in zip(alone, packed):  # the same noisy images as alone, so the same losses and weights
        assert b.log[-1]["reconstruction"] == pytest.approx(a.log[-1]["reconstruction"], rel=LOSS_TOLERANCE)
        assert follows(a.model, b.model)
