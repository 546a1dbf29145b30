"""The reference study's model families: the spec's test vectors, hand-computed cases and each objective's parts."""

from __future__ import annotations

import math

import pytest
import torch

from disent_bench import models
from disent_bench.errors import UserError
from disent_bench.models.annealed_vae import capacity
from disent_bench.models.base import gaussian_kl, gaussian_log_density
from disent_bench.models.beta_tc_vae import total_correlation
from disent_bench.models.dip_vae import covariance_of_means, dip_penalty
from disent_bench.models.factor_vae import permute_dims
from disent_bench.train import TrainConfig, make_optimizers

FAMILIES = {"beta_tc_vae": "beta", "factor_vae": "gamma", "dip_vae_i": "lambda_od", "dip_vae_ii": "lambda_od",
            "annealed_vae": "c_max"}


# -- shared terms: the spec's vectors (dlib vae_test.py) -------------------------------------------------
def test_kl_and_log_density_vectors():
    ones = torch.ones(1, 10)
    assert gaussian_kl(ones, torch.zeros(1, 10)).item() == pytest.approx(5.0)
    assert gaussian_kl(ones, torch.ones(1, 10)).item() == pytest.approx(8.59, abs=5e-3)
    one = torch.tensor(1.0)
    assert gaussian_log_density(one, torch.tensor(0.0), torch.tensor(0.0)).item() == pytest.approx(-1.4189, abs=1e-4)
    assert gaussian_log_density(one, one, torch.tensor(0.0)).item() == pytest.approx(-0.9189, abs=1e-4)


# -- beta-TCVAE ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dims", [1, 10])
def test_total_correlation_of_identical_standard_posteriors(dims):
    # Spec vector: every posterior N(0, 1), z ~ N(0, 1): TC = -(D - 1) ln M (0 for D = 1). The posteriors
    # being identical, the identity holds for any M; the spec's M = 10,000 would need a 4 GB array at D = 10.
    m = 2000
    z = torch.randn(m, dims, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    tc = total_correlation(z, torch.zeros_like(z), torch.zeros_like(z))
    assert tc.item() == pytest.approx(-(dims - 1) * math.log(m), abs=1e-9)


def test_total_correlation_equals_a_direct_sum():
    g = torch.Generator().manual_seed(1)
    mu, logvar, z = (torch.randn(6, 3, generator=g, dtype=torch.float64) for _ in range(3))
    expected = 0.0
    for j in range(6):
        joint = [sum(-0.5 * ((z[j, l] - mu[i, l]) ** 2 / logvar[i, l].exp() + logvar[i, l] + math.log(2 * math.pi))
                     for l in range(3)) for i in range(6)]
        marginals = [torch.logsumexp(torch.stack([-0.5 * ((z[j, l] - mu[i, l]) ** 2 / logvar[i, l].exp()
                                                          + logvar[i, l] + math.log(2 * math.pi)) for i in range(6)]), 0)
                     for l in range(3)]
        expected += (torch.logsumexp(torch.stack(joint), 0) - sum(marginals)).item() / 6
    assert total_correlation(z, mu, logvar).item() == pytest.approx(expected, abs=1e-12)


def test_beta_tc_vae_objective_and_beta_one_is_a_vae():
    model = models.build("beta_tc_vae", in_channels=1, beta=6)
    x = (torch.rand(8, 1, 64, 64, generator=torch.Generator().manual_seed(0)) > 0.5).float()
    losses = model.loss(x, generator=torch.Generator().manual_seed(1))
    assert set(losses) == {"total", "reconstruction", "kl", "tc"}
    assert losses["total"].item() == pytest.approx((losses["reconstruction"] + losses["kl"] + 5 * losses["tc"]).item(),
                                                   rel=1e-6)
    vae = models.build("beta_tc_vae", in_channels=1, beta=1)
    losses = vae.loss(x, generator=torch.Generator().manual_seed(1))
    assert losses["total"].item() == pytest.approx((losses["reconstruction"] + losses["kl"]).item(), rel=1e-7)


# -- DIP-VAE ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("covariance, expected", [(torch.ones(10, 10), 90.0), (torch.zeros(10, 10), 10.0),
                                                  (torch.eye(10), 0.0), (2 * torch.eye(10), 10.0)])
def test_dip_penalty_vectors(covariance, expected):
    assert dip_penalty(covariance, 1.0, 1.0).item() == pytest.approx(expected)


def test_covariance_of_means_is_the_biased_estimate():
    mu = torch.randn(50, 4, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    expected = torch.cov(mu.T, correction=0)
    assert torch.allclose(covariance_of_means(mu), expected, atol=1e-12)


def test_dip_vae_i_and_ii_penalties_and_lambda_d():
    g = torch.Generator().manual_seed(3)
    mu, logvar = torch.randn(16, 10, generator=g), torch.randn(16, 10, generator=g)
    one = models.build("dip_vae_i", in_channels=1, lambda_od=5)
    two = models.build("dip_vae_ii", in_channels=1, lambda_od=5)
    assert (one.lambda_d, two.lambda_d) == (50.0, 5.0)  # lambda_d_factor 10 and 1 by default
    kl = torch.tensor(0.0)
    reg_one, terms_one = one.regulariser(kl=kl, mu=mu, logvar=logvar, z=mu, step=0, noise={},
                                         hyper=one.hyper_parameters())
    reg_two, terms_two = two.regulariser(kl=kl, mu=mu, logvar=logvar, z=mu, step=0, noise={},
                                         hyper=two.hyper_parameters())
    cov = covariance_of_means(mu)
    assert reg_one.item() == pytest.approx(dip_penalty(cov, 5, 50).item(), rel=1e-6)
    assert terms_one["dip_penalty"] is reg_one or terms_one["dip_penalty"].item() == pytest.approx(reg_one.item())
    cov_two = cov + torch.diag(logvar.exp().mean(0))
    assert reg_two.item() == pytest.approx(dip_penalty(cov_two, 5, 5).item(), rel=1e-6)
    custom = models.build("dip_vae_i", in_channels=1, lambda_od=2, lambda_d_factor=3)
    assert custom.lambda_d == 6.0 and custom.hparams["lambda_d_factor"] == 3.0


# -- AnnealedVAE -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("step, expected", [(0, 0.0), (10, 10.0), (100, 100.0), (101, 100.0)])
def test_capacity_schedule_vectors(step, expected):
    assert capacity(step, 100.0, 100).item() == pytest.approx(expected)


def test_annealed_vae_objective_uses_the_step():
    model = models.build("annealed_vae", in_channels=1, c_max=100, gamma=2, iteration_threshold=100)
    kl = torch.tensor(30.0)
    for step, target in ((0, 0.0), (10, 10.0), (50, 50.0), (200, 100.0)):
        reg, terms = model.regulariser(kl=kl, mu=None, logvar=None, z=None, step=step, noise={},
                                       hyper=model.hyper_parameters())
        assert reg.item() == pytest.approx(2 * abs(30.0 - target))
        assert terms["capacity"].item() == pytest.approx(target)
    assert models.build("annealed_vae", in_channels=1).hparams["gamma"] == 1000.0
    assert models.build("annealed_vae", in_channels=1).hparams["iteration_threshold"] == 100_000


# -- FactorVAE -------------------------------------------------------------------------------------------
def test_permute_dims_shuffles_each_latent_independently_along_the_batch():
    z = torch.arange(64 * 10, dtype=torch.float32).reshape(64, 10)
    shuffled = permute_dims(z, torch.Generator().manual_seed(0))
    for column in range(10):  # each column is a permutation of itself: values never move across latents
        assert torch.equal(shuffled[:, column].sort().values, z[:, column])
    orders = [tuple((shuffled[:, c] - c).div(10).long().tolist()) for c in range(10)]
    assert len(set(orders)) == 10  # a different shuffle per latent
    assert sum(orders[0][i] == i for i in range(64)) < 10  # rows really move
    again = permute_dims(z, torch.Generator().manual_seed(0))
    assert torch.equal(shuffled, again)


def test_factor_vae_hand_case_with_a_blank_discriminator():
    model = models.build("factor_vae", in_channels=1, gamma=7)
    for parameter in model.discriminator.parameters():
        torch.nn.init.zeros_(parameter)  # logits 0, 0: p = 1/2 for both classes
    x = (torch.rand(8, 1, 64, 64, generator=torch.Generator().manual_seed(0)) > 0.5).float()
    losses = model.loss(x, generator=torch.Generator().manual_seed(1))
    assert losses["tc"].item() == 0.0
    assert losses["discriminator_loss"].item() == pytest.approx(math.log(2))
    assert losses["discriminator_accuracy"].item() == 0.5  # ties count as "from q(z)"
    assert losses["total"].item() == pytest.approx((losses["reconstruction"] + losses["kl"]).item(), rel=1e-7)


def test_factor_vae_discriminator_architecture_and_its_optimiser():
    model = models.build("factor_vae", in_channels=1)
    linears = [m for m in model.discriminator.modules() if isinstance(m, torch.nn.Linear)]
    assert [(l.in_features, l.out_features) for l in linears] == [(10, 1000)] + [(1000, 1000)] * 5 + [(1000, 2)]
    slopes = {m.negative_slope for m in model.discriminator.modules() if isinstance(m, torch.nn.LeakyReLU)}
    assert slopes == {0.2}
    assert all(torch.count_nonzero(l.bias) == 0 for l in linears)
    optimizers = make_optimizers(model, TrainConfig(steps=1))
    disc = optimizers.auxiliary["discriminator"]
    assert disc.defaults["lr"] == 1e-4 and disc.defaults["betas"] == (0.5, 0.9) and disc.defaults["eps"] == 1e-8
    main_ids = {id(p) for group in optimizers.main.param_groups for p in group["params"]}
    disc_ids = {id(p) for group in disc.param_groups for p in group["params"]}
    assert not main_ids & disc_ids
    assert main_ids | disc_ids == {id(p) for p in model.parameters()}
    assert disc_ids == {id(p) for p in model.discriminator.parameters()}


def test_each_optimiser_gets_only_its_own_objectives_gradient():
    model = models.build("factor_vae", in_channels=1, gamma=30).double()
    x = (torch.rand(8, 1, 64, 64, generator=torch.Generator().manual_seed(0)) > 0.5).double()
    vae_params = [p for n, p in model.named_parameters() if not n.startswith("discriminator.")]
    disc_params = list(model.discriminator.parameters())
    losses = model.loss(x, generator=torch.Generator().manual_seed(5))
    expected_vae = torch.autograd.grad(losses["total"], vae_params, retain_graph=True)
    expected_disc = torch.autograd.grad(losses["discriminator_loss"], disc_params)
    # The VAE objective does reach the discriminator's weights (through d(z)) and the discriminator's
    # objective reaches the encoder (through z): exactly what the two optimisers must not see.
    losses = model.loss(x, generator=torch.Generator().manual_seed(5))
    leak = torch.autograd.grad(losses["total"], disc_params[-2], retain_graph=True)[0]
    assert leak.abs().sum() > 0
    optimizers = make_optimizers(model, TrainConfig(steps=1))
    before = [p.detach().clone() for p in model.parameters()]
    optimizers.step(losses)
    for p, g in zip(vae_params, expected_vae):
        assert torch.allclose(p.grad, g, rtol=1e-10, atol=1e-12)
    for p, g in zip(disc_params, expected_disc):
        assert torch.allclose(p.grad, g, rtol=1e-10, atol=1e-12)
    assert all(not torch.equal(a, b) for a, b in zip(before, model.parameters()))  # both optimisers stepped


# -- parameters ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name, key", sorted(FAMILIES.items()))
@pytest.mark.parametrize("value", [0, -1.0, float("nan"), "3", True])
def test_bad_weights_are_refused(name, key, value):
    if key == "c_max" and value == 0:
        models.build(name, in_channels=1, **{key: value})  # zero capacity is a valid (constant) target
        return
    with pytest.raises(UserError, match=key):
        models.build(name, in_channels=1, **{key: value})


@pytest.mark.parametrize("name, typo, meant", [("factor_vae", "gama", "gamma"), ("dip_vae_i", "lambda_0d", "lambda_od"),
                                               ("annealed_vae", "cmax", "c_max"), ("beta_tc_vae", "betta", "beta")])
def test_unknown_parameter_gets_a_did_you_mean(name, typo, meant):
    with pytest.raises(UserError, match=f"did you mean '{meant}'"):
        models.build(name, in_channels=1, **{typo: 1.0})


def test_every_family_is_registered_with_its_hyper_parameter():
    for name, key in FAMILIES.items():
        model = models.build(name, in_channels=3, **{key: 4})
        assert model.hparams[key] == 4.0 and model.has_variance
        rebuilt = models.build(**model.hparams)
        assert rebuilt.hparams == model.hparams
