"""Weak-supervision pairs (disent_bench.data.pairs): spec shared/spec/weak.md sections 1 and 4, Decisions 1, 6."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from scipy import stats

from disent_bench.data import pairs as pairs_module
from disent_bench.data.base import GroundTruthData
from disent_bench.data.correlation import grid_weights, parse_correlations
from disent_bench.data.pairs import PAIR_MODES, sample_pairs
from disent_bench.errors import UserError

DSPRITES_SIZES = (3, 6, 40, 32, 32)


def strides_of(sizes):
    return tuple(int(np.prod(sizes[i + 1:])) for i in range(len(sizes)))


def draw(sizes, batch, seed=0, **kwargs):
    generator = torch.Generator().manual_seed(seed)
    return sample_pairs(sizes, strides_of(sizes), batch, generator=generator, **kwargs)


def factors(indices, sizes):
    return (np.asarray(indices)[:, None] // np.asarray(strides_of(sizes))) % np.asarray(sizes)


def chi_square_p(observed, expected_probabilities):
    """p-value of a chi-square goodness of fit, cells with expected count < 5 pooled into one."""
    observed = np.asarray(observed, dtype=float)
    expected = np.asarray(expected_probabilities, dtype=float) * observed.sum()
    assert np.all(observed[expected == 0] == 0), "a draw landed where the probability is zero"
    big = expected >= 5
    obs = np.append(observed[big], observed[~big & (expected > 0)].sum())
    exp = np.append(expected[big], expected[~big & (expected > 0)].sum())
    if exp[-1] == 0:
        obs, exp = obs[:-1], exp[:-1]
    return stats.chisquare(obs, exp).pvalue


def test_random_k_number_chosen_follows_choice_one_or_k():
    # k = -1: k_obs uniform in 1..K-1, m = choice([1, k_obs]): P(m=1) = 1/2 + 1/(2(K-1)), else 1/(2(K-1)).
    sizes = (4, 5, 6, 7, 8)
    batch = draw(sizes, 40_000, k=-1, mode="reference")
    counts = np.bincount(batch.chosen.sum(1).numpy(), minlength=5)
    expected = np.array([0, 0.5 + 1 / 8, 1 / 8, 1 / 8, 1 / 8])
    assert counts[0] == 0
    assert chi_square_p(counts[1:], expected[1:]) > 1e-3


def test_identical_pairs_on_dsprites_k1_match_the_spec():
    # Spec section 1 step 5: for k = 1 the pair is identical with probability mean_i(1/n_i) = 11.75% on dSprites'
    # five factors (the reference's num_factors; the constant colour is not a factor there either).
    batch = draw(DSPRITES_SIZES, 200_000, k=1, mode="reference")
    rate = (batch.first == batch.second).double().mean().item()
    expected = np.mean(1 / np.asarray(DSPRITES_SIZES))
    assert expected == pytest.approx(0.1175)
    assert abs(rate - expected) < 4 * math.sqrt(expected * (1 - expected) / 200_000)
    # With a one-valued factor counted (as the reference would with colour as a factor): mean over six.
    with_colour = (1,) + DSPRITES_SIZES
    batch = draw(with_colour, 200_000, k=1, mode="reference", seed=1)
    rate = (batch.first == batch.second).double().mean().item()
    expected = np.mean(1 / np.asarray(with_colour))
    assert expected == pytest.approx(0.264583, abs=1e-6)
    assert abs(rate - expected) < 4 * math.sqrt(expected * (1 - expected) / 200_000)


def test_reference_number_of_differing_factors_includes_redraws():
    # k = 2: m = 1 or 2 (1/2 each), m distinct factors uniformly, each differs with probability 1 - 1/n_i.
    sizes = (2, 3, 4)
    batch = draw(sizes, 60_000, k=2, mode="reference")
    differ = (factors(batch.first, sizes) != factors(batch.second, sizes)).sum(1)
    expected = np.zeros(4)
    for m in (1, 2):
        subsets = list(itertools.combinations(range(3), m))
        for subset in subsets:
            for outcome in itertools.product((0, 1), repeat=m):
                p = 0.5 / len(subsets)
                for factor, changed in zip(subset, outcome):
                    p *= (1 - 1 / sizes[factor]) if changed else 1 / sizes[factor]
                expected[sum(outcome)] += p
    assert expected.sum() == pytest.approx(1)
    assert chi_square_p(np.bincount(differ, minlength=4), expected) > 1e-3
    # Each differing factor was chosen; a chosen factor may have kept its value.
    assert np.all(batch.chosen.numpy() >= (factors(batch.first, sizes) != factors(batch.second, sizes)))


@pytest.mark.parametrize("k", [1, 2, -1])
def test_paper_mode_changes_exactly_k_factors(k):
    sizes = (1, 3, 2, 5)  # factor 0 has one value and cannot change: K' = 3, k in 1..2
    batch = draw(sizes, 20_000, k=k, mode="paper")
    differ = factors(batch.first, sizes) != factors(batch.second, sizes)
    chosen = batch.chosen.numpy()
    assert np.array_equal(differ, chosen)
    assert not chosen[:, 0].any()
    if k == -1:
        counts = np.bincount(chosen.sum(1), minlength=3)
        assert counts[0] == 0 and chi_square_p(counts[1:], [0.5, 0.5]) > 1e-3
    else:
        assert np.all(chosen.sum(1) == k)


def test_paper_mode_new_values_are_uniform_over_the_other_values():
    sizes = (5, 4)
    batch = draw(sizes, 40_000, k=1, mode="paper")
    old, new = factors(batch.first, sizes), factors(batch.second, sizes)
    rows = batch.chosen[:, 0].numpy() & (old[:, 0] == 2)
    counts = np.bincount(new[rows, 0], minlength=5)
    assert counts[2] == 0
    assert chi_square_p(counts[[0, 1, 3, 4]], [0.25] * 4) > 1e-3


def test_label_is_the_last_drawn_factor():
    sizes = (2, 3, 4, 5)
    batch = draw(sizes, 30_000, k=3, mode="reference")
    chosen, label = batch.chosen.numpy(), batch.label.numpy()
    assert np.all(chosen[np.arange(len(label)), label])
    single = chosen.sum(1) == 1
    assert np.array_equal(label[single], chosen[single].argmax(1))
    # With three factors chosen the drawn order is uniform: the last one is each of them a third of the time.
    rows = np.all(chosen == [True, True, True, False], axis=1)
    counts = np.bincount(label[rows], minlength=4)
    assert counts[3] == 0 and chi_square_p(counts[:3], [1 / 3] * 3) > 1e-3


@pytest.mark.parametrize("mode", PAIR_MODES)
def test_same_generator_seed_same_pairs(mode):
    weights = torch.from_numpy(grid_weights((3, 4, 5), parse_correlations(
        [{"factors": ["a", "c"], "sigma": 0.3}], ["a", "b", "c"])))
    for w in (None, weights):
        one = draw((3, 4, 5), 256, seed=7, k=-1, mode=mode, weights=w)
        two = draw((3, 4, 5), 256, seed=7, k=-1, mode=mode, weights=w)
        other = draw((3, 4, 5), 256, seed=8, k=-1, mode=mode, weights=w)
        for a, b in zip(one, two):
            assert torch.equal(a, b)
        assert not torch.equal(one.second, other.second)
    # Nothing comes from a global generator.
    torch.manual_seed(0)
    np.random.seed(0)
    first = draw((3, 4, 5), 64, seed=3, k=1, mode=mode)
    torch.manual_seed(1)
    np.random.seed(1)
    assert torch.equal(first.second, draw((3, 4, 5), 64, seed=3, k=1, mode=mode).second)


def test_indices_agree_with_ground_truth_data():
    sizes = (3, 1, 4, 5)
    dataset = GroundTruthData("toy", "synthetic", ("a", "b", "c", "d"), sizes,
                              np.zeros((int(np.prod(sizes)), 2, 2, 1), np.uint8))
    for mode in PAIR_MODES:
        batch = sample_pairs(dataset.factor_sizes, dataset.factor_strides, 500, k=-1, mode=mode,
                             generator=torch.Generator().manual_seed(0))
        assert batch.first.dtype == batch.second.dtype == batch.label.dtype == torch.int64
        assert batch.chosen.shape == (500, 4) and batch.chosen.dtype == torch.bool
        old, new = dataset.factors_of(batch.first.numpy()), dataset.factors_of(batch.second.numpy())
        unchosen = ~batch.chosen.numpy()
        assert np.array_equal(old[unchosen], new[unchosen])
        assert np.array_equal(dataset.index_of(new), batch.second.numpy())
        assert np.array_equal(dataset.index_of(old), batch.first.numpy())


def expected_joint(sizes, weights, k, mode):
    """P(first, second) by brute force over the grid, the chosen sets and their candidate sets."""
    grid = np.array(list(itertools.product(*[range(n) for n in sizes])))
    num = len(grid)
    changeable = [i for i, n in enumerate(sizes) if mode == "reference" or n >= 2]
    ks = range(1, len(changeable)) if k == -1 else [k]
    set_probability = {}
    for k_obs in ks:
        ms = [(1, 0.5), (k_obs, 0.5)] if mode == "reference" else [(k_obs, 1.0)]
        for m, p_m in ms:
            subsets = list(itertools.combinations(changeable, m))
            for subset in subsets:
                set_probability[subset] = set_probability.get(subset, 0) + p_m / len(ks) / len(subsets)
    joint = np.zeros((num, num))
    for subset, p_set in set_probability.items():
        unchosen = [i for i in range(len(sizes)) if i not in subset]
        for x in range(num):
            same = np.all(grid[:, unchosen] == grid[x, unchosen], axis=1)
            if mode == "paper":
                same &= np.all(grid[:, list(subset)] != grid[x, list(subset)], axis=1)
            w = np.where(same, weights, 0)
            joint[x] += weights[x] * p_set * w / w.sum()
    return joint


@pytest.mark.parametrize("mode", PAIR_MODES)
@pytest.mark.parametrize("path", ["rejection", "enumeration"])
def test_weighted_pairs_on_the_spec_correlated_vectors(mode, path, monkeypatch):
    # Spec section 4: three factors of 3 values, pairs (0, 1) and (0, 2) at sigma 0.4; first ~ P, second among
    # the points equal to first on the unchosen factors with P ∝ w (first itself included in reference mode).
    sizes = (3, 3, 3)
    correlations = parse_correlations([{"factors": ["a", "b"], "sigma": 0.4}, {"factors": ["a", "c"], "sigma": 0.4}],
                                      ["a", "b", "c"])
    weights = grid_weights(sizes, correlations)
    assert weights[0] == pytest.approx(0.122243, abs=1e-6) and weights[8] == pytest.approx(0.000236, abs=1e-6)
    if path == "rejection":
        monkeypatch.setattr(pairs_module, "_DIRECT_LIMIT", 0)
    else:
        monkeypatch.setattr(pairs_module, "_REJECTION_ROUNDS", 0)
    batch = draw(sizes, 60_000, k=-1, mode=mode, weights=torch.from_numpy(weights))
    observed = np.zeros((27, 27))
    np.add.at(observed, (batch.first.numpy(), batch.second.numpy()), 1)
    expected = expected_joint(sizes, weights, -1, mode)
    assert expected.sum() == pytest.approx(1)
    assert chi_square_p(observed.reshape(-1), expected.reshape(-1)) > 1e-3
    # The first image alone follows the weights.
    assert chi_square_p(np.bincount(batch.first.numpy(), minlength=27), weights) > 1e-3


def test_weighted_pairs_on_dsprites_strong_correlation_keep_the_unchosen_factors():
    correlations = parse_correlations([{"factors": ["posX", "posY"], "sigma": 0.04},
                                       {"factors": ["scale", "orientation"], "sigma": 0.04}],
                                      ["shape", "scale", "orientation", "posX", "posY"])
    weights = torch.from_numpy(grid_weights(DSPRITES_SIZES, correlations))
    for mode in PAIR_MODES:
        batch = draw(DSPRITES_SIZES, 256, k=-1, mode=mode, weights=weights)
        old, new = factors(batch.first, DSPRITES_SIZES), factors(batch.second, DSPRITES_SIZES)
        chosen = batch.chosen.numpy()
        assert np.array_equal(old[~chosen], new[~chosen])
        if mode == "paper":
            assert np.all(old[chosen] != new[chosen])
        # Both images sit near the diagonal of posX~posY (strong correlation): |posX - posY| small.
        assert np.median(np.abs(new[:, 3] - new[:, 4])) <= 2


@pytest.mark.parametrize("kwargs, message", [
    ({"k": 0, "mode": "reference"}, "k = 0"),
    ({"k": 4, "mode": "reference"}, "1..3"),
    ({"k": True, "mode": "reference"}, "k = True"),
    ({"k": 1.5, "mode": "reference"}, "k = 1.5"),
    ({"k": 3, "mode": "paper"}, "1..2"),  # factor 0 has one value: K' = 3
    ({"k": 1, "mode": "both"}, "'reference', 'paper'"),
])
def test_bad_arguments_raise_one_line_user_errors(kwargs, message):
    with pytest.raises(UserError, match=message.replace(".", r"\.")) as error:
        draw((1, 2, 3, 4), 8, **kwargs)
    assert "\n" not in str(error.value)


def test_bad_grid_and_weights_raise_user_errors():
    generator = torch.Generator().manual_seed(0)
    with pytest.raises(UserError, match="row-major strides"):
        sample_pairs((2, 3), (1, 2), 4, k=1, mode="reference", generator=generator)
    with pytest.raises(UserError, match=r"shape \(6,\)"):
        sample_pairs((2, 3), (3, 1), 4, k=1, mode="reference", generator=generator, weights=torch.ones(5))
    with pytest.raises(UserError, match="non-negative"):
        sample_pairs((2, 3), (3, 1), 4, k=1, mode="reference", generator=generator, weights=-torch.ones(6))
    with pytest.raises(UserError, match="at least two factors"):
        sample_pairs((5,), (1,), 4, k=1, mode="reference", generator=generator)
    with pytest.raises(UserError, match="batch_size"):
        sample_pairs((2, 3), (3, 1), 0, k=1, mode="reference", generator=generator)
