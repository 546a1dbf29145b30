"""DCI's boosted trees (disent_bench.metrics.dci.boosting) against scikit-learn's GradientBoostingClassifier.

The re-implementation must give the reference estimator's numbers: the same importances (to 1e-9) and the
same predictions on every case here, including those where floating-point ties decide the trees
(repeated values, duplicated codes, constant codes, integer codes), two classes (one tree per stage) and
many classes.
"""

from __future__ import annotations

import numpy as np
import pytest
import sklearn
from sklearn.utils.fixes import parse_version

from disent_bench.metrics import dci
from disent_bench.metrics.dci import boosting
from disent_bench.metrics.sklearn_utils import gradient_boosting

# The tree builder followed here is scikit-learn 1.9's; older versions break some ties in another order.
pytestmark = pytest.mark.skipif(parse_version(sklearn.__version__) < parse_version("1.9"),
                                reason="exactness is pinned against scikit-learn >= 1.9's tree builder")


def _case(name: str, rng: np.random.Generator):
    n = 300
    if name == "continuous, 4 classes":
        y = rng.integers(0, 4, n)
        x = rng.normal(size=(n, 5))
        x[:, 0] += y
    elif name == "two classes":
        y = rng.integers(0, 2, n)
        x = rng.normal(size=(n, 4)) + 0.7 * y[:, None]
    elif name == "twelve classes":
        y = rng.integers(0, 12, n)
        x = rng.normal(size=(n, 3))
        x[:, 1] += y / 4
    elif name == "integer codes (many ties)":
        x = rng.integers(0, 5, size=(n, 4)).astype(float)
        y = (x[:, 0] + rng.integers(0, 2, n)) % 3
    elif name == "duplicated codes":
        base = rng.integers(0, 6, size=(n, 2)).astype(float)
        x = np.concatenate([base, base, rng.normal(size=(n, 1))], axis=1)
        y = (base[:, 0] // 2).astype(int)
    elif name == "constant and repeated codes":
        y = rng.integers(0, 5, n)
        x = rng.normal(size=(n, 4))
        x[:, 1] = 0.5                                  # constant
        x[:, 2] = np.round(x[:, 2] + y, 1)             # few distinct values
        x[:, 3] = np.float32(1e-8) * rng.integers(0, 3, n)  # closer than the splitter's 1e-7 threshold
    elif name == "float32 codes with collisions":
        y = rng.integers(0, 3, n)
        x = (rng.integers(0, 40, size=(n, 4)) / 7.0).astype(np.float32)  # float32 rounding, repeats
        x[:, 0] += y
    elif name == "string labels, imbalanced":
        y = np.array(["a", "b", "c"])[np.minimum(rng.geometric(0.5, n) - 1, 2)]
        x = rng.normal(size=(n, 3))
        x[:, 2] += (y == "c")
    else:
        raise KeyError(name)
    test_x = np.concatenate([x[:50] + 0.01, rng.normal(size=(50, x.shape[1]))]).astype(x.dtype)
    return x, y, test_x


CASES = ["continuous, 4 classes", "two classes", "twelve classes", "integer codes (many ties)", "duplicated codes",
         "constant and repeated codes", "float32 codes with collisions", "string labels, imbalanced"]


@pytest.mark.parametrize("name", CASES)
def test_same_importances_and_predictions_as_sklearn(name):
    x, y, test_x = _case(name, np.random.default_rng(CASES.index(name)))
    seed = 7 + CASES.index(name)
    reference = gradient_boosting(seed).fit(x, y)
    model = boosting.fit(x, y, seed)
    np.testing.assert_allclose(model.feature_importances, reference.feature_importances_, rtol=0, atol=1e-9)
    np.testing.assert_array_equal(model.decision(model.train_raw), reference.predict(x))
    np.testing.assert_array_equal(model.predict(test_x), reference.predict(test_x))
    # The trees themselves: same splits and leaf values, stage by stage.
    for stage in range(reference.estimators_.shape[0]):
        for k in range(reference.estimators_.shape[1]):
            tree = reference.estimators_[stage, k].tree_
            count = tree.node_count
            assert model.node_count[stage, k] == count
            np.testing.assert_array_equal(model.left[stage, k, :count], tree.children_left)
            split = tree.children_left != -1
            np.testing.assert_array_equal(model.feature[stage, k, :count][split], tree.feature[split])
            np.testing.assert_array_equal(model.threshold[stage, k, :count][split], tree.threshold[split])
            np.testing.assert_array_equal(model.value[stage, k, :count][~split], tree.value[~split, 0, 0])


def test_results_do_not_depend_on_thread_count():
    x, y, test_x = _case("twelve classes", np.random.default_rng(3))
    one = boosting.fit(x, y, 1, n_threads=1)
    two = boosting.fit(x, y, 1, n_threads=3)
    np.testing.assert_array_equal(one.feature_importances, two.feature_importances)
    np.testing.assert_array_equal(one.train_raw, two.train_raw)


def test_dci_importance_matrix_equals_sklearn_path_with_a_single_class_factor():
    rng = np.random.default_rng(5)
    factors = np.column_stack([np.zeros(240, int), rng.integers(0, 3, 240), rng.integers(0, 2, 240)])
    codes = np.column_stack([factors[:, 1] + rng.normal(0, 0.3, 240), rng.normal(size=240),
                             factors[:, 2] * 2.0 + rng.normal(0, 0.5, 240)])
    train, test = slice(0, 160), slice(160, 240)
    args = (codes[train], factors[train], codes[test], factors[test], 11)
    exact = dci.importance_gbt(*args)
    reference = dci.importance_gbt(*args, estimator="sklearn")
    np.testing.assert_allclose(exact[0], reference[0], rtol=0, atol=1e-9)
    assert exact[1:] == reference[1:]
    assert np.all(exact[0][:, 0] == 0.0)  # the single-class factor uses no code
    with pytest.raises(ValueError, match="unknown DCI estimator"):
        dci.importance_gbt(*args, estimator="fast")


def test_rejects_bad_input():
    with pytest.raises(ValueError, match="two classes"):
        boosting.fit(np.ones((5, 2)), np.zeros(5), 0)
    with pytest.raises(ValueError, match="finite"):
        boosting.fit(np.array([[np.nan], [1.0]]), np.array([0, 1]), 0)
