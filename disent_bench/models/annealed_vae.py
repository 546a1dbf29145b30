"""AnnealedVAE (Burgess et al. 2018, "Understanding disentangling in beta-VAE", arXiv:1804.03599), as the
reference trains it.

Loss = reconstruction + ``gamma * |KL - C(t)|``, replacing the KL term entirely; the absolute value is
taken after averaging over the batch. The capacity ``C(t) = min(c_max, c_max * t / iteration_threshold)``
grows linearly with the trainer's step ``t`` (0-based, read before the update, so a resumed run
continues the schedule). While KL < C the term pushes the KL up. Reference values: ``gamma`` 1000,
``iteration_threshold`` 100,000, ``c_max`` swept over 5..100. The capacity is logged as ``capacity``.
"""

from __future__ import annotations

import torch

from disent_bench.errors import UserError
from disent_bench.models.base import check_weight
from disent_bench.models.vae import GaussianVAE

__all__ = ["AnnealedVAE", "capacity"]


def capacity(step: int, c_max, iteration_threshold) -> torch.Tensor:
    """``min(c_max, c_max * step / iteration_threshold)``: the KL target at (0-based) ``step``, in float64.

    Numbers or 0-d tensors (models packed together); float64 either way, so the value is the same.
    """
    c_max = torch.as_tensor(c_max, dtype=torch.float64)
    return torch.minimum(c_max, c_max * step / torch.as_tensor(iteration_threshold, dtype=torch.float64))


class AnnealedVAE(GaussianVAE):
    """AnnealedVAE: reconstruction + ``gamma * |KL - C(step)|`` (see the module docstring)."""

    def __init__(self, *, in_channels: int, latent_dim: int = 10, c_max: float = 25.0, gamma: float = 1000.0,
                 iteration_threshold: int = 100_000) -> None:
        c_max = check_weight("annealed_vae", "c_max", c_max, allow_zero=True)
        gamma = check_weight("annealed_vae", "gamma", gamma)
        if isinstance(iteration_threshold, bool) or not isinstance(iteration_threshold, int) or iteration_threshold < 1:
            raise UserError(f"model 'annealed_vae': iteration_threshold must be an integer >= 1, "
                            f"got {iteration_threshold!r}")
        super().__init__(in_channels=in_channels, latent_dim=latent_dim, c_max=c_max, gamma=gamma,
                         iteration_threshold=iteration_threshold)
        self.c_max, self.gamma, self.iteration_threshold = c_max, gamma, iteration_threshold

    hyper_parameter_names = ("c_max", "gamma", "iteration_threshold")

    def regulariser(self, *, kl, mu, logvar, z, step, noise, hyper):
        target = capacity(step, hyper["c_max"], hyper["iteration_threshold"]).to(device=kl.device, dtype=kl.dtype)
        return hyper["gamma"] * (kl - target).abs(), {"capacity": target}
