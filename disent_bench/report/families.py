"""The model families the report knows: their names, the hyper-parameter each sweeps, and their order.

Families and sweeps are those of Locatello et al. (2019), "Challenging Common Assumptions in the
Unsupervised Learning of Disentangled Representations", ICML (disentanglement_lib's
unsupervised_study_v1): beta-VAE (Higgins et al. 2017), FactorVAE (Kim & Mnih 2018), beta-TCVAE
(Chen et al. 2018), DIP-VAE-I and -II (Kumar et al. 2018) and AnnealedVAE (Burgess et al. 2018), in
the order of that paper's figures, after our baselines AE and VAE. Any other model (a user's) comes
after them, by name, with the one parameter that varies over its runs (if exactly one does) as its axis.

A setting's label names its family and swept value ("β-TCVAE (β = 6)") plus every other parameter
that departs from the reference value or varies over the runs, so two different models never share a
label (and so never share a row of a table or a mean over seeds).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from disent_bench.report.tex import tex_escape

#: The report's name for the supervision of the models trained on pairs (a section of its own).
WEAK_PAIRS = "weak: pairs"
#: How parameter values read in labels, where a number stands for a word.
VALUE_NAMES = {"k": {-1: "rnd"}}

#: hparams every model has that do not tell settings of one family apart.
STRUCTURAL_HPARAMS = ("name", "in_channels", "latent_dim")


@dataclass(frozen=True)
class Family:
    model: str                      # registry name
    display: str                    # name in tables and legends
    display_tex: str
    parameter: str | None = None    # the hparam the reference sweeps
    symbol: str = ""                # how labels write that parameter
    symbol_tex: str = ""
    meaning: str = ""               # what the parameter does, for axis labels
    fixed: Mapping[str, float] = field(default_factory=dict)  # reference values of its other hparams
    larger_is_weaker: bool = False  # True where a larger value regularises less (a larger KL capacity)
    shown: tuple[str, ...] = ()     # parameters every label names, whatever their value (Ada-GVAE's k)
    supervision: str = ""           # "" (unsupervised) or how it is supervised ("weak: pairs")


FAMILIES: tuple[Family, ...] = (
    Family("ae", "AE", "AE"),
    Family("vae", "VAE", "VAE"),
    Family("beta_vae", "β-VAE", r"$\beta$-VAE", "beta", "β", r"\beta", "KL weight"),
    Family("factor_vae", "FactorVAE", "FactorVAE", "gamma", "γ", r"\gamma", "total-correlation weight",
           {"discriminator_lr": 1e-4, "discriminator_beta1": 0.5, "discriminator_beta2": 0.9}),
    Family("beta_tc_vae", "β-TCVAE", r"$\beta$-TCVAE", "beta", "β", r"\beta", "total-correlation weight"),
    Family("dip_vae_i", "DIP-VAE-I", "DIP-VAE-I", "lambda_od", "λ_od", r"\lambda_{od}",
           "off-diagonal covariance weight", {"lambda_d_factor": 10.0}),
    Family("dip_vae_ii", "DIP-VAE-II", "DIP-VAE-II", "lambda_od", "λ_od", r"\lambda_{od}",
           "off-diagonal covariance weight", {"lambda_d_factor": 1.0}),
    Family("annealed_vae", "AnnealedVAE", "AnnealedVAE", "c_max", "C_max", r"C_{max}",
           "final KL capacity, nats; larger is weaker", {"gamma": 1000.0, "iteration_threshold": 100000.0},
           larger_is_weaker=True),
    # Weakly supervised on pairs (Locatello et al. 2020): k (factors changed per pair, "rnd" = random) always
    # named; the pair rule only when it is the paper's rather than the reference code's.
    Family("ada_gvae", "Ada-GVAE", "Ada-GVAE", "beta", "β", r"\beta", "KL weight", {"pairs": "reference"},
           shown=("k",), supervision=WEAK_PAIRS),
    Family("ada_ml_vae", "Ada-ML-VAE", "Ada-ML-VAE", "beta", "β", r"\beta", "KL weight", {"pairs": "reference"},
           shown=("k",), supervision=WEAK_PAIRS),
    Family("gvae", "GVAE", "GVAE", "beta", "β", r"\beta", "KL weight", {"pairs": "reference"},
           shown=("k",), supervision=WEAK_PAIRS),
    Family("ml_vae", "ML-VAE", "ML-VAE", "beta", "β", r"\beta", "KL weight", {"pairs": "reference"},
           shown=("k",), supervision=WEAK_PAIRS),
)
BY_MODEL = {f.model: f for f in FAMILIES}
BY_DISPLAY = {f.display: f for f in FAMILIES}
#: Models that sweep nothing and are drawn as reference lines.
BASELINES = ("ae", "vae")


@dataclass(frozen=True)
class Setting:
    """What the report shows of one model setting."""

    family: str                 # display name of its family (a user model's own name)
    order: int                  # position of the family in tables and legends
    sweep_param: str | None     # the hparam on its axis, None if it has none
    sweep_value: float          # its value (nan without one)
    variant: str                # the label's parameters besides sweep_param ("" if none)
    label: str
    label_tex: str


def model_params(hparams: Mapping[str, Any]) -> dict[str, Any]:
    """The hparams that tell two settings of one model apart."""
    return {k: v for k, v in hparams.items() if k not in STRUCTURAL_HPARAMS}


def format_value(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    return f"{value:g}"


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=0.0)
    return a == b


def _numeric(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def describe(model: str, params: Mapping[str, Any], varying: set[str] | frozenset[str] = frozenset()) -> Setting:
    """The family, axis and labels of a setting of ``model`` with hparams ``params`` (see model_params).

    ``varying`` names the parameters whose value differs between runs of ``model`` in the report: a
    parameter the report does not know is shown in the label only then (one every run shares tells
    nothing apart); a known fixed parameter is shown whenever it departs from the reference value.
    """
    family = BY_MODEL.get(model)
    if family is not None:
        sweep = family.parameter if family.parameter in params else None
        extra = [k for k in sorted(params) if k != sweep and
                 (k in family.shown or (k in family.fixed and not _same(params[k], family.fixed[k])) or
                  (k not in family.fixed and k in varying))]
        order = FAMILIES.index(family)
        display, display_tex = family.display, family.display_tex
        symbol, symbol_tex = family.symbol, family.symbol_tex
    else:
        swept = [k for k in sorted(varying) if k in params and _numeric(params[k])]
        sweep = swept[0] if len(swept) == 1 else None
        extra = [k for k in sorted(params) if k != sweep and k in varying]
        order = len(FAMILIES)
        display, display_tex = model, tex_escape(model)
        symbol, symbol_tex = (sweep or ""), tex_escape(sweep or "")
    variant = [f"{k} = {_value_name(k, params[k])}" for k in extra]
    bits = ([f"{symbol} = {format_value(params[sweep])}"] if sweep else []) + variant
    bits_tex = ([f"${symbol_tex} = {format_value(params[sweep])}$"] if sweep else []) + \
        [f"{tex_escape(k)} $= {tex_escape(_value_name(k, params[k]))}$" for k in extra]
    value = float(params[sweep]) if sweep and _numeric(params[sweep]) else math.nan
    return Setting(
        family=display, order=order, sweep_param=sweep, sweep_value=value, variant=", ".join(variant),
        label=display + (f" ({', '.join(bits)})" if bits else ""),
        label_tex=display_tex + (f" ({', '.join(bits_tex)})" if bits_tex else ""),
    )


def _value_name(key: str, value: Any) -> str:
    names = VALUE_NAMES.get(key, {})
    return names[value] if _numeric(value) and value in names else format_value(value)


def supervision(model: str) -> str:
    """How ``model`` is supervised, as the report's sections say it ("" for the unsupervised ones)."""
    family = BY_MODEL.get(model)
    return family.supervision if family is not None else ""


def display_tex(family: str) -> str:
    """The LaTeX name of a family given its display name (a user model's name, escaped)."""
    return BY_DISPLAY[family].display_tex if family in BY_DISPLAY else tex_escape(family)


def larger_is_weaker(family: str) -> bool:
    return family in BY_DISPLAY and BY_DISPLAY[family].larger_is_weaker


def axis_label(model: str, parameter: str) -> str:
    """The x axis label of ``model``'s swept ``parameter``: "γ (total-correlation weight)"."""
    family = BY_MODEL.get(model)
    if family is not None and family.parameter == parameter:
        return f"{family.symbol} ({family.meaning})"
    return parameter


def varying_params(params_by_model: Mapping[str, list[Mapping[str, Any]]]) -> dict[str, set[str]]:
    """Per model, the parameters whose value is not the same in all its runs (absent counts as a value)."""
    out = {}
    for model, all_params in params_by_model.items():
        keys = set().union(*all_params) if all_params else set()
        out[model] = {k for k in keys if len({_comparable(p.get(k, "<absent>")) for p in all_params}) > 1}
    return out


def _comparable(value: Any) -> Any:
    return float(value) if _numeric(value) else repr(value)  # 10 and 10.0 are one value


def log_axis(values: list[float]) -> bool:
    """A log axis where the sweep is positive and spans about a decade or more (max/min >= 8)."""
    values = [v for v in values if _numeric(v)]
    return bool(values) and min(values) > 0 and max(values) / min(values) >= 8


def ascii_label(label: str) -> str:
    """A label with its Greek letters spelled out (for file names)."""
    for greek, latin in (("β", "beta"), ("γ", "gamma"), ("λ", "lambda")):
        label = label.replace(greek, latin)
    return label
