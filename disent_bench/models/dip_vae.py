"""DIP-VAE-I and DIP-VAE-II (Kumar et al. 2018, "Variational Inference of Disentangled Latent Concepts from
Unlabeled Observations", ICLR), as the reference trains them.

Loss = reconstruction + KL + penalty(C), with, over the batch of M means ``mu_i``:

* ``Cov_mu = (1/M) sum_i mu_i mu_i^T - mean(mu) mean(mu)^T`` (the biased estimate);
* DIP-VAE-I: ``C = Cov_mu``; DIP-VAE-II: ``C = Cov_mu + (1/M) sum_i diag(exp(logvar_i))``;
* ``penalty = lambda_od * sum_{k != l} C_kl^2 + lambda_d * sum_k (C_kk - 1)^2`` over the full matrix
  (each off-diagonal pair counts twice), with ``lambda_d = lambda_d_factor * lambda_od``.

The reference's defaults: ``lambda_d_factor`` 10 for DIP-VAE-I and 1 for DIP-VAE-II. The penalty is
logged as ``dip_penalty``.
"""

from __future__ import annotations

import torch

from disent_bench.models.base import check_weight
from disent_bench.models.vae import GaussianVAE

__all__ = ["DipVAEI", "DipVAEII", "covariance_of_means", "dip_penalty"]


def covariance_of_means(mu: torch.Tensor) -> torch.Tensor:
    """The biased (divide by M) covariance matrix ``(D, D)`` of the batch's means ``mu`` ``(M, D)``."""
    mean = mu.mean(dim=0)
    return (mu.unsqueeze(2) * mu.unsqueeze(1)).mean(dim=0) - mean.unsqueeze(1) * mean.unsqueeze(0)


def dip_penalty(covariance: torch.Tensor, lambda_od: float, lambda_d: float) -> torch.Tensor:
    """``lambda_od * sum of squared off-diagonal entries + lambda_d * sum_k (C_kk - 1)^2``."""
    diagonal = torch.diagonal(covariance)
    off_diagonal = covariance - torch.diag(diagonal)
    return lambda_od * off_diagonal.square().sum() + lambda_d * (diagonal - 1.0).square().sum()


class _DipVAE(GaussianVAE):
    _dip_type = ""
    _default_lambda_d_factor = 1.0

    def __init__(self, *, in_channels: int, latent_dim: int = 10, lambda_od: float = 10.0,
                 lambda_d_factor: float | None = None) -> None:
        name = f"dip_vae_{self._dip_type}"
        lambda_od = check_weight(name, "lambda_od", lambda_od)
        lambda_d_factor = check_weight(name, "lambda_d_factor", self._default_lambda_d_factor
                                       if lambda_d_factor is None else lambda_d_factor)
        super().__init__(in_channels=in_channels, latent_dim=latent_dim, lambda_od=lambda_od,
                         lambda_d_factor=lambda_d_factor)
        self.lambda_od = lambda_od
        self.lambda_d = lambda_d_factor * lambda_od

    def covariance(self, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    hyper_parameter_names = ("lambda_od", "lambda_d")

    def regulariser(self, *, kl, mu, logvar, z, step, noise, hyper):
        penalty = dip_penalty(self.covariance(mu, logvar), hyper["lambda_od"], hyper["lambda_d"])
        return kl + penalty, {"dip_penalty": penalty}


class DipVAEI(_DipVAE):
    """DIP-VAE-I: the penalty on the covariance of the encoder means (``lambda_d_factor`` 10 by default)."""

    _dip_type = "i"
    _default_lambda_d_factor = 10.0

    def covariance(self, mu, logvar):
        return covariance_of_means(mu)


class DipVAEII(_DipVAE):
    """DIP-VAE-II: the penalty on Cov(mu) + E[diag(sigma^2)] (``lambda_d_factor`` 1 by default)."""

    _dip_type = "ii"
    _default_lambda_d_factor = 1.0

    def covariance(self, mu, logvar):
        return covariance_of_means(mu) + torch.diag(logvar.exp().mean(dim=0))
