"""The weakly-supervised families (Ada-GVAE, Ada-ML-VAE, GVAE, ML-VAE): the spec's vectors (weak.md section 5),
dlib's ``weak_vae_test.py`` cases replayed, and the pair loss against a direct computation of its formulas."""

from __future__ import annotations

import math

import pytest
import torch

from disent_bench import models
from disent_bench.errors import UserError
from disent_bench.models.ada_gvae import AdaGVAE
from disent_bench.models.ada_ml_vae import AdaMLVAE
from disent_bench.models.gvae import GVAE
from disent_bench.models.ml_vae import MLVAE
from disent_bench.models.weak import (adaptive_own_dims, group_average, label_own_dims, ml_vae_average,
                                      pair_divergence, product_of_experts, select_posterior,
                                      symmetric_pair_divergence)

FAMILIES = [AdaGVAE, AdaMLVAE, GVAE, MLVAE]
LN = math.log

# The spec's pair (section 5), float64.
MU1 = torch.tensor([[0.0, 0.0, 1.0, 0.5]], dtype=torch.float64)
LV1 = torch.tensor([[0.0, 0.0, 0.0, LN(0.25)]], dtype=torch.float64)
MU2 = torch.tensor([[0.1, 2.0, 1.0, -0.5]], dtype=torch.float64)
LV2 = torch.tensor([[0.0, LN(4.0), LN(0.25), LN(0.25)]], dtype=torch.float64)


def tensor(values):
    return torch.tensor([values], dtype=torch.float64)


def kl_of(mu, logvar):
    return 0.5 * (mu.square() + logvar.exp() - logvar - 1.0).sum().item()


# -- the spec's vectors ------------------------------------------------------------------------------
def test_divergence_threshold_and_mask_of_the_spec_pair():
    delta = pair_divergence(MU1, LV1, MU2, LV2)
    assert torch.allclose(delta, tensor([0.01, 1.636294, 1.613706, 4.0]), atol=5e-7)
    assert ((delta.min() + delta.max()) / 2).item() == pytest.approx(2.005)
    assert adaptive_own_dims(delta).tolist() == [[False, False, False, True]]  # dims 0, 1, 2 shared


def test_the_same_pair_in_the_other_order():
    delta = pair_divergence(MU2, LV2, MU1, LV1)
    assert torch.allclose(delta, tensor([0.01, 5.613706, 0.636294, 4.0]), atol=5e-7)
    assert ((delta.min() + delta.max()) / 2).item() == pytest.approx(2.811853, abs=5e-7)
    assert adaptive_own_dims(delta).tolist() == [[False, True, False, True]]  # shared {0, 2}, own {1, 3}


def test_divergence_is_twice_the_kl_from_the_first_posterior_to_the_second():
    g = torch.Generator().manual_seed(0)
    mu1, lv1, mu2, lv2 = (torch.randn(5, 3, generator=g, dtype=torch.float64) for _ in range(4))
    q1, q2 = torch.distributions.Normal(mu1, (lv1 / 2).exp()), torch.distributions.Normal(mu2, (lv2 / 2).exp())
    assert torch.allclose(pair_divergence(mu1, lv1, mu2, lv2), 2 * torch.distributions.kl_divergence(q1, q2))
    symmetric = torch.distributions.kl_divergence(q1, q2) + torch.distributions.kl_divergence(q2, q1)
    assert torch.allclose(symmetric_pair_divergence(mu1, lv1, mu2, lv2), symmetric)


def test_group_average_of_the_spec_pair_and_what_each_image_gets():
    mu_a, lv_a = group_average(MU1, LV1, MU2, LV2)
    assert torch.allclose(mu_a, tensor([0.05, 1.0, 1.0, 0.0]), atol=1e-12)
    assert torch.allclose(lv_a, tensor([0.0, 0.916291, -0.470004, -1.386294]), atol=5e-7)
    own = adaptive_own_dims(pair_divergence(MU1, LV1, MU2, LV2))
    mean1, logvar1 = select_posterior(own, MU1, LV1, mu_a, lv_a)
    mean2, logvar2 = select_posterior(own, MU2, LV2, mu_a, lv_a)
    assert torch.allclose(mean1, tensor([0.05, 1, 1, 0.5])) and torch.allclose(mean2, tensor([0.05, 1, 1, -0.5]))
    assert torch.allclose(logvar1, lv_a) and torch.allclose(logvar2, lv_a)  # dim 3: own, equal to lv_a anyway
    assert (kl_of(mean1, logvar1) + kl_of(mean2, logvar2)) / 2 == pytest.approx(1.783754, abs=5e-7)


def test_ml_vae_average_of_the_spec_pair():
    mu_a, lv_a = ml_vae_average(MU1, LV1, MU2, LV2)
    assert torch.allclose(mu_a, tensor([0.05, 0.4, 1.0, 0.0]), atol=1e-12)
    assert torch.allclose(lv_a, tensor([0.0, 0.470004, -0.916291, -1.386294]), atol=5e-7)
    v1, v2 = LV1.exp(), LV2.exp()  # the reference's own form of the same numbers
    new_var = 2 * v1 * v2 / (v1 + v2)
    assert torch.allclose(lv_a, new_var.log()) and torch.allclose(mu_a, (MU1 / v1 + MU2 / v2) * new_var * 0.5)
    own = adaptive_own_dims(pair_divergence(MU1, LV1, MU2, LV2))
    mean1, logvar1 = select_posterior(own, MU1, LV1, mu_a, lv_a)
    mean2, logvar2 = select_posterior(own, MU2, LV2, mu_a, lv_a)
    assert (kl_of(mean1, logvar1) + kl_of(mean2, logvar2)) / 2 == pytest.approx(1.247541, abs=5e-7)
    poe_mu, poe_lv = product_of_experts(MU1, LV1, MU2, LV2)  # the option: half the variance, same mean
    assert torch.equal(poe_mu, mu_a) and torch.allclose(poe_lv.exp(), v1 * v2 / (v1 + v2))


def test_aggregate_log_variances_do_not_overflow():
    big = torch.full((1, 2), 200.0)  # exp(200) overflows float32
    assert torch.allclose(group_average(big, big, big, big)[1], big)
    assert torch.allclose(ml_vae_average(big, big, big, big)[1], big)


@pytest.mark.parametrize("mu, logvar, new_mu, new_logvar, delta, target", [
    # dlib weak_vae_test.py: the dims of smaller divergence take the aggregate (1), the others keep their own (0)
    (torch.zeros(64, 10), torch.zeros(64, 10), torch.ones(64, 10), torch.ones(64, 10),
     torch.cat([torch.zeros(64, 5), torch.ones(64, 5)], dim=1), torch.cat([torch.ones(64, 5), torch.zeros(64, 5)], dim=1)),
    (torch.tensor([[1.0, 1.0]]), torch.tensor([[1.0, 1.0]]), torch.tensor([[0.0, 0.0]]), torch.tensor([[0.0, 0.0]]),
     torch.tensor([[0.0, 0.1]]), torch.tensor([[0.0, 1.0]])),
])
def test_reference_aggregate_argmax_cases(mu, logvar, new_mu, new_logvar, delta, target):
    mean, log_variance = select_posterior(adaptive_own_dims(delta), mu, logvar, new_mu, new_logvar)
    assert torch.equal(mean, target) and torch.equal(log_variance, target)


def test_threshold_rule_on_random_rows_and_the_flat_row():
    delta = torch.rand(200, 10, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 5
    own = adaptive_own_dims(delta)
    tau = (delta.amin(1, keepdim=True) + delta.amax(1, keepdim=True)) / 2
    assert torch.equal(own, delta >= tau)
    assert own.gather(1, delta.argmax(1, keepdim=True)).all() and not own.gather(1, delta.argmin(1, keepdim=True)).any()
    assert not adaptive_own_dims(torch.full((2, 10), 0.3)).any()  # max == min: all shared (0/0 in the reference)


def test_label_mask():
    assert label_own_dims(torch.tensor([2]), 4).tolist() == [[False, False, True, False]]  # dims 0, 1, 3 shared
    assert label_own_dims(torch.tensor([0, 3]), 4).tolist() == [[True, False, False, False], [False, False, False, True]]
    # A label >= D: the reference's all-zero one-hot row, then no dim shared.
    assert label_own_dims(torch.tensor([4, -1]), 4).all()


# -- the models -----------------------------------------------------------------------------------------
def pairs_batch(batch=3, seed=0, channels=1, dtype=torch.float64):
    return (torch.rand(batch, 2, channels, 64, 64, generator=torch.Generator().manual_seed(seed)) > 0.5).to(dtype)


def fixed_encoder(model, mu1, lv1, mu2, lv2):
    """Make ``model.encode`` return the given posteriors for a batch of first images followed by second ones."""
    model.encode = lambda images: (torch.cat([mu1, mu2]), torch.cat([lv1, lv2]))


@pytest.mark.parametrize("cls, expected_kl, labels", [(AdaGVAE, 1.783754, None), (AdaMLVAE, 1.247541, None),
                                                      (GVAE, 1.783754, [3]), (MLVAE, 1.247541, [3])])
def test_loss_on_the_spec_pair(cls, expected_kl, labels):
    model = cls(in_channels=1, latent_dim=4, beta=3).double()
    fixed_encoder(model, MU1, LV1, MU2, LV2)
    labels = torch.tensor(labels) if labels else None
    losses = model.loss(pairs_batch(1), generator=torch.Generator().manual_seed(0), labels=labels)
    assert set(losses) == {"total", "reconstruction", "kl", "elbo", "shared_dims"}
    assert losses["kl"].item() == pytest.approx(expected_kl, abs=5e-7)
    assert losses["shared_dims"].item() == 3.0
    reconstruction, kl = losses["reconstruction"].item(), losses["kl"].item()
    assert losses["total"].item() == pytest.approx(reconstruction + 3 * kl, rel=1e-12)
    assert losses["elbo"].item() == pytest.approx(-(reconstruction + kl), rel=1e-12)


def test_label_variant_uses_the_label_and_not_the_divergence():
    model = GVAE(in_channels=1, latent_dim=4).double()
    fixed_encoder(model, MU1, LV1, MU2, LV2)
    losses = model.loss(pairs_batch(1), generator=torch.Generator().manual_seed(0), labels=torch.tensor([2]))
    mu_a, lv_a = group_average(MU1, LV1, MU2, LV2)
    own = torch.tensor([[False, False, True, False]])
    expected = sum(kl_of(*select_posterior(own, mu, lv, mu_a, lv_a)) for mu, lv in ((MU1, LV1), (MU2, LV2))) / 2
    assert losses["kl"].item() == pytest.approx(expected, abs=1e-12)
    assert expected != pytest.approx(1.783754, abs=1e-3)


def direct_loss(model, x, eps, beta, labels=None):
    """The spec's objective computed pair by pair, with each image encoded and decoded on its own."""
    x1, x2 = x[:, 0], x[:, 1]
    mu1, lv1 = model.encoder(x1)
    mu2, lv2 = model.encoder(x2)
    v1, v2 = lv1.exp(), lv2.exp()
    delta = v1 / v2 + (mu2 - mu1) ** 2 / v2 - 1 + lv2 - lv1
    if isinstance(model, (AdaGVAE, GVAE)):
        mu_a, lv_a = (mu1 + mu2) / 2, ((v1 + v2) / 2).log()
    else:
        var_a = 2 * v1 * v2 / (v1 + v2)
        mu_a, lv_a = (mu1 / v1 + mu2 / v2) * var_a / 2, var_a.log()
    means, logvars = [[], []], [[], []]
    for b in range(x.shape[0]):
        if labels is None:
            own = delta[b] >= (delta[b].min() + delta[b].max()) / 2
        else:
            own = torch.arange(delta.shape[1]) == labels[b]
        for i, (mu, lv) in enumerate(((mu1, lv1), (mu2, lv2))):
            means[i].append(torch.where(own, mu[b], mu_a[b]))
            logvars[i].append(torch.where(own, lv[b], lv_a[b]))
    batch = x.shape[0]
    recon, kl = 0.0, 0.0
    for i, image in enumerate((x1, x2)):
        mean, logvar = torch.stack(means[i]), torch.stack(logvars[i])
        z = mean + (logvar / 2).exp() * eps[i * batch:(i + 1) * batch]
        logits = model.decoder(z)
        recon += torch.nn.functional.binary_cross_entropy_with_logits(logits, image, reduction="none").sum((1, 2, 3)).mean() / 2
        kl += 0.5 * (mean ** 2 + logvar.exp() - logvar - 1).sum(1).mean() / 2
    return recon + beta * kl, recon, kl


@pytest.mark.parametrize("cls", FAMILIES)
def test_loss_equals_the_direct_computation_of_the_spec(cls):
    model = cls(in_channels=1, latent_dim=6, beta=2.5).double()
    x = pairs_batch(4, seed=1)
    labels = torch.tensor([0, 5, 2, 2]) if cls.uses_labels else None
    losses = model.loss(x, generator=torch.Generator().manual_seed(7), labels=labels)
    eps = torch.randn((8, 6), generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    total, recon, kl = direct_loss(model, x, eps, 2.5, labels)
    assert losses["total"].item() == pytest.approx(total.item(), rel=1e-10)
    assert losses["reconstruction"].item() == pytest.approx(recon.item(), rel=1e-10)
    assert losses["kl"].item() == pytest.approx(kl.item(), rel=1e-10)


@pytest.mark.parametrize("cls", FAMILIES)
def test_one_encoder_call_and_one_decoder_call(cls):
    model = cls(in_channels=1, latent_dim=10)
    calls = {"encoder": [], "decoder": []}
    model.encoder.register_forward_hook(lambda m, args, out: calls["encoder"].append(args[0].shape[0]))
    model.decoder.register_forward_hook(lambda m, args, out: calls["decoder"].append(args[0].shape[0]))
    model.loss(pairs_batch(3, dtype=torch.float32), generator=torch.Generator().manual_seed(0),
               labels=torch.tensor([1, 2, 3]))
    assert calls == {"encoder": [6], "decoder": [6]}


@pytest.mark.parametrize("cls", FAMILIES)
def test_identical_images_share_every_dim(cls):
    model = cls(in_channels=1, latent_dim=10).double()
    x = pairs_batch(3, seed=2)
    x[:, 1] = x[:, 0]
    if cls.uses_labels:  # a label variant is told which dim is own: the others are shared
        losses = model.loss(x, generator=torch.Generator().manual_seed(0), labels=torch.tensor([0, 1, 2]))
        assert losses["shared_dims"].item() == 9.0
        return
    losses = model.loss(x, generator=torch.Generator().manual_seed(0))
    assert losses["shared_dims"].item() == 10.0
    assert all(torch.isfinite(value) for value in losses.values())
    # Identical posteriors: the aggregate is each posterior, so the KL is the plain VAE's.
    mu, logvar = model.encode(x[:, 0])
    assert losses["kl"].item() == pytest.approx(models.gaussian_kl(mu, logvar).item(), rel=1e-12)


@pytest.mark.parametrize("cls", FAMILIES)
def test_loss_is_deterministic_for_a_generator_and_gradients_reach_the_encoder(cls):
    model = cls(in_channels=1, latent_dim=10, beta=4)
    x, labels = pairs_batch(4, dtype=torch.float32), torch.tensor([0, 1, 2, 3])
    first = model.loss(x, generator=torch.Generator().manual_seed(3), labels=labels)
    again = model.loss(x, generator=torch.Generator().manual_seed(3), labels=labels)
    other = model.loss(x, generator=torch.Generator().manual_seed(4), labels=labels)
    assert all(torch.equal(first[key], again[key]) for key in first)
    assert not torch.equal(first["reconstruction"], other["reconstruction"])
    first["total"].backward()
    for parameter in (model.encoder.features[0].weight, model.encoder.mean.weight, model.encoder.logvar.weight,
                      model.decoder.deconv[-1].weight):
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0


@pytest.mark.parametrize("cls", FAMILIES)
def test_evaluates_on_single_images_like_the_unsupervised_models(cls):
    model = cls(in_channels=3, latent_dim=7)
    mu, logvar = model.encode(torch.rand(5, 3, 64, 64, generator=torch.Generator().manual_seed(0)))
    assert mu.shape == logvar.shape == (5, 7) and model.has_variance and model.data_kind == "pairs"


# -- parameters ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("cls", FAMILIES)
def test_hparams_rebuild_the_same_model(cls):
    model = cls(in_channels=1, latent_dim=8, beta=6, k="random", pairs="paper")
    # registered (disent_bench.models): the registry's name, else the class's import path
    name = cls.registered_name or f"{cls.__module__}:{cls.__qualname__}"
    assert model.hparams == {"name": name, "in_channels": 1, "latent_dim": 8,
                             "beta": 6.0, "k": -1, "pairs": "paper"}
    assert (model.k, model.pairs, model.beta, model.hyper_parameter_names) == (-1, "paper", 6.0, ("beta",))
    rebuilt = models.build(**model.hparams)
    assert type(rebuilt) is cls and rebuilt.hparams == model.hparams
    model.reset_parameters(0)
    rebuilt.reset_parameters(0)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), rebuilt.state_dict().values()))
    defaults = cls(in_channels=1)
    assert (defaults.beta, defaults.k, defaults.pairs, defaults.latent_dim) == (1.0, -1, "reference", 10)
    assert cls(in_channels=1, k=3).k == 3


@pytest.mark.parametrize("cls", FAMILIES)
@pytest.mark.parametrize("key, value", [("k", 0), ("k", -2), ("k", 1.5), ("k", "3"), ("k", True), ("k", "rnd"),
                                        ("pairs", "locatello"), ("pairs", None),
                                        ("beta", 0), ("beta", -1.0), ("beta", float("nan")), ("beta", "4")])
def test_bad_parameters_are_refused(cls, key, value):
    with pytest.raises(UserError, match=key):
        cls(in_channels=1, **{key: value})


@pytest.mark.parametrize("cls", FAMILIES)
def test_bad_batches_are_refused(cls):
    model = cls(in_channels=1, latent_dim=4)
    with pytest.raises(UserError, match="pairs"):
        model.loss(torch.zeros(2, 1, 64, 64))
    if not cls.uses_labels:
        return
    x = pairs_batch(2, dtype=torch.float32)
    with pytest.raises(UserError, match="needs labels"):
        model.loss(x)
    with pytest.raises(UserError, match="labels must be integers"):
        model.loss(x, labels=torch.tensor([0.0, 1.0]))
    with pytest.raises(UserError, match="latent_dim >= the number of factors"):
        model.loss(x, labels=torch.tensor([1, 4]))  # Decision 5: factor 4 has no latent dim of its own
    with pytest.raises(UserError, match="latent_dim >= the number of factors"):
        model.check_num_factors(5)
    model.check_num_factors(4)


def test_ada_models_ignore_labels_and_accept_any_number_of_factors():
    model = AdaGVAE(in_channels=1, latent_dim=4)
    model.check_num_factors(7)
    x, g = pairs_batch(2, dtype=torch.float32), torch.Generator
    with_labels = model.loss(x, generator=g().manual_seed(0), labels=torch.tensor([9, 9]))
    without = model.loss(x, generator=g().manual_seed(0))
    assert all(torch.equal(with_labels[key], without[key]) for key in without)
