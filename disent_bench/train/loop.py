"""The training loop: deterministic, resumable, visible, and as fast as a bare optimiser loop.

Protocol of the reference study (Locatello et al. 2019, disentanglement_lib): every step draws
``batch_size`` images uniformly with replacement from the whole dataset (or, for the weakly-supervised
models, ``batch_size`` pairs; on correlated training data, with the grid's weights: see
:mod:`disent_bench.train.sampling`), and Adam (lr 1e-4, betas
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
  (:mod:`disent_bench.train.train_log`), one row every ``log_every`` steps with the means over those steps of
  every loss term the model reports. Losses are accumulated on the device and read back only at log
  steps, so the loop never waits on the device in between.
"""

from __future__ import annotations

from pathlib import Path

from disent_bench.data.base import GroundTruthData
from disent_bench.models import BaseModel
from disent_bench.progress import ProgressReporter
from disent_bench.train.config import TrainConfig, TrainResult
from disent_bench.train.devices import prepare_model
from disent_bench.train.optimizers import loss_takes_step, make_optimizers, training_step
from disent_bench.train.sampling import draw_step_input, training_weights
from disent_bench.train.session import RunSession, cpu_state_dict

__all__ = ["train"]


def train(model: BaseModel, dataset: GroundTruthData, config: TrainConfig | None = None,
          run_dir: str | Path | None = None, progress: bool = True) -> TrainResult:
    """Train ``model`` on ``dataset`` to ``config.steps`` steps (in place); see the module docstring.

    With ``run_dir``, resumes from ``run_dir/checkpoint.pt`` when it exists (it must hold the same
    model, dataset and training settings, else :class:`UserError` and nothing is written) and keeps
    ``checkpoint.pt`` and ``train_log.csv`` there. Returns the model in eval mode with its loss log.
    """
    session = RunSession(model, dataset, config, run_dir)  # everything is checked before anything is written
    config, device = session.config, session.device
    prepare_model(model, config, device)
    optimizers = make_optimizers(model, config)
    saved = session.optimizer_states()
    if saved is not None:
        try:
            optimizers.load_state_dict(*saved)
        except (RuntimeError, ValueError, KeyError) as exc:
            raise session.misfit(exc) from None
    takes_step = loss_takes_step(model)
    session.begin()

    def checkpoint_state() -> dict:
        states = optimizers.state_dict()
        return session.checkpoint_state(cpu_state_dict(model), states["main"], states["auxiliary"])

    weights = training_weights(dataset, config, device)  # None: the uniform draw of the reference
    model.train()
    with ProgressReporter(f"train {session.name}", config.steps, enabled=progress, completed=session.step) as reporter:
        while not session.finished:
            images, extra = draw_step_input(model, dataset, config.batch_size, session.sample_gen, device, weights)
            losses = training_step(model, optimizers, images, session.noise_gen, session.step, takes_step, extra)
            session.record_step(losses)
            reporter.update(1, **session.end_step(checkpoint_state))
    return session.finish(checkpoint_state)
