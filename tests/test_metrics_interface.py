"""Every registered metric module against the written-down interface (disent_bench.metrics.interface).

``interface_problems`` lists what a module lacks (members, signatures, registry key, preset settings);
every module in ``_MODULES`` must have none, and fake modules that each miss one thing must be caught.
Then what the evaluator really does with the interface: draws go through the dataset view given, the
extras named in ``NEEDS`` (and only those) reach ``compute``, ``threads`` is explicit and changes no number.
"""

from __future__ import annotations

import inspect
import types
from collections.abc import Mapping

import numpy as np
import pytest
import torch

import disent_bench.metrics as metric_lib
from disent_bench.devices import usable_cores
from disent_bench.errors import UserError
from disent_bench.metrics import DEFAULT_METRICS, PRESETS, Metric, available, evaluate
from disent_bench.metrics.cache import ObservationSet
from disent_bench.metrics.interface import COMPUTE_PARAMETERS, DRAW_PARAMETERS, EXTRAS, LABELS_SUFFIX
from disent_bench.metrics.presets import _MINIMUM
from factor_images import factor_classes, factor_image_dataset

MODULES = metric_lib._MODULES
# The registry's order fixes every metric's random stream: these must stay first, in this order.
REGISTERED_ORDER = ("beta_vae", "factor_vae", "mig", "dci", "sap", "modularity", "reconstruction", "unsupervised")
SIZES = (2, 3, 4, 5)
TINY = {
    "beta_vae": {"num_train": 40, "num_eval": 20, "batch_size": 16},
    "factor_vae": {"num_train": 40, "num_eval": 20, "batch_size": 16, "num_variance_estimate": 200},
    "mig": {"num_train": 300},
    "dci": {"num_train": 100, "num_test": 50},
    "sap": {"num_train": 100, "num_test": 50},
    "modularity": {"num_train": 200, "num_test": 100},
    "reconstruction": {"num_batches": 2, "batch_size": 16},
    "unsupervised": {"num_train": 200},
    "downstream": {"train_sizes": (10, 50), "num_test": 40},
    "irs": {"num_train": 200},
    "mig_sup": {"num_train": 200},
    "jemmig": {"num_train": 200},
    "dcimig": {"num_train": 200},
    "infomec": {"num_train": 200},
}


def _positional(function) -> list[str]:
    return [p.name for p in inspect.signature(function).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]


def interface_problems(module, key: str, presets=PRESETS, minimum=_MINIMUM) -> list[str]:
    """What ``module``, registered under ``key``, lacks of the Metric interface (empty: nothing)."""
    problems = [f"no {member}" for member in ("NAME", "NEEDS", "draw", "compute") if not hasattr(module, member)]
    if problems:
        assert not isinstance(module, Metric)  # the runtime check sees the same
        return problems
    assert isinstance(module, Metric)
    if not isinstance(module.NAME, str) or module.NAME != key:
        problems.append(f"NAME {module.NAME!r} is not its registry key {key!r}")
    elif module.NAME != module.NAME.lower() or "." in module.NAME:
        problems.append(f"NAME {module.NAME!r} is not lower case without dots")
    needs = module.NEEDS
    if not isinstance(needs, tuple) or not all(isinstance(n, str) for n in needs):
        problems.append(f"NEEDS {needs!r} is not a tuple of names")
        needs = ()
    elif set(needs) - set(EXTRAS) or len(set(needs)) != len(needs):
        problems.append(f"NEEDS {needs!r}: names must be distinct, from {sorted(EXTRAS)}")
    for member, parameters in (("draw", DRAW_PARAMETERS), ("compute", COMPUTE_PARAMETERS)):
        function = getattr(module, member)
        if not callable(function):
            problems.append(f"{member} is not callable")
            continue
        signature = inspect.signature(function)
        if _positional(function) != list(parameters):
            problems.append(f"{member}'s positional parameters are {_positional(function)}, not {list(parameters)}")
        if any(p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in signature.parameters.values()):
            problems.append(f"{member} takes *args or **kwargs: its parameters must be named")
        keyword_only = {p.name for p in signature.parameters.values() if p.kind == p.KEYWORD_ONLY}
        expected = set(needs) if member == "compute" else set()
        if keyword_only != expected:
            problems.append(f"{member}'s keyword-only parameters are {sorted(keyword_only)}, "
                            f"not its NEEDS {sorted(expected)}")
    for preset, table in presets.items():
        if key not in table:
            problems.append(f"no settings in preset {preset!r}")
        elif set(table[key]) != set(presets["paper"].get(key, table[key])):
            problems.append(f"preset {preset!r} has other settings than 'paper'")
    if key not in minimum:
        problems.append("no minimum for its settings (presets._MINIMUM)")
    elif key in presets.get("paper", {}) and set(minimum[key]) != set(presets["paper"][key]):
        problems.append("presets._MINIMUM names other settings than the presets")
    if not (inspect.getdoc(module) or "").strip():
        problems.append("no module docstring (the paper, the reference, where it departs from it)")
    return problems


# ---------------------------------------------------------------------------------------------------
# The registry and every module's members
# ---------------------------------------------------------------------------------------------------
def test_registry_order_and_names():
    assert tuple(MODULES)[:len(REGISTERED_ORDER)] == REGISTERED_ORDER  # new metrics go at the end only
    assert available() == list(MODULES) and DEFAULT_METRICS == tuple(MODULES)
    assert set(PRESETS) == {"paper", "quick"}
    for table in PRESETS.values():
        assert set(table) == set(MODULES)  # no settings for a metric that does not exist


@pytest.mark.parametrize("key", list(MODULES))
def test_module_implements_the_interface(key):
    assert interface_problems(MODULES[key], key) == []


def _fake(**members) -> types.ModuleType:
    """A metric module like mig's, with ``members`` replaced (None: removed)."""
    def draw(dataset, settings, rng):
        return {"train": dataset.sample_indices(settings["num_train"], rng)}

    def compute(dataset, draws, view, settings, random_state):
        return {"score": 0.0}

    module = types.ModuleType("fake_metric", "A fake metric.")
    defaults = {"NAME": "mig", "NEEDS": (), "draw": draw, "compute": compute}
    for name, value in {**defaults, **members}.items():
        if value is not None:
            setattr(module, name, value)
    return module


def test_a_complete_fake_module_passes():
    assert interface_problems(_fake(), "mig") == []


@pytest.mark.parametrize("members,problem", [
    ({"NAME": None}, "no NAME"),
    ({"NEEDS": None}, "no NEEDS"),
    ({"draw": None}, "no draw"),
    ({"compute": None}, "no compute"),
    ({"NAME": "MIG"}, "is not its registry key"),
    ({"NEEDS": ["threads"]}, "is not a tuple"),
    ({"NEEDS": ("gpu",)}, "names must be distinct"),
    ({"draw": lambda dataset, rng: {}}, "draw's positional parameters"),
    ({"compute": lambda dataset, draws, view, settings: {}}, "compute's positional parameters"),
    ({"compute": lambda dataset, draws, view, settings, random_state, **extras: {}}, "takes *args or **kwargs"),
    ({"NEEDS": ("threads",)}, "keyword-only parameters are [], not its NEEDS ['threads']"),
    ({"compute": lambda dataset, draws, view, settings, random_state, *, threads: {}},
     "keyword-only parameters are ['threads'], not its NEEDS []"),
])
def test_a_fake_module_missing_something_fails(members, problem):
    fake = _fake(**members)
    problems = interface_problems(fake, "mig")
    assert any(problem in p for p in problems), problems
    if any(members.get(m, 0) is None for m in ("NAME", "NEEDS", "draw", "compute")):
        assert not isinstance(fake, Metric)


def test_a_fake_module_without_settings_fails():
    fake = _fake(NAME="new_metric")
    problems = interface_problems(fake, "new_metric")
    assert "no settings in preset 'paper'" in problems and "no settings in preset 'quick'" in problems
    assert "no minimum for its settings (presets._MINIMUM)" in problems


# ---------------------------------------------------------------------------------------------------
# What the evaluator relies on, run
# ---------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def dataset():
    return factor_image_dataset(SIZES)


class TinyModel(torch.nn.Module):
    """A linear VAE on the 1 x 1 x K factor images (a model with encode and decode)."""

    has_variance = True

    def __init__(self, num_factors: int):
        super().__init__()
        generator = torch.Generator().manual_seed(0)
        self.enc = torch.nn.Parameter(torch.randn(num_factors, num_factors, generator=generator))
        self.dec = torch.nn.Parameter(torch.randn(num_factors, num_factors, generator=generator))

    def encode(self, x):
        mu = (x.reshape(x.shape[0], -1) * 255.0) @ self.enc
        return mu, torch.full_like(mu, -2.0)

    def decode(self, z):
        return (z @ self.dec).reshape(z.shape[0], 1, 1, -1)


@pytest.mark.parametrize("key", list(MODULES))
def test_draw_goes_through_the_view_and_only_its_rng(key, dataset):
    module = MODULES[key]
    observations = ObservationSet(dataset)
    settings = {**PRESETS["quick"][key], **TINY[key]}
    np.random.seed(1)
    first = module.draw(observations.drawer(0), settings, np.random.default_rng(5))
    assert isinstance(first, dict) and first
    drawn = 0
    for name, array in first.items():
        assert isinstance(array, np.ndarray) and np.issubdtype(array.dtype, np.integer), name
        if name.endswith(LABELS_SUFFIX):
            continue
        drawn += array.size
    # Every image index came through the view (as a fresh observation id), none another way.
    assert drawn == len(observations)
    ids = np.concatenate([a.ravel() for n, a in first.items() if not n.endswith(LABELS_SUFFIX)])
    assert np.array_equal(np.sort(ids), np.arange(len(observations)))
    # Deterministic in its rng, blind to numpy's global state.
    np.random.seed(2)
    again = module.draw(dataset, settings, np.random.default_rng(5))
    plain = module.draw(dataset, settings, np.random.default_rng(5))
    assert again.keys() == first.keys()
    for name in first:
        assert np.array_equal(again[name], plain[name])
        if not name.endswith(LABELS_SUFFIX):
            assert np.array_equal(observations.image_indices(first[name]), plain[name])
            assert plain[name].min() >= 0 and plain[name].max() < len(dataset)


def test_compute_gets_its_needs_and_returns_numbers(dataset, monkeypatch):
    model = TinyModel(len(SIZES))
    seen = {}

    def spy(key, compute):
        def wrapper(*args, **kwargs):
            assert len(args) == len(COMPUTE_PARAMETERS)
            scores = compute(*args, **kwargs)
            seen[key] = (kwargs, scores)
            return scores
        return wrapper

    for key, module in MODULES.items():
        monkeypatch.setattr(module, "compute", spy(key, module.compute))
    result = evaluate(dataset, model, preset="quick", settings=TINY, seed=0, progress=False, threads=2)
    assert set(seen) == set(MODULES)
    for key, (kwargs, scores) in seen.items():
        assert set(kwargs) == set(MODULES[key].NEEDS), key
        assert isinstance(scores, Mapping) and scores, key
        assert "seconds" not in scores, key
        for name, value in scores.items():
            # A key may name a sub-result with dots ("lr.100.mean_test_accuracy"), never an empty part.
            assert isinstance(name, str) and all(name.split(".")), (key, name)
            assert result[f"{key}.{name}"] == float(value) or (np.isnan(value) and np.isnan(result[f"{key}.{name}"]))
    assert seen["dci"][0] == {"threads": 2}
    assert seen["reconstruction"][0] == {"model": model, "device": torch.device("cpu")}


def test_threads_default_is_the_usable_cores_not_torchs(dataset, monkeypatch):
    got = []
    compute = MODULES["dci"].compute
    monkeypatch.setattr(MODULES["dci"], "compute", lambda *args, threads: got.append(threads) or compute(
        *args, threads=threads))
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        evaluate(dataset, factor_classes, metrics=["dci"], preset="quick", settings=TINY, progress=False)
    finally:
        torch.set_num_threads(before)
    assert got == [usable_cores()]


@pytest.mark.parametrize("threads", [0, -1, 1.5, True, "2"])
def test_bad_threads_are_refused(dataset, threads):
    with pytest.raises(UserError, match="threads must be an integer >= 1"):
        evaluate(dataset, factor_classes, metrics=["mig"], preset="quick", settings=TINY, progress=False,
                 threads=threads)


def test_dci_numbers_do_not_depend_on_threads(dataset):
    def noisy(x):
        codes = factor_classes(x)
        return codes @ np.arange(1.0, 1.0 + codes.shape[1] ** 2).reshape(codes.shape[1], -1) % 7.3

    settings = {"dci": {"num_train": 300, "num_test": 100}}
    scores = [{k: v for k, v in evaluate(dataset, noisy, metrics=["dci"], preset="quick", settings=settings,
                                         progress=False, threads=threads).items() if "seconds" not in k}
              for threads in (1, 2, 3)]
    assert scores[0] == scores[1] == scores[2]
    assert 0.0 < scores[0]["dci.disentanglement"] < 1.0  # not a degenerate case
