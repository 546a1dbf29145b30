"""One run's training state over one call of the trainer: set-up and resume, loss sums, log rows, checkpoints.

:class:`RunSession` is everything about a run that does not depend on how its steps are computed, so
that a run trained alone (:func:`disent_bench.train.train`) and a run trained packed with others
(:func:`disent_bench.train.packed.train_packed`) check, resume, log and checkpoint in exactly the same
way, with the same files.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from disent_bench._io import append_text, atomic_write_text
from disent_bench.data.base import GroundTruthData
from disent_bench.errors import UserError
from disent_bench.models import BaseModel
from disent_bench.train.checkpoint import (FORMAT, VERSION, CHECKPOINT_NAME, STREAM_INIT, STREAM_NOISE,
                                           STREAM_SAMPLE, check_resumable, read_checkpoint, restore_rng,
                                           rng_state, stream_seed, write_checkpoint)
from disent_bench.train.config import TrainConfig, TrainResult
from disent_bench.train.devices import resolve_device
from disent_bench.train.train_log import BASE_TERMS, LOG_NAME, csv_text, log_terms

__all__ = ["RunSession"]


class RunSession:
    """A run's state for one training call. Construction checks everything before anything is written.

    After construction: the model holds its initial (or checkpointed) weights on the CPU or where it was;
    ``saved`` is the checkpoint being resumed (or None), from which :meth:`optimizer_states` gives the
    optimisers' states; ``sample_gen`` and ``noise_gen`` are the run's random streams on ``device``.
    """

    def __init__(self, model: BaseModel, dataset: GroundTruthData, config: TrainConfig | None,
                 run_dir: str | Path | None) -> None:
        config = config if config is not None else TrainConfig()
        config.validate()
        if not isinstance(model, BaseModel):
            raise UserError(f"train() needs a disent_bench.models.BaseModel, got {type(model).__name__}")
        model.check_image_shape(dataset.image_shape)
        self.model, self.dataset, self.config = model, dataset, config
        self.device = device = resolve_device(config.device)
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.checkpoint_path = self.run_dir / CHECKPOINT_NAME if self.run_dir is not None else None
        self.log_path = self.run_dir / LOG_NAME if self.run_dir is not None else None
        self.name = model.hparams.get("name", type(model).__name__)
        # A step's images: batch_size, or twice that for a model trained on pairs (a pair is two images).
        self.images_per_step = config.batch_size * model.images_per_example()

        saved = None
        if self.checkpoint_path is not None and self.checkpoint_path.exists():
            saved = read_checkpoint(self.checkpoint_path)
            check_resumable(self.checkpoint_path, saved, model, dataset, config)
        self.saved = saved

        self.sample_gen = torch.Generator(device=device)
        self.noise_gen = torch.Generator(device=device)
        self.sum_dtype = torch.float32 if device.type == "mps" else torch.float64  # MPS has no float64
        self.step = 0
        self.log: list[dict[str, float]] = []
        self.terms: tuple[str, ...] | None = None  # the logged loss terms: from the checkpoint or the first step
        self.pending: torch.Tensor | None = None  # sums of (total, *terms) since the last log row
        self.pending_steps = 0
        self.elapsed_before = 0.0
        if saved is None:
            if config.init_from_seed:
                model.to("cpu")  # initialise on the CPU so the weights do not depend on the device
                model.reset_parameters(stream_seed(config.seed, STREAM_INIT))
            self.sample_gen.manual_seed(stream_seed(config.seed, STREAM_SAMPLE))
            self.noise_gen.manual_seed(stream_seed(config.seed, STREAM_NOISE))
        else:
            try:
                model.load_state_dict(saved["model_state"])
            except (RuntimeError, ValueError, KeyError) as exc:
                raise self.misfit(exc) from None
            self.step = int(saved["step"])
            self.log = [dict(row) for row in saved["log"]]
            if self.log and int(self.log[-1]["step"]) == self.step < config.steps and self.step % config.log_every != 0:
                self.log.pop()  # the last session's end-of-run row: the interval it summarised continues now
            self.terms = tuple(saved.get("terms", BASE_TERMS))
            self.pending = saved["pending"].to(device=device, dtype=self.sum_dtype)
            self.pending_steps = int(saved["pending_steps"])
            self.elapsed_before = float(saved["elapsed"])
            restore_rng(saved["rng"], self.sample_gen, self.noise_gen, device, config.seed, self.step)
        self.start_step = self.step
        self.start = self.interval_start = time.perf_counter()
        self.interval_step = self.step
        self.seconds = 0.0

    def misfit(self, exc: Exception) -> UserError:
        return UserError(f"checkpoint {self.checkpoint_path} does not fit the model: {str(exc).splitlines()[0]}")

    def optimizer_states(self) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """(main, auxiliary) optimiser states of the checkpoint being resumed; None for a fresh run."""
        if self.saved is None:
            return None
        return self.saved["optimizer_state"], self.saved.get("auxiliary_optimizer_states", {})

    def begin(self) -> None:
        """Start writing: stale temporaries go, and the log restarts from the checkpoint's rows."""
        if self.run_dir is not None:
            _remove_stale_temporaries(self.run_dir)
        if self.log_path is not None:
            # Resumed: the checkpoint's rows only, so rows written after it are dropped. Fresh: the old log
            # goes; the new one starts at the first log row, when the model's loss terms (its columns) are known.
            if self.terms is not None:
                atomic_write_text(self.log_path, csv_text(self.log, self.terms))
            else:
                self.log_path.unlink(missing_ok=True)
        self.start = self.interval_start = time.perf_counter()

    @property
    def finished(self) -> bool:
        return self.step >= self.config.steps

    def loss_vector(self, losses: dict[str, torch.Tensor]) -> torch.Tensor:
        """``(total, *terms)`` of one step's loss dict, detached (fixing the terms at the first step)."""
        if self.terms is None:
            self.terms = log_terms(losses)
        try:
            return torch.stack([losses["total"].detach(), *(losses[k].detach() for k in self.terms)])
        except (KeyError, RuntimeError) as exc:
            raise UserError(f"model {self.name!r}: every step's loss must return the same scalar entries "
                            f"({', '.join(('total', *self.terms))}); got {', '.join(losses)} ({exc})") from None

    def record_step(self, losses: dict[str, torch.Tensor] | None = None) -> None:
        """One step was taken: count it and add its ``losses`` to the sums of the current log interval.

        A pack passes no losses: it adds all its members' losses at once to their rows of one tensor
        (see :meth:`share_pending`), and each member only counts its step here.
        """
        if losses is not None:
            vector = self.loss_vector(losses)
            with torch.no_grad():
                self.ensure_pending().add_(vector.to(self.sum_dtype))
        self.step += 1
        self.pending_steps += 1

    def share_pending(self, row: torch.Tensor) -> None:
        """Keep this run's loss sums in ``row``, a row of a pack's tensor of its members' sums."""
        self.pending = row

    def ensure_pending(self) -> torch.Tensor:
        if self.pending is None:
            assert self.terms is not None
            self.pending = torch.zeros(1 + len(self.terms), dtype=self.sum_dtype, device=self.device)
        return self.pending

    def end_step(self, checkpoint_state: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """After a step was taken and its losses added to ``pending``: log row, divergence check, checkpoint.

        Returns the progress-bar fields (empty off the log steps). Raises FloatingPointError when the
        interval's mean losses are not finite (before writing a checkpoint, so the last good one stays).
        """
        config, step = self.config, self.step
        fields: dict[str, Any] = {}
        if step % config.log_every == 0 or step == config.steps:
            assert self.pending is not None and self.terms is not None
            means = (self.pending / self.pending_steps).tolist()  # the one host sync, every log_every steps
            now = time.perf_counter()
            row = {"step": step, "loss": means[0], **dict(zip(self.terms, means[1:])),
                   "images_per_s": (step - self.interval_step) * self.images_per_step
                                   / max(now - self.interval_start, 1e-9),
                   "elapsed": self.elapsed_before + now - self.start}
            self.log.append(row)
            steps_in_row = self.pending_steps
            if step % config.log_every == 0:
                self.pending.zero_()
                self.pending_steps = 0
                self.interval_start, self.interval_step = now, step
            # else: an end-of-session row off the log grid; its interval goes on if the run is resumed
            if self.log_path is not None:
                if self.log_path.exists():
                    append_text(self.log_path, csv_text([row], self.terms, header=False))
                else:
                    atomic_write_text(self.log_path, csv_text([row], self.terms))
            if not all(math.isfinite(value) for value in means):
                # Stop at once: a diverged run would otherwise spend its remaining steps on NaNs, and
                # its last good checkpoint (written before this interval) must not be overwritten.
                raise FloatingPointError(
                    f"training diverged at step {step}: the mean losses of the last {steps_in_row} steps are "
                    "not finite (" + ", ".join(f"{k} {v}" for k, v in zip(("loss", *self.terms), means)) + ")")
            fields = {"loss": row["loss"], "rec": row["reconstruction"], "kl": row["kl"],
                      "img/s": round(row["images_per_s"])}
        if self.checkpoint_path is not None and (step % config.checkpoint_every == 0 or step == config.steps):
            write_checkpoint(self.checkpoint_path, checkpoint_state())
        return fields

    def checkpoint_state(self, model_state: dict[str, torch.Tensor], optimizer_state: dict[str, Any],
                         auxiliary_states: dict[str, Any]) -> dict[str, Any]:
        """The checkpoint of this run now, given its weights (on the CPU) and its optimisers' states."""
        return {
            "format": FORMAT, "version": VERSION, "step": self.step,
            "model_hparams": dict(self.model.hparams),
            "model_state": model_state,
            "optimizer_state": optimizer_state,
            "auxiliary_optimizer_states": auxiliary_states,
            "terms": list(self.terms if self.terms is not None else BASE_TERMS),
            "config": self.config.to_dict(),
            "rng": rng_state(self.sample_gen, self.noise_gen, self.device),
            "log": self.log, "pending_steps": self.pending_steps,
            "pending": (self.pending if self.pending is not None
                        else torch.zeros(1 + len(BASE_TERMS), dtype=self.sum_dtype)).to("cpu"),
            "elapsed": self.elapsed_before + time.perf_counter() - self.start,
            "dataset": {"name": self.dataset.name, "source": self.dataset.source, "checksum": self.dataset.checksum},
            "torch_version": str(torch.__version__),
        }

    def finish(self, checkpoint_state: Callable[[], dict[str, Any]]) -> TrainResult:
        """Close the call: a checkpoint even for ``steps = 0``, the model in eval mode, the result."""
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.seconds = time.perf_counter() - self.start
        if self.checkpoint_path is not None and self.step == self.start_step and self.saved is None:
            write_checkpoint(self.checkpoint_path, checkpoint_state())  # steps=0: still leave a loadable model
        self.model.eval()
        steps_run = self.step - self.start_step
        return TrainResult(model=self.model, step=self.step, start_step=self.start_step, log=self.log,
                           seconds=self.seconds,
                           images_per_s=(steps_run * self.images_per_step / self.seconds
                                         if steps_run and self.seconds > 0 else 0.0),
                           device=str(self.device), checkpoint_path=self.checkpoint_path,
                           final=dict(self.log[-1]) if self.log else {})


def cpu_state_dict(model: BaseModel) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", memory_format=torch.contiguous_format) for k, v in model.state_dict().items()}


def _remove_stale_temporaries(run_dir: Path) -> None:
    # A kill during an atomic write leaves its temporary file behind (the target is intact); a run
    # directory has one trainer at a time (the runner claims it), so any such file is an orphan.
    # Every file of the run directory counts (checkpoint, train log, config.json, metrics.json, DONE, error.json):
    # atomic writes name their temporaries ".<name>.<random>.tmp".
    for orphan in run_dir.glob(".*.tmp"):
        orphan.unlink(missing_ok=True)
