"""One training step: the model's own Adam and its auxiliary optimisers, from one forward pass.

:class:`Optimizers` holds the reference's Adam (the training config's lr, betas and eps) over every
parameter of the model except those of its auxiliary optimisers
(:meth:`disent_bench.models.BaseModel.auxiliary_optimizers`, e.g. FactorVAE's discriminator), and one
Adam per auxiliary optimiser over its own parameters. :meth:`Optimizers.step` back-propagates each
objective into its own parameters only (``backward(inputs=...)``), so the discriminator's loss never
moves the encoder/decoder and the VAE's loss never moves the discriminator; all gradients are taken at
the same weights before any update, as the reference's ``tf.group`` of two ``minimize`` ops.

:func:`training_step` is the whole step (loss, backward, updates); the training loop and the speed
benchmark's bare loop both use it, so the two measure the same work.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

import torch

from disent_bench.errors import UserError
from disent_bench.models import BaseModel
from disent_bench.train.config import TrainConfig

__all__ = ["Optimizers", "make_optimizers", "step_objectives", "loss_takes_step", "training_step"]


class Optimizers:
    """The model's Adam (``main``) and one Adam per auxiliary optimiser (``auxiliary[name]``)."""

    def __init__(self, model: BaseModel, config: TrainConfig,
                 parameters: Mapping[str, torch.Tensor] | None = None) -> None:
        """``parameters``: the tensors to optimise in place of the model's own, by the model's parameter
        names (a pack's stacked weights); the split into main and auxiliary follows the model's."""
        auxiliaries = list(model.auxiliary_optimizers())
        names = [aux.name for aux in auxiliaries]
        if len(set(names)) != len(names) or "main" in names:
            raise UserError(f"model {model.hparams.get('name')!r}: auxiliary optimiser names must be distinct "
                            f"and not 'main', got {names}")
        owner: dict[int, str] = {}
        for aux in auxiliaries:
            for parameter in aux.parameters:
                if id(parameter) in owner:
                    raise UserError(f"model {model.hparams.get('name')!r}: a parameter belongs to both auxiliary "
                                    f"optimisers {owner[id(parameter)]!r} and {aux.name!r}")
                owner[id(parameter)] = aux.name
        named = dict(model.named_parameters())
        target = named if parameters is None else parameters
        name_of = {id(parameter): name for name, parameter in named.items()}
        self.main_parameters = [target[name] for name, parameter in named.items() if id(parameter) not in owner]
        self.auxiliary_parameters = {aux.name: [target[name_of[id(parameter)]] for parameter in aux.parameters]
                                     for aux in auxiliaries}
        self.main = torch.optim.Adam(self.main_parameters, lr=config.lr, betas=config.betas, eps=config.eps)
        self.auxiliary = {aux.name: torch.optim.Adam(self.auxiliary_parameters[aux.name], lr=aux.lr,
                                                     betas=tuple(aux.betas), eps=aux.eps) for aux in auxiliaries}
        self.auxiliary_specs = {aux.name: aux for aux in auxiliaries}

    def step(self, losses: dict[str, torch.Tensor]) -> None:
        """Gradients of each objective into its own parameters, then every optimiser's update."""
        self.main.zero_grad(set_to_none=True)
        if not self.auxiliary:
            losses["total"].backward()
            self.main.step()
            return
        objectives = [(losses["total"], self.main_parameters, self.main)]
        for name, spec in self.auxiliary_specs.items():
            if spec.loss_key not in losses:
                raise UserError(f"the model's loss has no {spec.loss_key!r} entry for its auxiliary optimiser "
                                f"{name!r} (entries: {', '.join(losses)})")
            objectives.append((losses[spec.loss_key], self.auxiliary_parameters[name], self.auxiliary[name]))
        step_objectives(objectives)

    def state_dict(self) -> dict[str, Any]:
        return {"main": self.main.state_dict(),
                "auxiliary": {name: opt.state_dict() for name, opt in self.auxiliary.items()}}

    def load_state_dict(self, main: dict[str, Any], auxiliary: dict[str, Any]) -> None:
        if sorted(auxiliary) != sorted(self.auxiliary):
            raise ValueError(f"auxiliary optimisers {sorted(auxiliary)} saved, the model has {sorted(self.auxiliary)}")
        self.main.load_state_dict(main)
        for name, state in auxiliary.items():
            self.auxiliary[name].load_state_dict(state)


def step_objectives(objectives: list[tuple[torch.Tensor, list[torch.Tensor], torch.optim.Optimizer]]) -> None:
    """For each ``(objective, parameters, optimizer)``: the objective's gradient into its parameters only
    (``backward(inputs=...)``), all at the same weights, then every optimiser's update."""
    for _, _, optimizer in objectives:
        optimizer.zero_grad(set_to_none=True)
    for i, (objective, parameters, _) in enumerate(objectives):
        # The objectives may share a graph (one forward pass): keep it until the last backward.
        torch.autograd.backward(objective, inputs=parameters, retain_graph=i < len(objectives) - 1)
    for _, _, optimizer in objectives:
        optimizer.step()


def make_optimizers(model: BaseModel, config: TrainConfig) -> Optimizers:
    """The reference's Adam for the model (config lr, betas, eps) plus its auxiliary optimisers."""
    return Optimizers(model, config)


def loss_takes_step(model: BaseModel) -> bool:
    """Whether ``model.loss`` accepts ``step=`` (models written before the hook was added do not)."""
    try:
        parameters = inspect.signature(model.loss).parameters
    except (TypeError, ValueError):
        return False
    return "step" in parameters or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())


def training_step(model: BaseModel, optimizers: Optimizers, images: torch.Tensor,
                  generator: torch.Generator | None, step: int, takes_step: bool,
                  extra: dict[str, Any] | None = None) -> dict[str, torch.Tensor]:
    """One update of every optimiser from ``images`` (and ``extra`` keyword arguments of the loss, e.g. a
    pair model's ``labels``); returns the loss dict (with its graph released)."""
    extra = extra or {}
    if takes_step:
        losses = model.loss(images, generator=generator, step=step, **extra)
    else:
        losses = model.loss(images, generator=generator, **extra)
    optimizers.step(losses)
    return losses
