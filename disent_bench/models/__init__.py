"""Model registry: ``build(name, in_channels=..., latent_dim=..., **params)``.

Built in, the reference study's families (Locatello et al. 2019) beside the AE and VAE baselines, all on
the reference conv networks for 64x64 images with 1 or 3 channels
(:mod:`disent_bench.models.architectures`); each family's hyper-parameters are constructor parameters:

=================  ==============================================  ===================================
name               family                                          parameters (reference defaults)
=================  ==============================================  ===================================
``ae``             auto-encoder baseline                           none
``vae``            VAE (Kingma & Welling 2014)                     none
``beta_vae``       beta-VAE (Higgins et al. 2017)                  ``beta``
``annealed_vae``   AnnealedVAE (Burgess et al. 2018)               ``c_max``, ``gamma`` (1000),
                                                                   ``iteration_threshold`` (100000)
``factor_vae``     FactorVAE (Kim & Mnih 2018)                     ``gamma``; ``discriminator_lr`` (1e-4),
                                                                   ``discriminator_beta1/2`` (0.5, 0.9)
``dip_vae_i``      DIP-VAE-I (Kumar et al. 2018)                   ``lambda_od``, ``lambda_d_factor`` (10)
``dip_vae_ii``     DIP-VAE-II (Kumar et al. 2018)                  ``lambda_od``, ``lambda_d_factor`` (1)
``beta_tc_vae``    beta-TCVAE (Chen et al. 2018)                   ``beta``
``ada_gvae``       Ada-GVAE (Locatello et al. 2020), on pairs      ``beta``, ``k`` (-1: random),
                                                                   ``pairs`` ("reference")
``ada_ml_vae``     Ada-ML-VAE (Locatello et al. 2020), on pairs    as ``ada_gvae``
``gvae``           GVAE, told the changed factor (label variant)   as ``ada_gvae``
``ml_vae``         ML-VAE, told the changed factor                 as ``ada_gvae``
=================  ==============================================  ===================================

The weakly-supervised ones (``data_kind = "pairs"``) train on pairs of images that differ in a few
factors (:mod:`disent_bench.data.pairs`); they are scored on single images like every other model.
 Users add models either with
the :func:`register` class decorator or, without registering, by naming the class as
``"package.module:ClassName"`` (a subclass of :class:`BaseModel`).
"""

from __future__ import annotations

import difflib
import importlib
import inspect
from typing import Any, Callable, TypeVar

from disent_bench.errors import UserError
from disent_bench.models.ada_gvae import AdaGVAE
from disent_bench.models.ada_ml_vae import AdaMLVAE
from disent_bench.models.annealed_vae import AnnealedVAE
from disent_bench.models.base import (AuxiliaryOptimizer, BaseModel, bernoulli_reconstruction, gaussian_kl,
                                      reparameterise)
from disent_bench.models.beta_tc_vae import BetaTCVAE
from disent_bench.models.dip_vae import DipVAEI, DipVAEII
from disent_bench.models.factor_vae import FactorVAE
from disent_bench.models.gvae import GVAE
from disent_bench.models.ml_vae import MLVAE
from disent_bench.models.vae import AE, VAE, BetaVAE, GaussianVAE

__all__ = ["BaseModel", "AuxiliaryOptimizer", "GaussianVAE", "AE", "VAE", "BetaVAE", "BetaTCVAE", "FactorVAE",
           "DipVAEI", "DipVAEII", "AnnealedVAE", "AdaGVAE", "AdaMLVAE", "GVAE", "MLVAE", "available", "register", "build", "resolve",
           "bernoulli_reconstruction", "gaussian_kl", "reparameterise"]

_REGISTRY: dict[str, type[BaseModel]] = {}

M = TypeVar("M", bound=type)


def register(name: str) -> Callable[[M], M]:
    """Class decorator: make a :class:`BaseModel` subclass buildable as ``build(name, ...)``."""
    if not isinstance(name, str) or not name or ":" in name:
        raise UserError(f"a model name must be a non-empty string without ':', got {name!r}")

    def decorator(cls: M) -> M:
        if not (inspect.isclass(cls) and issubclass(cls, BaseModel)):
            raise UserError(f"register({name!r}) decorates {cls!r}, which is not a subclass of "
                            "disent_bench.models.BaseModel")
        existing = _REGISTRY.get(name)
        if existing is not None and existing.__qualname__ != cls.__qualname__:
            raise UserError(f"model name {name!r} is already registered for {existing.__module__}:"
                            f"{existing.__qualname__}")
        cls.registered_name = name  # set on this class only; subclasses get their own names
        _REGISTRY[name] = cls
        return cls

    return decorator


register("ae")(AE)
register("vae")(VAE)
register("beta_vae")(BetaVAE)
register("annealed_vae")(AnnealedVAE)
register("factor_vae")(FactorVAE)
register("dip_vae_i")(DipVAEI)
register("dip_vae_ii")(DipVAEII)
register("beta_tc_vae")(BetaTCVAE)
# Weakly supervised on pairs (Locatello et al. 2020): trained on pairs of images, evaluated like the others.
register("ada_gvae")(AdaGVAE)
register("ada_ml_vae")(AdaMLVAE)
register("gvae")(GVAE)
register("ml_vae")(MLVAE)


def available() -> list[str]:
    """Names of the registered models."""
    return sorted(_REGISTRY)


def resolve(name: str) -> type[BaseModel]:
    """The model class for a registered name or a ``"package.module:ClassName"`` path."""
    if not isinstance(name, str) or not name:
        raise UserError(f"a model name must be a non-empty string, got {name!r}")
    if ":" not in name:
        if name not in _REGISTRY:
            raise UserError(f"unknown model {name!r}; registered models: {', '.join(available())} "
                            "(or give a class as 'package.module:ClassName')")
        return _REGISTRY[name]
    module_name, _, qualname = name.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise UserError(f"model {name!r}: cannot import module {module_name!r} ({exc})") from None
    for part in qualname.split("."):
        if not hasattr(obj, part):
            raise UserError(f"model {name!r}: module {module_name!r} has no attribute {qualname!r}")
        obj = getattr(obj, part)
    if not (inspect.isclass(obj) and issubclass(obj, BaseModel)):
        raise UserError(f"model {name!r} is not a subclass of disent_bench.models.BaseModel")
    return obj


def build(name: str, *, in_channels: int, latent_dim: int = 10, **params: Any) -> BaseModel:
    """Build model ``name`` (registered name or ``"package.module:ClassName"``) for ``in_channels`` images.

    ``build(**model.hparams)`` rebuilds an untrained copy of ``model``. Raises :class:`UserError` for
    an unknown model, a parameter the model does not take (with a did-you-mean), ``latent_dim < 1``, a weight
    <= 0 (``beta``, ``gamma``, ``lambda_od``, ...), or
    ``in_channels`` the model cannot handle (1 or 3 for the built-in models).
    """
    cls = resolve(name)
    signature = inspect.signature(cls.__init__)
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in signature.parameters.values())
    accepted = [p for p in signature.parameters if p not in ("self", "in_channels", "latent_dim")
                and signature.parameters[p].kind not in (inspect.Parameter.VAR_KEYWORD,
                                                         inspect.Parameter.VAR_POSITIONAL)]
    unknown = sorted(set(params) - set(accepted))
    if unknown and not takes_any:
        hints = [difflib.get_close_matches(key, accepted, n=1) for key in unknown]
        hint = "".join(f" (did you mean {match[0]!r} for {key!r}?)" for key, match in zip(unknown, hints) if match)
        raise UserError(f"model {name!r} does not take parameter(s) {', '.join(unknown)}{hint}; "
                        f"it takes: {', '.join(['in_channels', 'latent_dim', *accepted])}")
    return cls(in_channels=in_channels, latent_dim=latent_dim, **params)
