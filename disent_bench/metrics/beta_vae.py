"""The BetaVAE disentanglement score.

Higgins et al. 2017, "beta-VAE: Learning Basic Visual Concepts with a Constrained Variational Framework"
(ICLR), in the form of Locatello et al. 2019 (google-research/disentanglement_lib,
``evaluation/metrics/beta_vae.py``):

One point: pick a factor ``k`` uniformly; draw two batches of ``batch_size`` factor rows independently;
copy column ``k`` of the first batch into the second (equal pairwise, not constant over the batch);
feature = mean over the batch of ``|z1 - z2|``; label = ``k``. A ``LogisticRegression`` with the
reference's scikit-learn 0.20 defaults (no scaling) is fitted on ``num_train`` points and scored on
``num_eval`` fresh points. Those defaults are pinned (:func:`~disent_bench.metrics.sklearn_utils.logistic_regression`):
liblinear, one-vs-rest over factors, L2 penalty, C=1.0, tol=1e-4, max_iter=100, fit_intercept=True,
intercept_scaling=1; today's default (lbfgs, multinomial) would give other numbers.

Here all points are drawn at once and their features computed from the shared representation cache.
"""

from __future__ import annotations

import numpy as np

from disent_bench.data.base import GroundTruthData
from disent_bench.metrics.cache import CodeView
from disent_bench.metrics.sklearn_utils import logistic_regression, quiet_fit

NAME = "beta_vae"
NEEDS: tuple[str, ...] = ()  # compute() reads codes and factors only


def draw_pairs(dataset: GroundTruthData, num_points: int, batch_size: int,
               rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels ``(num_points,)`` and the two index batches ``(num_points, batch_size)`` of each point."""
    labels = rng.integers(0, dataset.num_factors, size=num_points)
    shape = (num_points, batch_size, dataset.num_factors)
    factors1 = dataset.sample_factors(num_points * batch_size, rng).reshape(shape)
    factors2 = dataset.sample_factors(num_points * batch_size, rng).reshape(shape)
    points = np.arange(num_points)
    factors2[points, :, labels] = factors1[points, :, labels]
    return labels, dataset.index_of(factors1), dataset.index_of(factors2)


def draw(dataset: GroundTruthData, settings: dict, rng: np.random.Generator) -> dict[str, np.ndarray]:
    train_labels, train1, train2 = draw_pairs(dataset, settings["num_train"], settings["batch_size"], rng)
    eval_labels, eval1, eval2 = draw_pairs(dataset, settings["num_eval"], settings["batch_size"], rng)
    return {"train_labels": train_labels, "train1": train1, "train2": train2,
            "eval_labels": eval_labels, "eval1": eval1, "eval2": eval2}


def features(view: CodeView, first: np.ndarray, second: np.ndarray, chunk: int = 256) -> np.ndarray:
    """Mean absolute code difference of each pair of batches: ``(num_points, D)``."""
    out = []
    for start in range(0, first.shape[0], chunk):  # chunks bound the memory of the gathered codes
        z1 = view.codes(first[start:start + chunk])
        z2 = view.codes(second[start:start + chunk])
        out.append(np.abs(z1 - z2).mean(axis=1))
    return np.concatenate(out)


def score_features(train_x: np.ndarray, train_y: np.ndarray, eval_x: np.ndarray, eval_y: np.ndarray,
                   random_state: int) -> dict[str, float]:
    """Fit the reference classifier on the training features; accuracies on train and eval."""
    if np.unique(train_y).size < 2:
        # LogisticRegression needs two classes; with one factor every prediction is that factor.
        predict = lambda x: np.full(x.shape[0], train_y[0])  # noqa: E731
    else:
        model = logistic_regression(random_state)
        quiet_fit(model, train_x, train_y)
        predict = model.predict
    return {"train_accuracy": float(np.mean(predict(train_x) == train_y)),
            "eval_accuracy": float(np.mean(predict(eval_x) == eval_y))}


def compute(dataset: GroundTruthData, draws: dict[str, np.ndarray], view: CodeView, settings: dict,
            random_state: int) -> dict[str, float]:
    train_x = features(view, draws["train1"], draws["train2"])
    eval_x = features(view, draws["eval1"], draws["eval2"])
    return score_features(train_x, draws["train_labels"], eval_x, draws["eval_labels"], random_state)
