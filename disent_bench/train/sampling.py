"""What one training step sees: a batch of images, or of pairs of images, drawn from the run's generator.

* Images (every unsupervised model): ``batch_size`` grid points uniformly with replacement, as the
  reference study draws them; or, on correlated training data (``TrainConfig.correlations``, Träuble et
  al. 2021), with the probabilities of :func:`disent_bench.data.correlation.grid_weights`.
* Pairs (the weakly-supervised models, ``model.data_kind == "pairs"``): :func:`disent_bench.data.pairs.sample_pairs`
  with the model's ``k`` and ``pairs`` mode, both images gathered in one call, shaped ``(B, 2, C, H, W)``, and
  the last changed factor of each pair as ``labels``.

Every index comes from the run's sample generator (saved in its checkpoints, so a resumed run draws what
an uninterrupted one would); evaluation never goes through here and always sees the independent grid.
"""

from __future__ import annotations

from typing import Any

import torch

from disent_bench.data.base import GroundTruthData
from disent_bench.data.correlation import grid_weights, parse_correlations
from disent_bench.data.pairs import sample_pairs
from disent_bench.models import BaseModel
from disent_bench.train.config import TrainConfig

__all__ = ["training_weights", "draw_indices", "draw_step_input", "takes_pairs"]


def takes_pairs(model: BaseModel) -> bool:
    """True for a model trained on pairs of images (the weakly-supervised families)."""
    return getattr(model, "data_kind", "images") == "pairs"


def training_weights(dataset: GroundTruthData, config: TrainConfig, device: torch.device) -> torch.Tensor | None:
    """The probability of each grid point in a training batch: None for the uniform draw (no correlations)."""
    if not config.correlations:
        return None
    correlations = parse_correlations(list(config.correlations), list(dataset.factor_names),
                                      list(dataset.factor_sizes))
    weights = grid_weights(dataset.factor_sizes, correlations)
    return torch.as_tensor(weights, dtype=torch.float64 if device.type != "mps" else torch.float32, device=device)


def draw_indices(num_images: int, batch_size: int, generator: torch.Generator, device: torch.device,
                 weights: torch.Tensor | None) -> torch.Tensor:
    """``batch_size`` image indices: uniform with replacement, or by ``weights`` with replacement."""
    if weights is None:
        return torch.randint(num_images, (batch_size,), generator=generator, device=device)
    return torch.multinomial(weights, batch_size, replacement=True, generator=generator)


def draw_step_input(model: BaseModel, dataset: GroundTruthData, batch_size: int, generator: torch.Generator,
                    device: torch.device, weights: torch.Tensor | None) -> tuple[torch.Tensor, dict[str, Any]]:
    """A step's input for ``model`` and the extra keyword arguments of its ``loss`` (``labels`` for pairs)."""
    if not takes_pairs(model):
        return dataset.batch(draw_indices(len(dataset), batch_size, generator, device, weights), device), {}
    pairs = sample_pairs(dataset.factor_sizes, dataset.factor_strides, batch_size, k=model.k, mode=model.pairs,
                         generator=generator, device=device, weights=weights)
    images = dataset.batch(torch.cat([pairs.first, pairs.second]), device)
    images = images.reshape(2, batch_size, *images.shape[1:]).transpose(0, 1)
    return images, {"labels": pairs.label}
