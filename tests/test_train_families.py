"""Every model family through the training loop: deterministic, exact resume, its own log columns and hooks."""

from __future__ import annotations

import pytest
import torch

from disent_bench import models
from disent_bench.models import AuxiliaryOptimizer, BaseModel
from disent_bench.models.vae import BetaVAE
from disent_bench.train import read_checkpoint, train
from training_helpers import assert_same_weights, one_thread, read_log, small_config, squares, weights  # noqa: F401

FAMILY_PARAMS = {"ae": {}, "vae": {}, "beta_vae": {"beta": 4}, "beta_tc_vae": {"beta": 6},
                 "factor_vae": {"gamma": 30}, "dip_vae_i": {"lambda_od": 5}, "dip_vae_ii": {"lambda_od": 5},
                 "annealed_vae": {"c_max": 10, "iteration_threshold": 4},
                 # trained on pairs of the squares (two factors, so k is 1 or random)
                 "ada_gvae": {"beta": 4, "k": -1}, "ada_ml_vae": {"beta": 4, "k": 1},
                 "gvae": {"beta": 4, "k": 1}, "ml_vae": {"beta": 4, "k": 1, "pairs": "paper"}}
OWN_COLUMNS = {"ae": [], "vae": [], "beta_vae": [], "beta_tc_vae": ["tc"],
               "factor_vae": ["tc", "discriminator_loss", "discriminator_accuracy"],
               "dip_vae_i": ["dip_penalty"], "dip_vae_ii": ["dip_penalty"], "annealed_vae": ["capacity"],
               **{name: ["elbo", "shared_dims"] for name in ("ada_gvae", "ada_ml_vae", "gvae", "ml_vae")}}


def build(name: str) -> BaseModel:
    return models.build(name, in_channels=1, **FAMILY_PARAMS[name])


def test_every_built_in_model_is_covered():
    built_in = [name for name in models.available() if models.resolve(name).__module__.startswith("disent_bench.")]
    assert sorted(FAMILY_PARAMS) == built_in


@pytest.mark.parametrize("name", sorted(FAMILY_PARAMS))
def test_trains_deterministically_and_resumes_bit_identically(name, tmp_path):
    data = squares()
    whole = train(build(name), data, small_config(), tmp_path / "whole", progress=False)
    again = train(build(name), data, small_config(), progress=False)
    assert_same_weights(weights(whole.model), weights(again.model))
    # A run stopped after 3 steps (its checkpoint: weights, every optimiser, RNG streams), then resumed.
    train(build(name), data, small_config(steps=3), tmp_path / "parts", progress=False)
    resumed = train(build(name), data, small_config(), tmp_path / "parts", progress=False)
    assert resumed.start_step == 3
    assert_same_weights(weights(whole.model), weights(resumed.model))
    whole_log, resumed_log = read_log(tmp_path / "whole" / "train_log.csv"), read_log(tmp_path / "parts" / "train_log.csv")
    columns = ["loss", "reconstruction", "kl", *OWN_COLUMNS[name]]
    assert list(whole_log[0]) == ["step", *columns, "images_per_s", "elapsed"]
    assert [[row[c] for c in columns] for row in whole_log] == [[row[c] for c in columns] for row in resumed_log]


def test_factor_vae_checkpoint_holds_the_discriminator_and_its_adam(tmp_path):
    train(build("factor_vae"), squares(), small_config(steps=2), tmp_path, progress=False)
    state = read_checkpoint(tmp_path)
    assert any(key.startswith("discriminator.") for key in state["model_state"])
    disc_state = state["auxiliary_optimizer_states"]["discriminator"]
    assert disc_state["param_groups"][0]["betas"] == (0.5, 0.9)
    assert all(int(s["step"]) == 2 for s in disc_state["state"].values())
    assert len(state["optimizer_state"]["state"]) == len([n for n, _ in build("factor_vae").named_parameters()
                                                          if not n.startswith("discriminator.")])


def test_annealed_vae_logs_its_capacity_schedule_across_a_resume(tmp_path):
    config = small_config(steps=6, log_every=1)
    train(build("annealed_vae"), squares(), small_config(steps=2, log_every=1), tmp_path, progress=False)
    train(build("annealed_vae"), squares(), config, tmp_path, progress=False)
    log = read_log(tmp_path / "train_log.csv")
    # Logged at step s is the update from step s - 1 (0-based): C = min(10, 10 * (s - 1) / 4).
    assert [row["capacity"] for row in log] == [min(10.0, 10.0 * (s - 1) / 4) for s in range(1, 7)]


class ScheduledVAE(BetaVAE):
    """A user's model using both hooks: a beta that doubles after step 2, and an auxiliary linear probe."""

    def __init__(self, *, in_channels: int, latent_dim: int = 10) -> None:
        super().__init__(in_channels=in_channels, latent_dim=latent_dim, beta=1.0)
        self.probe = torch.nn.Linear(latent_dim, 1)

    def auxiliary_optimizers(self):
        return [AuxiliaryOptimizer("probe", tuple(self.probe.parameters()), "probe_loss", lr=1e-2)]

    def loss(self, x, *, generator=None, step=0):
        losses = super().loss(x, generator=generator, step=step)
        weight = 1.0 if step < 2 else 2.0
        mu, _ = self.encode(x)
        probe_loss = self.probe(mu.detach()).square().mean()
        return {**losses, "total": losses["reconstruction"] + weight * losses["kl"], "weight":
                torch.tensor(weight), "probe_loss": probe_loss}


def test_a_user_model_gets_the_step_and_its_own_optimiser(tmp_path):
    model = ScheduledVAE(in_channels=1)
    encoder_before = model.encoder.mean.weight.detach().clone()
    result = train(model, squares(), small_config(steps=4, log_every=1), tmp_path, progress=False)
    assert [row["weight"] for row in result.log] == [1.0, 1.0, 2.0, 2.0]
    assert read_log(tmp_path / "train_log.csv")[0].keys() >= {"weight", "probe_loss"}
    assert not torch.equal(encoder_before, model.encoder.mean.weight)
    assert "probe" in read_checkpoint(tmp_path)["auxiliary_optimizer_states"]


class OldStyleVAE(BetaVAE):
    """A user model written before the step hook: ``loss`` takes no ``step``."""

    def loss(self, x, *, generator=None):
        return super().loss(x, generator=generator)


def test_a_loss_without_the_step_argument_still_trains():
    result = train(OldStyleVAE(in_channels=1), squares(), small_config(steps=2), progress=False)
    assert result.step == 2
