"""Model registry: ``build(name, in_channels=..., latent_dim=..., **params)``.

Built in: ``ae``, ``vae`` and ``beta_vae`` (parameter ``beta`` > 0), the reference conv networks for
64x64 images with 1 or 3 channels (see :mod:`disent_bench.models.vae`). Users add models either with
the :func:`register` class decorator or, without registering, by naming the class as
``"package.module:ClassName"`` (a subclass of :class:`BaseModel`).
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any, Callable, TypeVar

from disent_bench.errors import UserError
from disent_bench.models.base import BaseModel, bernoulli_reconstruction, gaussian_kl, reparameterise
from disent_bench.models.vae import AE, VAE, BetaVAE

__all__ = ["BaseModel", "AE", "VAE", "BetaVAE", "available", "register", "build", "resolve",
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
    an unknown model, a parameter the model does not take, ``latent_dim < 1``, ``beta <= 0``, or
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
        raise UserError(f"model {name!r} does not take parameter(s) {', '.join(unknown)}; "
                        f"it takes: {', '.join(['in_channels', 'latent_dim', *accepted])}")
    return cls(in_channels=in_channels, latent_dim=latent_dim, **params)
