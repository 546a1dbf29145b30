"""Correlated training data (disent_bench.data.correlation): spec shared/spec/weak.md section 4, Decision 6."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
import torch

from disent_bench.data.correlation import (
    Correlation,
    canonical,
    describe,
    grid_weights,
    parse_correlations,
)
from disent_bench.errors import UserError

DSPRITES_NAMES = ("shape", "scale", "orientation", "posX", "posY")
DSPRITES_SIZES = (3, 6, 40, 32, 32)


def pair(a="a", b="b", sigma=0.4, **extra):
    return {"factors": [a, b], "sigma": sigma, **extra}


def test_two_factors_of_three_match_the_spec_vectors():
    weights = grid_weights((3, 3), parse_correlations([pair()], ["a", "b"])).reshape(3, 3)
    expected = np.array([[0.203285, 0.093071, 0.008932],
                         [0.093071, 0.203285, 0.093071],
                         [0.008932, 0.093071, 0.203285]])
    np.testing.assert_allclose(weights, expected, atol=5e-7)
    assert weights.sum() == pytest.approx(1.0)
    anti = grid_weights((3, 3), parse_correlations([pair(anti=True)], ["a", "b"])).reshape(3, 3)
    np.testing.assert_allclose(anti, expected[:, ::-1], atol=5e-7)


def test_three_factors_two_pairs_multiply():
    correlations = parse_correlations([pair("a", "b"), pair("c", "a")], ["a", "b", "c"])
    weights = grid_weights((3, 3, 3), correlations).reshape(3, 3, 3)
    assert weights[0, 0, 0] == pytest.approx(0.122243, abs=5e-7)
    assert weights[1, 1, 1] == pytest.approx(0.122243, abs=5e-7)
    assert weights[0, 2, 2] == pytest.approx(0.000236, abs=5e-7)
    # By hand: w = exp(-((c_a - c_b)^2 + (c_a - c_c)^2) / (2 * 0.16)), normalised.
    c = np.arange(3) / 2
    hand = np.exp(-((c[:, None, None] - c[None, :, None]) ** 2 + (c[:, None, None] - c[None, None, :]) ** 2) / 0.32)
    np.testing.assert_allclose(weights, hand / hand.sum(), rtol=1e-12)


def test_no_pair_is_uniform_and_values_are_scaled_to_unit_range():
    assert np.array_equal(grid_weights((2, 3), ()), np.full(6, 1 / 6))
    correlations = parse_correlations([pair(sigma=0.3)], ["a", "b"])
    evenly = grid_weights((3, 4), correlations, factor_values=[np.array([0.5, 0.75, 1.0]), np.linspace(-2, 2, 4)])
    np.testing.assert_allclose(evenly, grid_weights((3, 4), correlations), rtol=1e-12)
    uneven = grid_weights((3, 4), correlations, factor_values=[np.array([0.0, 0.9, 1.0]), np.arange(4)])
    c_a, c_b = np.array([0, 0.9, 1.0]), np.arange(4) / 3
    hand = np.exp(-(c_a[:, None] - c_b[None, :]) ** 2 / 0.18).reshape(-1)
    np.testing.assert_allclose(uneven, hand / hand.sum(), rtol=1e-12)


def test_dsprites_marginals_stay_on_the_grid_and_other_factors_stay_independent():
    correlations = parse_correlations([pair("posX", "posY", 0.2)], DSPRITES_NAMES)
    weights = grid_weights(DSPRITES_SIZES, correlations)
    assert weights.shape == (737_280,) and weights.dtype == np.float64 and weights.sum() == pytest.approx(1.0)
    grid = weights.reshape(DSPRITES_SIZES)
    # Shape, scale and orientation: uniform and independent of the position.
    np.testing.assert_allclose(grid.sum(axis=(3, 4)), np.full((3, 6, 40), 1 / 720), rtol=1e-10)
    positions = grid.sum(axis=(0, 1, 2))
    np.testing.assert_allclose(grid, np.broadcast_to(positions / 720, grid.shape), rtol=1e-10)
    # posX and posY each keep every one of their 32 values, and the same marginal (the pair is symmetric).
    assert np.all(positions.sum(0) > 0)
    np.testing.assert_allclose(positions.sum(0), positions.sum(1), rtol=1e-12)


def test_empirical_correlation_grows_as_sigma_shrinks():
    def sampled_correlation(sigma, anti=False):
        weights = grid_weights(DSPRITES_SIZES, parse_correlations([pair("posX", "posY", sigma, anti=anti)],
                                                                  DSPRITES_NAMES))
        draws = torch.multinomial(torch.from_numpy(weights), 20_000, replacement=True,
                                  generator=torch.Generator().manual_seed(0)).numpy()
        pos_x, pos_y = (draws // 32) % 32, draws % 32
        return np.corrcoef(pos_x, pos_y)[0, 1]

    correlations = [sampled_correlation(sigma) for sigma in (0.7, 0.4, 0.2, 0.1)]
    assert all(a < b for a, b in itertools.pairwise(correlations)), correlations
    assert correlations[-1] > 0.9
    assert sampled_correlation(0.1, anti=True) < -0.9


def test_confounder_ties_one_factor_to_every_other_that_varies():
    sizes = (3, 1, 40, 32, 32)  # scale fixed: it cannot be a partner
    parsed = parse_correlations([{"confounder": "shape", "sigma": 0.2}], DSPRITES_NAMES, sizes)
    assert [c.factors for c in parsed] == [("shape", "orientation"), ("shape", "posX"), ("shape", "posY")]
    assert all(c.sigma == 0.2 and not c.anti for c in parsed)
    explicit = parse_correlations([pair("posY", "shape", 0.2), pair("shape", "orientation", 0.2),
                                   pair("posX", "shape", 0.2)], DSPRITES_NAMES, sizes)
    assert canonical(parsed) == canonical(explicit)
    np.testing.assert_allclose(grid_weights(sizes, parsed), grid_weights(sizes, explicit), rtol=1e-12)


def test_describe_and_canonical():
    parsed = parse_correlations([pair("posY", "posX", 0.2), pair("shape", "scale", 0.1, anti=True)], DSPRITES_NAMES)
    assert describe(parsed) == "correlated: posY~posX σ=0.2, shape~-scale σ=0.1"
    assert describe(()) == "uncorrelated"
    stored = canonical(parsed)
    assert stored == [{"factors": ["shape", "scale"], "sigma": 0.1, "anti": True},
                      {"factors": ["posX", "posY"], "sigma": 0.2, "anti": False}]
    assert json.loads(json.dumps(stored)) == stored
    # What a run config stores reads back into the same pairs.
    assert canonical(parse_correlations(stored, DSPRITES_NAMES)) == stored
    assert isinstance(parsed[0], Correlation) and parsed[0].indices == (4, 3)


@pytest.mark.parametrize("entries, message", [
    ([pair("posX", "posZ")], "correlations[0]: unknown factor 'posZ' in 'factors'; valid factors: shape, scale"),
    ([pair("posX", "posX")], "correlations[0]: factor 'posX' is paired with itself"),
    ([pair("posX", "posY", 0)], "correlations[0]: sigma = 0: must be a finite number > 0"),
    ([pair("posX", "posY", -0.1)], "sigma = -0.1"),
    ([pair("posX", "posY", True)], "sigma = True"),
    ([{"factors": ["posX", "posY"]}], "correlations[0]: missing 'sigma'"),
    ([pair("posX", "posY", strength=1)], "correlations[0]: unknown key 'strength'; valid keys: anti, factors, sigma"),
    ([pair("posX", "posY", anti="yes")], "anti = 'yes'"),
    ([pair("posX", "posY"), pair("posY", "posX")], ("correlations[1]: the pair posY~posX is already correlated by "
                                                   "correlations[0]")),
    ([pair("posX", "posY"), {"confounder": "posX", "sigma": 0.2}], "correlations[1]: the pair posX~posY"),
    ([{"confounder": "size", "sigma": 0.2}], "unknown factor 'size' in 'confounder'"),
    ([{"confounder": "shape", "factors": ["posX", "posY"], "sigma": 0.2}], "exactly one of 'factors'"),
    ([{"factors": ["posX"], "sigma": 0.2}], "list of two factor names"),
    ({"factors": ["posX", "posY"], "sigma": 0.2}, "correlations: must be a list of tables"),
    (["posX"], "correlations[0]: must be a table"),
])
def test_bad_entries_raise_one_line_user_errors(entries, message):
    with pytest.raises(UserError) as error:
        parse_correlations(entries, DSPRITES_NAMES)
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_one_valued_factor_cannot_be_correlated():
    with pytest.raises(UserError, match="'scale' has a single value"):
        parse_correlations([pair("scale", "posX")], DSPRITES_NAMES, (3, 1, 40, 32, 32))
    unchecked = parse_correlations([pair("scale", "posX")], DSPRITES_NAMES)  # sizes unknown at parse time
    with pytest.raises(UserError, match="single value"):
        grid_weights((3, 1, 40, 32, 32), unchecked)
