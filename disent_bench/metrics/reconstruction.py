"""Reconstruction error on a fixed held-out sample of images.

The reference study (Locatello et al. 2019, google-research/disentanglement_lib ``methods/unsupervised``)
reports the Bernoulli cross-entropy of the decoder's logits, summed over pixels and channels per image,
averaged over 1000 batches of 64 random images (``num_batches`` x ``batch_size``), for every dataset.
Its model reconstructs from a *sampled* code; here both are reported and named:

* ``bce`` / ``mse``: from the mean code (deterministic; the headline).
* ``bce_sampled`` / ``mse_sampled``: from ``mean + std * eps`` (encoders with a variance only).

``mse`` is the squared error of ``sigmoid(logits)`` against the image, summed over pixels and channels
per image. Needs a decoder (``model.decode``): for an encoder-only callable the metric is skipped.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from disent_bench.data.base import GroundTruthData
from disent_bench.errors import UserError
from disent_bench.metrics.cache import CodeView

NAME = "reconstruction"
NEEDS: tuple[str, ...] = ("model", "device")  # compute() decodes codes with the model, on its device


def draw(dataset: GroundTruthData, settings: dict, rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {"images": dataset.sample_indices(settings["num_batches"] * settings["batch_size"], rng)}


def per_image_losses(logits: torch.Tensor, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image Bernoulli cross-entropy on logits and squared error of the probabilities (summed)."""
    if logits.shape != images.shape:
        raise UserError(f"decoder returned logits of shape {tuple(logits.shape)} for images of shape "
                        f"{tuple(images.shape)}")
    bce = F.binary_cross_entropy_with_logits(logits, images, reduction="none").flatten(1).sum(1)
    mse = (torch.sigmoid(logits) - images).square().flatten(1).sum(1)
    return bce, mse


def compute(dataset: GroundTruthData, draws: dict[str, np.ndarray], view: CodeView, settings: dict,
            random_state: int, *, model: torch.nn.Module, device: torch.device) -> dict[str, float]:
    indices = draws["images"]
    batch = settings["batch_size"]
    sampled = view.cache.std is not None
    totals = {"bce": 0.0, "mse": 0.0, "bce_sampled": 0.0, "mse_sampled": 0.0}
    with torch.no_grad():
        for start in range(0, indices.size, batch):
            chunk = indices[start:start + batch]
            images = dataset.batch(chunk, device)
            mean = view.mean(chunk)
            codes = {"": mean}
            if sampled:
                codes["_sampled"] = mean + view.std(chunk) * view.noise_rng.standard_normal(mean.shape)
            for suffix, z in codes.items():
                z_tensor = torch.as_tensor(z, dtype=torch.float32, device=device)
                bce, mse = per_image_losses(model.decode(z_tensor).float(), images)
                totals["bce" + suffix] += float(bce.double().sum())
                totals["mse" + suffix] += float(mse.double().sum())
    keys = ("bce", "mse", "bce_sampled", "mse_sampled") if sampled else ("bce", "mse")
    return {key: totals[key] / indices.size for key in keys}
