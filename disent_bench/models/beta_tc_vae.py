"""beta-TCVAE (Chen et al. 2018, "Isolating Sources of Disentanglement in VAEs", NeurIPS), as the reference trains it.

Loss = reconstruction + KL + (beta - 1) * TC, i.e. Chen et al.'s Eq. 4 with alpha = gamma = 1; with
``beta = 1`` it is a plain VAE. TC is disentanglement_lib's minibatch-weighted-sampling estimate with
every constant dropped (:func:`total_correlation`): no dataset size and no ``log M`` appear, so the
logged ``tc`` is shifted by ``-(D - 1) log(M N)`` from the true MWS estimate (about -159 nats on
dSprites) and is usually negative. The constant does not change the gradients.
"""

from __future__ import annotations

import torch

from disent_bench.models.base import check_weight, gaussian_log_density
from disent_bench.models.vae import GaussianVAE

__all__ = ["BetaTCVAE", "total_correlation"]


def total_correlation(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """The reference's constant-free minibatch-weighted-sampling estimate of TC(q(z)), for one sample per image.

    With ``L[j, i, l] = log N(z_jl; mu_il, exp(logvar_il))`` (j: sample, i: posterior, i = j included),
    ``TC = mean_j [ logsumexp_i sum_l L[j, i, l] - sum_l logsumexp_i L[j, i, l] ]``.
    """
    log_density = gaussian_log_density(z.unsqueeze(1), mu.unsqueeze(0), logvar.unsqueeze(0))  # (M, M, D)
    log_joint = torch.logsumexp(log_density.sum(dim=2), dim=1)
    log_product_of_marginals = torch.logsumexp(log_density, dim=1).sum(dim=1)
    return (log_joint - log_product_of_marginals).mean()


class BetaTCVAE(GaussianVAE):
    """beta-TCVAE: reconstruction + KL + (``beta`` - 1) * TC (see the module docstring); logs ``tc``."""

    def __init__(self, *, in_channels: int, latent_dim: int = 10, beta: float = 1.0) -> None:
        beta = check_weight("beta_tc_vae", "beta", beta)
        super().__init__(in_channels=in_channels, latent_dim=latent_dim, beta=beta)
        self.beta = beta

    hyper_parameter_names = ("beta",)

    def regulariser(self, *, kl, mu, logvar, z, step, noise, hyper):
        tc = total_correlation(z, mu, logvar)
        return kl + (hyper["beta"] - 1.0) * tc, {"tc": tc}
