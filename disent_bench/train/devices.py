"""The model's memory layout on the device training runs on; :func:`resolve_device` (``auto`` picks cuda,
then mps, then cpu) lives in the low module :mod:`disent_bench.devices` and is re-exported here."""

from __future__ import annotations

import torch

from disent_bench.devices import resolve_device
from disent_bench.models import BaseModel
from disent_bench.train.config import TrainConfig

__all__ = ["resolve_device", "use_channels_last", "prepare_model"]


def use_channels_last(config: TrainConfig, device: torch.device) -> bool:
    """Whether the model runs channels-last: ``config.channels_last``, or by default on the CPU only."""
    return config.channels_last if config.channels_last is not None else device.type == "cpu"


def prepare_model(model: BaseModel, config: TrainConfig, device: torch.device) -> BaseModel:
    """Move ``model`` to ``device`` in the memory layout the config asks for (in place; returned)."""
    model.to(device)
    if use_channels_last(config, device):
        model.to(memory_format=torch.channels_last)
    return model
