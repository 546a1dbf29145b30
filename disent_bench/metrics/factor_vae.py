"""The FactorVAE disentanglement score.

Kim & Mnih 2018, "Disentangling by Factorising" (ICML), in the form of Locatello et al. 2019
(google-research/disentanglement_lib, ``evaluation/metrics/factor_vae.py``):

1. Global scale: the variance (ddof=1) of each code dimension over ``num_variance_estimate`` random images.
2. Active dimensions: ``sqrt(var_g) >= prune_threshold``; with none active the score is 0.
3. One vote: pick factor ``k``; draw ``batch_size`` factor rows and set column ``k`` of all of them to the
   first row's value; ``d = argmin`` over the ACTIVE dimensions of ``var_l / var_g`` (ddof=1);
   ``votes[k, d] += 1``.
4. Majority-vote classifier: dimension ``d`` predicts ``argmax_k votes[k, d]`` (ties -> lowest ``k``),
   learned on ``num_train`` votes; the score is the fraction of ``num_eval`` fresh votes it gets right.

All votes are drawn and computed at once from the shared representation cache, and counted with
``np.add.at``.

``num_active_dims`` here is the number of active dimensions. (The reference reports ``len(active_dims)``
of a boolean mask, i.e. the code size, whenever at least one dimension is active -- a slip we do not copy.)
"""

from __future__ import annotations

import numpy as np

from disent_bench.data.base import GroundTruthData
from disent_bench.metrics.cache import CodeView

NAME = "factor_vae"
NEEDS: tuple[str, ...] = ()  # compute() reads codes and factors only


def draw_votes(dataset: GroundTruthData, num_points: int, batch_size: int,
               rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Factors ``(num_points,)`` held fixed and image indices ``(num_points, batch_size)`` of each vote."""
    labels = rng.integers(0, dataset.num_factors, size=num_points)
    factors = dataset.sample_factors(num_points * batch_size, rng).reshape(num_points, batch_size,
                                                                          dataset.num_factors)
    points = np.arange(num_points)
    factors[points, :, labels] = factors[points, 0, labels][:, None]
    return labels, dataset.index_of(factors)


def draw(dataset: GroundTruthData, settings: dict, rng: np.random.Generator) -> dict[str, np.ndarray]:
    variance = dataset.sample_indices(settings["num_variance_estimate"], rng)
    train_labels, train = draw_votes(dataset, settings["num_train"], settings["batch_size"], rng)
    eval_labels, evals = draw_votes(dataset, settings["num_eval"], settings["batch_size"], rng)
    return {"variance": variance, "train_labels": train_labels, "train": train,
            "eval_labels": eval_labels, "eval": evals}


def vote_dims(view: CodeView, batches: np.ndarray, global_variances: np.ndarray, active: np.ndarray,
              chunk: int = 256) -> np.ndarray:
    """The voted code dimension of each batch: argmin over active dims of local / global variance."""
    active_idx = np.flatnonzero(active)
    out = []
    for start in range(0, batches.shape[0], chunk):
        codes = view.codes(batches[start:start + chunk])  # (chunk, batch_size, D)
        local = codes.var(axis=1, ddof=1)
        ratio = local[:, active_idx] / global_variances[active_idx]
        out.append(active_idx[np.argmin(ratio, axis=1)])  # first minimum, like np.argmin in the reference
    return np.concatenate(out)


def vote_matrix(labels: np.ndarray, dims: np.ndarray, num_factors: int, num_dims: int) -> np.ndarray:
    votes = np.zeros((num_factors, num_dims), dtype=np.int64)
    np.add.at(votes, (labels, dims), 1)
    return votes


def score_votes(train_votes: np.ndarray, eval_votes: np.ndarray) -> dict[str, float]:
    """Accuracy of the majority-vote classifier learned on ``train_votes`` ``(K, D)``."""
    classifier = np.argmax(train_votes, axis=0)  # ties -> lowest factor index
    columns = np.arange(train_votes.shape[1])
    return {"train_accuracy": float(train_votes[classifier, columns].sum() / train_votes.sum()),
            "eval_accuracy": float(eval_votes[classifier, columns].sum() / eval_votes.sum())}


def compute(dataset: GroundTruthData, draws: dict[str, np.ndarray], view: CodeView, settings: dict,
            random_state: int) -> dict[str, float]:
    global_variances = view.codes(draws["variance"]).var(axis=0, ddof=1)
    active = np.sqrt(global_variances) >= settings["prune_threshold"]
    if not active.any():
        return {"train_accuracy": 0.0, "eval_accuracy": 0.0, "num_active_dims": 0.0}
    num_dims = global_variances.shape[0]
    train = vote_matrix(draws["train_labels"], vote_dims(view, draws["train"], global_variances, active),
                        dataset.num_factors, num_dims)
    evals = vote_matrix(draws["eval_labels"], vote_dims(view, draws["eval"], global_variances, active),
                        dataset.num_factors, num_dims)
    return {**score_votes(train, evals), "num_active_dims": float(active.sum())}
