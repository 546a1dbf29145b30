"""Training checkpoints: written atomically, read without running code, checked before a run resumes.

``checkpoint.pt`` holds the model's weights (auxiliary networks included), the state of every optimiser,
every random stream, the step, the model's hparams, the config, the loss log and the loss sums since the
last log row, so a run killed at any moment resumes from its last checkpoint and, on CPU, ends
bit-identical to an uninterrupted one. It is read with ``weights_only=True``: no code in it runs.
"""

from __future__ import annotations

import pickle
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from disent_bench._io import atomic_path
from disent_bench.data.base import GroundTruthData
from disent_bench.errors import UserError
from disent_bench.models import BaseModel, build
from disent_bench.train.config import TrainConfig
from disent_bench.train.devices import prepare_model, resolve_device

__all__ = ["CHECKPOINT_NAME", "FORMAT", "VERSION", "read_checkpoint", "checkpoint_step", "write_checkpoint", "check_resumable",
           "load_model", "stream_seed", "rng_state", "restore_rng", "STREAM_INIT", "STREAM_SAMPLE", "STREAM_NOISE"]

CHECKPOINT_NAME = "checkpoint.pt"
FORMAT = "disent-bench-checkpoint"
VERSION = 1
# Settings a resumed run must share with its checkpoint, or it would not continue the same run.
_RESUME_KEYS = ("batch_size", "lr", "betas", "eps", "seed", "init_from_seed", "correlations")
_RESUME_DEFAULTS = {"correlations": ()}
# Independent random streams derived from the seed (numpy SeedSequence spawn keys).
STREAM_INIT, STREAM_SAMPLE, STREAM_NOISE = 0, 1, 2


def stream_seed(seed: int, stream: int) -> int:
    """A 63-bit seed for random stream ``stream`` of run seed ``seed``."""
    return int(np.random.SeedSequence([seed, stream]).generate_state(1, dtype=np.uint64)[0] >> 1)


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load and check a training checkpoint (``weights_only``: no code runs); :class:`UserError` if unusable."""
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT_NAME
    if not path.is_file():
        raise UserError(f"checkpoint {path} not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, pickle.UnpicklingError, EOFError, zipfile.BadZipFile, ValueError, OSError,
            AttributeError, KeyError, IndexError, TypeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"checkpoint {path} is corrupt or not a disent-bench checkpoint ({first[:200]}); "
                        "delete it to start the run afresh") from None
    required = ("format", "version", "step", "model_hparams", "model_state", "optimizer_state", "config",
                "rng", "log", "pending", "elapsed")  # "auxiliary_optimizer_states" and "terms" are newer, optional
    if not isinstance(state, dict) or state.get("format") != FORMAT or any(k not in state for k in required):
        raise UserError(f"checkpoint {path} is not a disent-bench training checkpoint (missing fields); "
                        "delete it to start the run afresh")
    if state["version"] != VERSION:
        raise UserError(f"checkpoint {path} has format version {state['version']}; this disent-bench reads "
                        f"version {VERSION}")
    return state


def checkpoint_step(path: str | Path) -> int | None:
    """The step a checkpoint (or a run directory's checkpoint) has reached: None when there is no
    checkpoint yet, :class:`UserError` when there is one that cannot be read."""
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT_NAME
    if not path.exists():
        return None
    return int(read_checkpoint(path)["step"])


def write_checkpoint(path: Path, state: dict[str, Any]) -> None:
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def check_resumable(path: Path, state: dict[str, Any], model: BaseModel, dataset: GroundTruthData,
                     config: TrainConfig) -> None:
    if state["model_hparams"] != model.hparams:
        raise UserError(f"checkpoint {path} holds another model ({state['model_hparams']}) than the one "
                        f"being trained ({model.hparams}); use another run directory or delete the checkpoint")
    saved = state["config"]
    for key in _RESUME_KEYS:
        # A key a later version added: a checkpoint without it was trained with its default.
        old = saved.get(key, _RESUME_DEFAULTS.get(key))
        new = getattr(config, key)
        if isinstance(old, list):
            old = tuple(old)
        if old != new:
            raise UserError(f"checkpoint {path} was trained with {key}={old!r} but the config says {new!r}; "
                            "use the same setting to resume, or another run directory")
    info = state.get("dataset", {})
    if info.get("name") != dataset.name or info.get("source") != dataset.source or (
            info.get("checksum") and dataset.checksum and info["checksum"] != dataset.checksum):
        raise UserError(f"checkpoint {path} was trained on dataset {info.get('name')!r} "
                        f"({info.get('source')}, checksum {info.get('checksum')}) but this run uses "
                        f"{dataset.name!r} ({dataset.source}, checksum {dataset.checksum})")


def rng_state(sample_gen: torch.Generator, noise_gen: torch.Generator, device: torch.device) -> dict[str, Any]:
    state: dict[str, Any] = {"device_type": device.type, "sample": sample_gen.get_state(),
                             "noise": noise_gen.get_state(), "torch_cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["torch_cuda"] = torch.cuda.get_rng_state(device)
    return state


def restore_rng(state: dict[str, Any], sample_gen: torch.Generator, noise_gen: torch.Generator,
                 device: torch.device, seed: int, step: int) -> None:
    # The global torch RNG is not used by the built-in models but may be by user models.
    torch.set_rng_state(state["torch_cpu"])
    if state["device_type"] == device.type:
        sample_gen.set_state(state["sample"])
        noise_gen.set_state(state["noise"])
        if device.type == "cuda" and "torch_cuda" in state:
            torch.cuda.set_rng_state(state["torch_cuda"], device)
        return
    # Generator states are device-specific: moving a run to another kind of device continues it with
    # streams re-seeded from (seed, step), deterministic but not the numbers the old device would draw.
    warnings.warn(f"resuming a run trained on {state['device_type']} on {device.type}: the random streams "
                  "are re-seeded, so the result will differ from an uninterrupted run", stacklevel=3)
    sample_gen.manual_seed(stream_seed(seed, 1000 + 2 * step))
    noise_gen.manual_seed(stream_seed(seed, 1001 + 2 * step))


def load_model(path: str | Path, device: str | torch.device = "cpu") -> BaseModel:
    """The model saved in a training checkpoint (or a run directory holding one), in eval mode on ``device``.

    Like :func:`train`, it lays the model out channels-last on the CPU (faster convolutions there).
    """
    state = read_checkpoint(path)
    hparams = dict(state["model_hparams"])
    if "name" not in hparams:
        raise UserError(f"checkpoint {path} does not name its model (no 'name' in its hparams)")
    model = build(**hparams)
    try:
        model.load_state_dict(state["model_state"])
    except RuntimeError as exc:
        raise UserError(f"checkpoint {path} does not fit model {hparams['name']!r}: "
                        f"{str(exc).splitlines()[0]}") from None
    # The layout train() uses on this device, so that encodings match the model train() returned.
    torch_device = resolve_device(device)
    return prepare_model(model, TrainConfig(steps=0, device=str(torch_device)), torch_device).eval()
