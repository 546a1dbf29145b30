"""The reference AE, VAE and beta-VAE (Locatello et al. 2019), and the Gaussian VAE the other families extend.

Every built-in model uses the reference conv encoder/decoder of :mod:`disent_bench.models.architectures`.
A :class:`GaussianVAE` draws one reparameterised sample ``z`` per image, decodes it, and adds a
``regulariser(kl, mu, logvar, z, ...)`` to the Bernoulli reconstruction loss, as disentanglement_lib's
``BaseVAE`` does; each family (beta-VAE, beta-TCVAE, FactorVAE, DIP-VAE, AnnealedVAE) is its own
regulariser. The sample feeds the decoder and every regulariser, with no stop-gradients.
"""

from __future__ import annotations

from typing import Any

import torch

from disent_bench.models.architectures import IMAGE_SIZE, ConvDecoder, ConvEncoder, ConvModel
from disent_bench.models.base import bernoulli_reconstruction, check_weight, gaussian_kl

__all__ = ["AE", "VAE", "BetaVAE", "GaussianVAE", "ConvEncoder", "ConvDecoder", "ConvModel", "IMAGE_SIZE"]


class AE(ConvModel):
    """Deterministic auto-encoder baseline: the same network, the mean code, no KL term (kl reported as 0)."""

    _heads = 1

    def __init__(self, *, in_channels: int, latent_dim: int = 10) -> None:
        super().__init__(in_channels=in_channels, latent_dim=latent_dim)

    @property
    def has_variance(self) -> bool:
        return False

    hyper_parameter_names: tuple[str, ...] = ()

    def hyper_parameters(self) -> dict[str, float]:
        return {}

    def draw_noise(self, batch_size: int, generator: torch.Generator | None, device: torch.device,
                   dtype: torch.dtype) -> dict[str, torch.Tensor]:
        return {}  # deterministic

    def loss(self, x: torch.Tensor, *, generator: torch.Generator | None = None,
             step: int = 0) -> dict[str, torch.Tensor]:
        return self.loss_from_noise(x, {}, step, {})

    def loss_from_noise(self, x: torch.Tensor, noise: dict[str, torch.Tensor], step: int,
                        hyper: dict[str, Any]) -> dict[str, torch.Tensor]:
        mu, _ = self.encode(x)
        reconstruction = bernoulli_reconstruction(self.decode(mu), x)
        kl = torch.zeros_like(reconstruction)
        return {"total": reconstruction, "reconstruction": reconstruction, "kl": kl}


class GaussianVAE(ConvModel):
    """A VAE with a Gaussian posterior whose loss is reconstruction + :meth:`regulariser`.

    The loss is split so that many models can train packed together (:mod:`disent_bench.train.packed`):
    :meth:`draw_noise` draws all of a step's randomness from the generator (the reparameterisation noise,
    then anything the regulariser needs), and :meth:`loss_from_noise` is a pure function of the weights,
    the images, that noise, the step and :meth:`hyper_parameters` (floats alone; under packing, each
    model's own values as 0-d tensors). Subclasses implement ``regulariser``, returning the term added to
    the reconstruction loss and a dict of further scalars to log (e.g. ``{"tc": ...}``), and list the
    numbers it reads in ``hyper_parameter_names``.
    """

    #: Constructor parameters the regulariser reads (from ``hyper``): models differing only in these pack together.
    hyper_parameter_names: tuple[str, ...] = ()

    @property
    def has_variance(self) -> bool:
        return True

    def hyper_parameters(self) -> dict[str, float]:
        """The values of ``hyper_parameter_names`` (as the constructor checked them)."""
        return {name: getattr(self, name) for name in self.hyper_parameter_names}

    def draw_noise(self, batch_size: int, generator: torch.Generator | None, device: torch.device,
                   dtype: torch.dtype) -> dict[str, torch.Tensor]:
        """A step's randomness, drawn in a fixed order: ``eps`` ~ N(0, I) of shape ``(batch_size, latent_dim)``."""
        return {"eps": torch.randn((batch_size, self.latent_dim), generator=generator, device=device, dtype=dtype)}

    def regulariser(self, *, kl: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, z: torch.Tensor,
                    step: int, noise: dict[str, torch.Tensor],
                    hyper: dict[str, Any]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        raise NotImplementedError

    def loss(self, x: torch.Tensor, *, generator: torch.Generator | None = None,
             step: int = 0) -> dict[str, torch.Tensor]:
        noise = self.draw_noise(x.shape[0], generator, x.device, x.dtype)
        return self.loss_from_noise(x, noise, step, self.hyper_parameters())

    def loss_from_noise(self, x: torch.Tensor, noise: dict[str, torch.Tensor], step: int,
                        hyper: dict[str, Any]) -> dict[str, torch.Tensor]:
        """The loss dict for images ``x`` given the step's ``noise`` (see :meth:`draw_noise`)."""
        mu, logvar = self.encode(x)
        z = mu + torch.exp(0.5 * logvar) * noise["eps"]  # the reparameterised sample (cf. reparameterise)
        reconstruction = bernoulli_reconstruction(self.decode(z), x)
        kl = gaussian_kl(mu, logvar)
        regulariser, terms = self.regulariser(kl=kl, mu=mu, logvar=logvar, z=z, step=step, noise=noise, hyper=hyper)
        return {"total": reconstruction + regulariser, "reconstruction": reconstruction, "kl": kl, **terms}


class BetaVAE(GaussianVAE):
    """beta-VAE (Higgins et al. 2017, ICLR): reconstruction + ``beta`` * KL(q(z|x) || N(0, I)).

    With ``beta = 1`` this is the VAE of Kingma & Welling (2014).
    """

    def __init__(self, *, in_channels: int, latent_dim: int = 10, beta: float = 1.0) -> None:
        beta = check_weight("beta_vae", "beta", beta)
        super().__init__(in_channels=in_channels, latent_dim=latent_dim, **self._beta_param(beta))
        self.beta = beta

    @staticmethod
    def _beta_param(beta: float) -> dict:
        return {"beta": beta}

    hyper_parameter_names = ("beta",)

    def regulariser(self, *, kl, mu, logvar, z, step, noise, hyper):
        return hyper["beta"] * kl, {}


class VAE(BetaVAE):
    """The VAE (Kingma & Welling 2014): a beta-VAE with beta fixed at 1, so it trains bit-identically to it."""

    def __init__(self, *, in_channels: int, latent_dim: int = 10) -> None:
        super().__init__(in_channels=in_channels, latent_dim=latent_dim, beta=1.0)

    @staticmethod
    def _beta_param(beta: float) -> dict:
        return {}  # beta is not a parameter of "vae": hparams must rebuild it with build("vae", ...)
