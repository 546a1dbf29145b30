"""The model registry and the reference conv AE / VAE / beta-VAE."""

from __future__ import annotations

import math

import pytest
import torch

from disent_bench import models
from disent_bench.errors import UserError
from disent_bench.models import BaseModel, gaussian_kl
from training_helpers import one_thread  # noqa: F401 - autouse: one torch thread


@models.register("test_linear_ae")
class LinearAE(BaseModel):
    """A user model defined outside the package (registered, and also importable as module:Class)."""

    def __init__(self, *, in_channels: int, latent_dim: int = 10, width: int = 8) -> None:
        super().__init__(in_channels=in_channels, latent_dim=latent_dim, width=width)
        self.enc = torch.nn.Linear(in_channels * 8 * 8, latent_dim)
        self.dec = torch.nn.Linear(latent_dim, in_channels * 8 * 8)

    @property
    def has_variance(self) -> bool:
        return False

    def encode(self, x):
        return self.enc(x.flatten(1)), None

    def decode(self, z):
        return self.dec(z).view(-1, self.in_channels, 8, 8)

    def loss(self, x, *, generator=None):
        rec = models.bernoulli_reconstruction(self.decode(self.encode(x)[0]), x)
        return {"total": rec, "reconstruction": rec, "kl": torch.zeros(())}


class NotAModel:
    pass


def _build(name: str, channels: int) -> BaseModel:
    params = {"beta": 4.0} if name == "beta_vae" else {}
    return models.build(name, in_channels=channels, latent_dim=6, **params)


def test_builtin_models_are_registered():
    assert {"ae", "vae", "beta_vae"} <= set(models.available())


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("name", ["ae", "vae", "beta_vae"])
def test_shapes_losses_and_hparams(name, channels):
    torch.manual_seed(0)
    model = _build(name, channels)
    x = torch.rand(5, channels, 64, 64)
    mu, logvar = model.encode(x)
    assert mu.shape == (5, 6)
    assert model.has_variance == (name != "ae")
    assert (logvar is None) == (name == "ae")
    if logvar is not None:
        assert logvar.shape == (5, 6)
    assert model.decode(mu).shape == (5, channels, 64, 64)
    losses = model.loss(x, generator=torch.Generator().manual_seed(1))
    assert set(losses) == {"total", "reconstruction", "kl"}
    assert all(v.ndim == 0 and torch.isfinite(v) for v in losses.values())
    # Near-zero logits at init: Bernoulli cross-entropy of about ln 2 per pixel and channel.
    assert losses["reconstruction"].item() == pytest.approx(math.log(2) * channels * 64 * 64, rel=0.05)
    beta = 4.0 if name == "beta_vae" else 1.0
    if name == "ae":
        assert losses["kl"].item() == 0.0
    else:
        assert losses["kl"].item() > 0
    assert losses["total"].item() == pytest.approx(losses["reconstruction"].item() + beta * losses["kl"].item())
    # hparams are JSON-able and rebuild the same architecture.
    rebuilt = models.build(**model.hparams)
    assert rebuilt.hparams == model.hparams
    assert [p.shape for p in rebuilt.parameters()] == [p.shape for p in model.parameters()]


def test_reconstruction_is_summed_per_image_and_averaged_over_the_batch():
    model = _build("ae", 1)
    x = torch.rand(3, 1, 64, 64)
    logits = model.decode(model.encode(x)[0])
    expected = torch.nn.functional.binary_cross_entropy_with_logits(logits, x, reduction="sum") / 3
    assert model.loss(x)["reconstruction"].item() == pytest.approx(expected.item(), rel=1e-6)


def test_kl_matches_closed_form():
    mu = torch.tensor([[0.0, 1.0], [2.0, -1.0]])
    logvar = torch.tensor([[0.0, math.log(4.0)], [math.log(0.25), 0.0]])
    # KL(N(m, s^2) || N(0, 1)) = (m^2 + s^2 - ln s^2 - 1) / 2 per dim, summed over dims, mean over rows.
    row0 = 0.0 + (1 + 4 - math.log(4) - 1) / 2
    row1 = (4 + 0.25 - math.log(0.25) - 1) / 2 + (1 + 1 - 0 - 1) / 2
    assert gaussian_kl(mu, logvar).item() == pytest.approx((row0 + row1) / 2, rel=1e-6)


def test_glorot_uniform_weights_and_zero_biases():
    model = _build("vae", 3)
    conv = model.encoder.features[0]
    fan_in, fan_out = 3 * 4 * 4, 32 * 4 * 4
    bound = math.sqrt(6.0 / (fan_in + fan_out))
    assert conv.weight.abs().max().item() <= bound
    assert conv.weight.abs().max().item() > 0.9 * bound
    assert all(torch.count_nonzero(m.bias) == 0 for m in model.modules() if hasattr(m, "bias") and m.bias is not None)


def test_beta_one_equals_vae_bit_for_bit():
    vae, beta_vae = _build("vae", 1), models.build("beta_vae", in_channels=1, latent_dim=6, beta=1.0)
    vae.reset_parameters(3)
    beta_vae.reset_parameters(3)
    for a, b in zip(vae.state_dict().values(), beta_vae.state_dict().values()):
        assert torch.equal(a, b)
    x = torch.rand(4, 1, 64, 64)
    la = vae.loss(x, generator=torch.Generator().manual_seed(7))
    lb = beta_vae.loss(x, generator=torch.Generator().manual_seed(7))
    for key in la:
        assert torch.equal(la[key], lb[key])
    la["total"].backward()
    lb["total"].backward()
    for pa, pb in zip(vae.parameters(), beta_vae.parameters()):
        assert torch.equal(pa.grad, pb.grad)


def test_noise_comes_from_the_generator():
    model = _build("vae", 1)
    x = torch.rand(4, 1, 64, 64)
    a = model.loss(x, generator=torch.Generator().manual_seed(1))["reconstruction"]
    b = model.loss(x, generator=torch.Generator().manual_seed(1))["reconstruction"]
    c = model.loss(x, generator=torch.Generator().manual_seed(2))["reconstruction"]
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_unknown_model_lists_registered_ones():
    with pytest.raises(UserError, match=r"unknown model 'nope'.*ae, beta_vae.*vae"):
        models.build("nope", in_channels=1)


@pytest.mark.parametrize("beta", [0, -1.0, float("nan"), "4"])
def test_bad_beta(beta):
    with pytest.raises(UserError, match="beta"):
        models.build("beta_vae", in_channels=1, beta=beta)


@pytest.mark.parametrize("latent_dim", [0, -3, 2.5])
def test_bad_latent_dim(latent_dim):
    with pytest.raises(UserError, match="latent_dim"):
        models.build("vae", in_channels=1, latent_dim=latent_dim)


@pytest.mark.parametrize("channels", [0, 2, 4])
def test_bad_in_channels(channels):
    with pytest.raises(UserError, match="in_channels"):
        models.build("ae", in_channels=channels)


def test_unknown_parameter():
    with pytest.raises(UserError, match=r"does not take parameter\(s\) gamma"):
        models.build("vae", in_channels=1, gamma=2.0)


def test_user_model_by_registered_name_and_by_import_path():
    model = models.build("test_linear_ae", in_channels=1, latent_dim=3, width=5)
    assert isinstance(model, LinearAE)
    assert model.hparams == {"name": "test_linear_ae", "in_channels": 1, "latent_dim": 3, "width": 5}
    by_path = models.build(f"{__name__}:LinearAE", in_channels=3, latent_dim=2)
    assert isinstance(by_path, LinearAE) and by_path.latent_dim == 2
    assert models.build(**by_path.hparams).hparams == by_path.hparams


def test_import_path_errors():
    with pytest.raises(UserError, match="cannot import module"):
        models.build("no_such_pkg.mod:Model", in_channels=1)
    with pytest.raises(UserError, match="has no attribute"):
        models.build(f"{__name__}:Missing", in_channels=1)
    with pytest.raises(UserError, match="not a subclass of disent_bench.models.BaseModel"):
        models.build(f"{__name__}:NotAModel", in_channels=1)


def test_register_rejects_non_models():
    with pytest.raises(UserError, match="not a subclass"):
        models.register("bad")(NotAModel)
    with pytest.raises(UserError, match="already registered"):
        models.register("vae")(LinearAE)
