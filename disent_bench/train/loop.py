"""The training loop: deterministic, resumable, visible, and as fast as a bare optimiser loop.

Protocol of the reference study (Locatello et al. 2019, disentanglement_lib): every step draws
``batch_size`` images uniformly with replacement from the whole dataset, and Adam (lr 1e-4, betas
(0.9, 0.999), eps 1e-8) takes one step on the batch-mean loss; 300,000 steps of batch 64. Models with
auxiliary networks (FactorVAE's discriminator) update them by their own optimiser in the same step
(:mod:`disent_bench.train.optimizers`); losses that follow a schedule get the step.

* Deterministic: the weights are initialised from ``config.seed`` (``init_from_seed``), and two
  dedicated :class:`torch.Generator` streams on the training device, seeded from ``config.seed``,
  draw the batch indices and the model's noise (reparameterisation, FactorVAE's shuffles). The same
  seed gives bit-identical weights and losses on CPU.
* Resumable: ``run_dir/checkpoint.pt`` (:mod:`disent_bench.train.checkpoint`) is written atomically
  every ``checkpoint_every`` steps and at the end, so a kill at any moment leaves the last good
  checkpoint; training resumes from it and, on CPU, ends with weights bit-identical to an
  uninterrupted run.
* Visible: a progress bar (plain lines when not on a terminal) and ``run_dir/train_log.csv``
  (:mod:`disent_bench.train.log`), one row every ``log_every`` steps with the means over those steps of
  every loss term the model reports. Losses are accumulated on the device and read back only at log
  steps, so the loop never waits on the device in between.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import torch

from disent_bench._io import atomic_write_text
from disent_bench.data.base import GroundTruthData
from disent_bench.errors import UserError
from disent_bench.models import BaseModel
from disent_bench.progress import ProgressReporter
from disent_bench.train.checkpoint import (_FORMAT, _VERSION, CHECKPOINT_NAME, STREAM_INIT, STREAM_NOISE,
                                           STREAM_SAMPLE, check_resumable, read_checkpoint, restore_rng,
                                           rng_state, stream_seed, write_checkpoint)
from disent_bench.train.config import TrainConfig, TrainResult
from disent_bench.train.devices import prepare_model, resolve_device
from disent_bench.train.log import BASE_TERMS, LOG_NAME, csv_text, log_terms
from disent_bench.train.optimizers import loss_takes_step, make_optimizers, training_step

__all__ = ["train"]


def train(model: BaseModel, dataset: GroundTruthData, config: TrainConfig | None = None,
          run_dir: str | Path | None = None, progress: bool = True) -> TrainResult:
    """Train ``model`` on ``dataset`` to ``config.steps`` steps (in place); see the module docstring.

    With ``run_dir``, resumes from ``run_dir/checkpoint.pt`` when it exists (it must hold the same
    model, dataset and training settings, else :class:`UserError` and nothing is written) and keeps
    ``checkpoint.pt`` and ``train_log.csv`` there. Returns the model in eval mode with its loss log.
    """
    config = config if config is not None else TrainConfig()
    config.validate()
    if not isinstance(model, BaseModel):
        raise UserError(f"train() needs a disent_bench.models.BaseModel, got {type(model).__name__}")
    model.check_image_shape(dataset.image_shape)
    device = resolve_device(config.device)
    run_dir = Path(run_dir) if run_dir is not None else None
    checkpoint_path = run_dir / CHECKPOINT_NAME if run_dir is not None else None
    log_path = run_dir / LOG_NAME if run_dir is not None else None

    # Everything is checked before anything is written.
    state = None
    if checkpoint_path is not None and checkpoint_path.exists():
        state = read_checkpoint(checkpoint_path)
        check_resumable(checkpoint_path, state, model, dataset, config)

    sample_gen = torch.Generator(device=device)
    noise_gen = torch.Generator(device=device)
    if state is None:
        if config.init_from_seed:
            model.to("cpu")  # initialise on the CPU so the weights do not depend on the device
            model.reset_parameters(stream_seed(config.seed, STREAM_INIT))
        sample_gen.manual_seed(stream_seed(config.seed, STREAM_SAMPLE))
        noise_gen.manual_seed(stream_seed(config.seed, STREAM_NOISE))
    prepare_model(model, config, device)
    optimizers = make_optimizers(model, config)
    takes_step = loss_takes_step(model)

    step = 0
    log: list[dict[str, float]] = []
    sum_dtype = torch.float32 if device.type == "mps" else torch.float64  # MPS has no float64
    terms: tuple[str, ...] | None = None  # the logged loss terms: known from the checkpoint or the first step
    pending: torch.Tensor | None = None  # sums of (total, *terms) since the last log row
    pending_steps = 0
    elapsed_before = 0.0
    if state is not None:
        try:
            model.load_state_dict(state["model_state"])
            optimizers.load_state_dict(state["optimizer_state"], state.get("auxiliary_optimizer_states", {}))
        except (RuntimeError, ValueError, KeyError) as exc:
            raise UserError(f"checkpoint {checkpoint_path} does not fit the model: {str(exc).splitlines()[0]}") from None
        step = int(state["step"])
        log = [dict(row) for row in state["log"]]
        if log and int(log[-1]["step"]) == step < config.steps and step % config.log_every != 0:
            log.pop()  # the last session's end-of-run row: the interval it summarised continues now
        terms = tuple(state.get("terms", BASE_TERMS))
        pending = state["pending"].to(device=device, dtype=sum_dtype)
        pending_steps = int(state["pending_steps"])
        elapsed_before = float(state["elapsed"])
        restore_rng(state["rng"], sample_gen, noise_gen, device, config.seed, step)
    if run_dir is not None:
        _remove_stale_temporaries(run_dir)
    if log_path is not None:
        # Resumed: the checkpoint's rows only, so rows written after it are dropped. Fresh: the old log goes;
        # the new one starts at the first log row, when the model's loss terms (its columns) are known.
        if terms is not None:
            atomic_write_text(log_path, csv_text(log, terms))
        else:
            log_path.unlink(missing_ok=True)

    start_step = step
    batch_size = config.batch_size
    num_images = len(dataset)
    name = model.hparams.get("name", type(model).__name__)
    model.train()
    start = time.perf_counter()
    interval_start, interval_step = start, step

    def checkpoint_state() -> dict[str, Any]:
        return {
            "format": _FORMAT, "version": _VERSION, "step": step,
            "model_hparams": dict(model.hparams),
            "model_state": {k: v.detach().to("cpu", memory_format=torch.contiguous_format)
                            for k, v in model.state_dict().items()},
            "optimizer_state": optimizers.main.state_dict(),
            "auxiliary_optimizer_states": optimizers.state_dict()["auxiliary"],
            "terms": list(terms if terms is not None else BASE_TERMS),
            "config": config.to_dict(),
            "rng": rng_state(sample_gen, noise_gen, device),
            "log": log, "pending_steps": pending_steps,
            "pending": (pending if pending is not None else torch.zeros(1 + len(BASE_TERMS), dtype=sum_dtype)).to("cpu"),
            "elapsed": elapsed_before + time.perf_counter() - start,
            "dataset": {"name": dataset.name, "source": dataset.source, "checksum": dataset.checksum},
            "torch_version": str(torch.__version__),
        }

    with ProgressReporter(f"train {name}", config.steps, enabled=progress, completed=step) as reporter:
        while step < config.steps:
            indices = torch.randint(num_images, (batch_size,), generator=sample_gen, device=device)
            images = dataset.batch(indices, device)
            losses = training_step(model, optimizers, images, noise_gen, step, takes_step)
            step += 1
            if terms is None:
                terms = log_terms(losses)
            if pending is None:
                pending = torch.zeros(1 + len(terms), dtype=sum_dtype, device=device)
            with torch.no_grad():
                try:
                    pending += torch.stack([losses["total"].detach(), *(losses[k].detach() for k in terms)]).to(sum_dtype)
                except (KeyError, RuntimeError) as exc:
                    raise UserError(f"model {name!r}: every step's loss must return the same scalar entries "
                                    f"({', '.join(('total', *terms))}); got {', '.join(losses)} ({exc})") from None
            pending_steps += 1

            fields = {}
            if step % config.log_every == 0 or step == config.steps:
                means = (pending / pending_steps).tolist()  # the one host sync, every log_every steps
                now = time.perf_counter()
                row = {"step": step, "loss": means[0], **dict(zip(terms, means[1:])),
                       "images_per_s": (step - interval_step) * batch_size / max(now - interval_start, 1e-9),
                       "elapsed": elapsed_before + now - start}
                log.append(row)
                if step % config.log_every == 0:
                    pending.zero_()
                    pending_steps = 0
                    interval_start, interval_step = now, step
                # else: an end-of-session row off the log grid; its interval goes on if the run is resumed
                if log_path is not None:
                    if log_path.exists():
                        with open(log_path, "a", newline="") as handle:
                            handle.write(csv_text([row], terms, header=False))
                    else:
                        atomic_write_text(log_path, csv_text([row], terms))
                if not all(math.isfinite(value) for value in means):
                    # Stop at once: a diverged run would otherwise spend its remaining steps on NaNs, and
                    # its last good checkpoint (written before this interval) must not be overwritten.
                    raise FloatingPointError(
                        f"training diverged at step {step}: the mean losses of the last {pending_steps} steps "
                        f"are not finite (" + ", ".join(f"{k} {v}" for k, v in zip(("loss", *terms), means)) + ")")
                fields = {"loss": row["loss"], "rec": row["reconstruction"], "kl": row["kl"],
                          "img/s": round(row["images_per_s"])}
            if checkpoint_path is not None and (step % config.checkpoint_every == 0 or step == config.steps):
                write_checkpoint(checkpoint_path, checkpoint_state())
            reporter.update(1, **fields)

    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    if checkpoint_path is not None and step == start_step and state is None:
        write_checkpoint(checkpoint_path, checkpoint_state())  # steps=0: still leave a loadable model
    model.eval()
    steps_run = step - start_step
    return TrainResult(model=model, step=step, start_step=start_step, log=log, seconds=seconds,
                       images_per_s=steps_run * batch_size / seconds if steps_run and seconds > 0 else 0.0,
                       device=str(device), checkpoint_path=checkpoint_path, final=dict(log[-1]) if log else {})


def _remove_stale_temporaries(run_dir: Path) -> None:
    # A kill during an atomic write leaves its temporary file behind (the target is intact); a run
    # directory has one trainer at a time (the runner claims it), so any such file is an orphan.
    for name in (CHECKPOINT_NAME, LOG_NAME):
        for orphan in run_dir.glob(f".{name}.*.tmp"):
            orphan.unlink(missing_ok=True)


