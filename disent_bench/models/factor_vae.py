"""FactorVAE (Kim & Mnih 2018, "Disentangling by Factorising", ICML), as the reference trains it.

VAE loss = reconstruction + KL + ``gamma * TC``, where TC is estimated by a discriminator ``d`` with
two logits (class 0: a sample of q(z); class 1: a sample with each latent column shuffled along the
batch, i.e. of the product of marginals): ``TC = mean_i [d_0(z_i) - d_1(z_i)]``, the density-ratio
trick. Discriminator: six dense layers of 1000 units with leaky ReLU (TensorFlow's slope 0.2), then
dense 2; its softmax is clipped to [1e-6, 1 - 1e-6]. It minimises
``-(0.5 mean log p_0(z) + 0.5 mean log p_1(z~))``.

As in disentanglement_lib, both objectives come from one batch and one forward pass, and both Adam
steps are taken at once from gradients at the same weights: the VAE's Adam (the training config's)
updates only the encoder and decoder (the TC gradient reaches z through the discriminator, whose
weights it does not move), and the discriminator's own Adam (lr 1e-4, betas (0.5, 0.9), eps 1e-8)
updates only the discriminator. The shuffle uses the same batch (Kim & Mnih's paper draws a second
one). One training step is one update of each, so the reference's FactorVAEs, whose global step
advanced twice per iteration, got 150,000 steps of its nominal 300,000 (see ``grids/paper.toml``).
Logged: ``tc``, ``discriminator_loss`` and ``discriminator_accuracy`` (of both halves).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from disent_bench.errors import UserError
from disent_bench.models.base import AuxiliaryOptimizer, check_weight
from disent_bench.models.vae import GaussianVAE

__all__ = ["FactorVAE", "Discriminator", "permute_dims"]

PROBABILITY_CLIP = 1e-6


class Discriminator(nn.Module):
    """The reference's ``fc_discriminator``: codes -> 6 x [dense 1000, leaky ReLU 0.2] -> 2 logits."""

    def __init__(self, latent_dim: int, hidden: int = 1000, layers: int = 6) -> None:
        super().__init__()
        blocks: list[nn.Module] = []
        width = latent_dim
        for _ in range(layers):
            blocks += [nn.Linear(width, hidden), nn.LeakyReLU(0.2)]
            width = hidden
        blocks.append(nn.Linear(width, 2))
        self.net = nn.Sequential(*blocks)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


def permute_dims(z: torch.Tensor, generator: torch.Generator | None = None,
                 uniform: torch.Tensor | None = None) -> torch.Tensor:
    """``z`` ``(M, D)`` with each column shuffled independently along the batch (one permutation per latent).

    The permutations sort ``uniform`` (``(M, D)`` uniform draws; drawn from ``generator`` when not given).
    """
    if uniform is None:
        uniform = torch.rand(z.shape, generator=generator, device=z.device)
    return torch.gather(z, 0, uniform.argsort(dim=0, stable=True))


class FactorVAE(GaussianVAE):
    """FactorVAE: reconstruction + KL + ``gamma`` * discriminator TC (see the module docstring)."""

    def __init__(self, *, in_channels: int, latent_dim: int = 10, gamma: float = 10.0,
                 discriminator_lr: float = 1e-4, discriminator_beta1: float = 0.5,
                 discriminator_beta2: float = 0.9) -> None:
        gamma = check_weight("factor_vae", "gamma", gamma)
        discriminator_lr = check_weight("factor_vae", "discriminator_lr", discriminator_lr)
        for key, value in (("discriminator_beta1", discriminator_beta1), ("discriminator_beta2", discriminator_beta2)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
                raise UserError(f"model 'factor_vae': {key} must be a number in [0, 1), got {value!r}")
        super().__init__(in_channels=in_channels, latent_dim=latent_dim, gamma=gamma,
                         discriminator_lr=discriminator_lr, discriminator_beta1=float(discriminator_beta1),
                         discriminator_beta2=float(discriminator_beta2))
        self.gamma = gamma
        self.discriminator = Discriminator(latent_dim)
        self.init_weights()  # Glorot kernels and zero biases for the discriminator too, as TensorFlow's dense

    def auxiliary_optimizers(self) -> list[AuxiliaryOptimizer]:
        hp = self.hparams
        return [AuxiliaryOptimizer("discriminator", tuple(self.discriminator.parameters()), "discriminator_loss",
                                   lr=hp["discriminator_lr"],
                                   betas=(hp["discriminator_beta1"], hp["discriminator_beta2"]), eps=1e-8)]

    hyper_parameter_names = ("gamma",)

    def draw_noise(self, batch_size, generator, device, dtype):
        noise = super().draw_noise(batch_size, generator, device, dtype)
        # Then the shuffle's draws: the order of the reference model's own draws (sample, then shuffle).
        noise["shuffle"] = torch.rand((batch_size, self.latent_dim), generator=generator, device=device)
        return noise

    def regulariser(self, *, kl, mu, logvar, z, step, noise, hyper):
        shuffled = permute_dims(z.detach(), uniform=noise["shuffle"])
        # One discriminator pass over both halves. The VAE's gradient flows through the first half's logits
        # into z; the trainer applies each objective's gradient only to its own optimiser's parameters.
        logits = self.discriminator(torch.cat([z, shuffled]))
        logits_z, logits_shuffled = logits[: len(z)], logits[len(z):]
        tc = (logits_z[:, 0] - logits_z[:, 1]).mean()
        log_p_z = torch.log(F.softmax(logits_z, dim=1).clamp(PROBABILITY_CLIP, 1 - PROBABILITY_CLIP))
        log_p_shuffled = torch.log(F.softmax(logits_shuffled, dim=1).clamp(PROBABILITY_CLIP, 1 - PROBABILITY_CLIP))
        discriminator_loss = -(0.5 * log_p_z[:, 0].mean() + 0.5 * log_p_shuffled[:, 1].mean())
        with torch.no_grad():
            accuracy = 0.5 * ((logits_z[:, 0] >= logits_z[:, 1]).float().mean()
                              + (logits_shuffled[:, 1] > logits_shuffled[:, 0]).float().mean())
        return kl + hyper["gamma"] * tc, {"tc": tc, "discriminator_loss": discriminator_loss,
                                      "discriminator_accuracy": accuracy}
