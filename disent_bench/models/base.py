"""The interface every model in the suite implements, and the losses the reference models share.

A model is a :class:`torch.nn.Module` with an encoder giving a Gaussian posterior ``(mu, logvar)``
(``logvar`` is ``None`` for a deterministic auto-encoder), a decoder giving Bernoulli logits, and a
``loss`` returning batch means. ``hparams`` is a JSON-able dict from which
:func:`disent_bench.models.build` rebuilds an identical (untrained) model, which is how checkpoints
and result files say which model they hold.

Two hooks serve objectives beyond a fixed loss on one optimiser, for built-in and user models alike:

* ``loss(x, generator=..., step=...)`` receives the trainer's step (0-based, read before the update),
  so an objective may follow a schedule (AnnealedVAE's capacity) and a resumed run continues it;
* :meth:`BaseModel.auxiliary_optimizers` names sub-networks trained by their own Adam on their own
  entry of the loss dict (FactorVAE's discriminator). Each optimiser updates only its parameters,
  from gradients of its own objective, all computed from the same forward pass before any update (as
  ``tf.group`` of two ``minimize`` ops in the reference).

Every scalar entry of the loss dict besides ``total`` becomes a column of ``train_log.csv``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from disent_bench.errors import UserError


def model_name_of(cls: type) -> str:
    """The name :func:`disent_bench.models.build` knows ``cls`` by: its registered name, else ``module:Class``."""
    registered = cls.__dict__.get("registered_name")
    if registered:
        return registered
    return f"{cls.__module__}:{cls.__qualname__}"


@dataclass(frozen=True)
class AuxiliaryOptimizer:
    """A sub-network with its own Adam, minimising ``loss[loss_key]`` over ``parameters`` only.

    The model's own optimiser (the training config's Adam) then updates every other parameter, from
    ``loss["total"]`` only.
    """

    name: str
    parameters: tuple[nn.Parameter, ...]
    loss_key: str
    lr: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8


class BaseModel(nn.Module):
    """Base class of every model (built-in or user-supplied).

    Subclasses call ``super().__init__(in_channels=..., latent_dim=..., **params)`` with every
    constructor parameter that is not ``in_channels``/``latent_dim`` (JSON-able values only), so that
    ``build(**model.hparams)`` rebuilds the same model. They implement :meth:`encode`, :meth:`decode`
    and :meth:`loss`, and set :attr:`has_variance`.

    Randomness (the reparameterisation noise) must come from the ``generator`` passed to
    :meth:`loss` when one is given: that is what makes training bit-reproducible and resumable.
    """

    #: Set by :func:`disent_bench.models.register` on the class it decorates.
    registered_name: ClassVar[str | None] = None
    #: What a training step feeds :meth:`loss`: ``"images"`` (a batch ``(B, C, H, W)``) or ``"pairs"``
    #: (``(B, 2, C, H, W)`` pairs that differ in a few factors, and ``labels=`` the last changed factor of each;
    #: the weakly-supervised models, :mod:`disent_bench.models.weak`).
    data_kind: ClassVar[str] = "images"

    @classmethod
    def images_per_example(cls) -> int:
        """Images in one example of a training batch: 2 for a model trained on pairs, else 1 (what throughput
        figures count: a pair is two images)."""
        return 2 if cls.data_kind == "pairs" else 1

    def __init__(self, *, in_channels: int, latent_dim: int = 10, **params: Any) -> None:
        super().__init__()
        name = model_name_of(type(self))
        if isinstance(in_channels, bool) or not isinstance(in_channels, int) or in_channels < 1:
            raise UserError(f"model {name!r}: in_channels must be a positive integer, got {in_channels!r}")
        if isinstance(latent_dim, bool) or not isinstance(latent_dim, int) or latent_dim < 1:
            raise UserError(f"model {name!r}: latent_dim must be an integer >= 1, got {latent_dim!r}")
        try:
            json.dumps(params)
        except (TypeError, ValueError):
            raise UserError(f"model {name!r}: parameters must be JSON values (numbers, strings, lists), "
                            f"got {params!r}") from None
        self.in_channels = in_channels
        self.latent_dim = latent_dim
        self.hparams: dict[str, Any] = {"name": name, "in_channels": in_channels, "latent_dim": latent_dim,
                                        **params}

    # -- the interface ----------------------------------------------------------------------------
    @property
    def has_variance(self) -> bool:
        """True when :meth:`encode` returns a log-variance (a stochastic encoder)."""
        raise NotImplementedError

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Images ``(n, C, H, W)`` in [0, 1] -> ``(mu, logvar)``, each ``(n, latent_dim)``; logvar None if deterministic."""
        raise NotImplementedError

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Codes ``(n, latent_dim)`` -> Bernoulli logits ``(n, C, H, W)``."""
        raise NotImplementedError

    def loss(self, x: torch.Tensor, *, generator: torch.Generator | None = None,
             step: int = 0) -> dict[str, torch.Tensor]:
        """Scalar batch means ``{"total", "reconstruction", "kl", ...}`` for images ``x`` in [0, 1].

        ``total`` is what the model's own optimiser minimises; ``step`` is the trainer's step (0-based,
        before this update). Further scalar entries (e.g. ``tc``) are logged; an auxiliary optimiser's
        objective is the entry its :class:`AuxiliaryOptimizer` names. A model whose ``loss`` takes no
        ``step`` is called without it.
        """
        raise NotImplementedError

    def auxiliary_optimizers(self) -> list[AuxiliaryOptimizer]:
        """Sub-networks with their own optimiser (default: none; FactorVAE: its discriminator)."""
        return []

    def check_image_shape(self, image_shape: tuple[int, ...]) -> None:
        """Raise :class:`UserError` unless images of shape ``(H, W, C)`` fit this model."""
        if image_shape[-1] != self.in_channels:
            raise UserError(f"model {self.hparams['name']!r} was built for {self.in_channels} channel(s) "
                            f"but the images have {image_shape[-1]} (shape {tuple(image_shape)})")

    def reset_parameters(self, seed: int) -> None:
        """Re-initialise every weight from ``seed`` (without touching the global RNG state)."""
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(seed)  # the CPU generator only: CUDA seeds stay as they are
            self.init_weights()

    def init_weights(self) -> None:
        """Initialise the weights from the global torch RNG (default: each layer's own reset)."""
        for module in self.modules():
            if module is not self and hasattr(module, "reset_parameters"):
                module.reset_parameters()


# -- losses shared by the reference models ----------------------------------------------------------
def bernoulli_reconstruction(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Bernoulli cross-entropy of ``x`` under ``logits``, summed over pixels and channels, mean over the batch.

    This is the reference's ``bernoulli_loss`` with logits (disentanglement_lib, Locatello et al.
    2019), without subtracting the true images' entropy (its default), for binary and RGB data alike.
    """
    per_pixel = F.binary_cross_entropy_with_logits(logits, x, reduction="none")
    return per_pixel.sum(dim=(1, 2, 3)).mean()


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)) summed over latent dims, mean over the batch (Kingma & Welling 2014)."""
    per_dim = 0.5 * (mu.square() + logvar.exp() - logvar - 1.0)
    return per_dim.sum(dim=1).mean()


def reparameterise(mu: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """A sample ``mu + exp(logvar / 2) * eps`` with ``eps ~ N(0, I)`` drawn from ``generator``."""
    eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
    return mu + torch.exp(0.5 * logvar) * eps


def gaussian_log_density(samples: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Elementwise ``log N(samples; mean, exp(logvar))`` (broadcasting), with its ``log 2 pi`` constant."""
    return -0.5 * ((samples - mean).square() * torch.exp(-logvar) + logvar + math.log(2.0 * math.pi))


def check_weight(model: str, key: str, value: Any, *, allow_zero: bool = False) -> float:
    """``value`` as a float if it is a finite number > 0 (>= 0 with ``allow_zero``), else :class:`UserError`."""
    bound = ">= 0" if allow_zero else "> 0"
    if (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
            or value < 0 or (value == 0 and not allow_zero)):
        raise UserError(f"model {model!r}: {key} must be a finite number {bound}, got {value!r}")
    return float(value)


__all__ = ["BaseModel", "AuxiliaryOptimizer", "bernoulli_reconstruction", "gaussian_kl", "gaussian_log_density",
           "reparameterise", "model_name_of", "check_weight"]
