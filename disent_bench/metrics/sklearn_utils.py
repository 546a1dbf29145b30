"""Small helpers around scikit-learn estimators shared by several metrics."""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning


def quiet_fit(model, x: np.ndarray, y: np.ndarray):
    """``model.fit(x, y)`` without ConvergenceWarnings.

    The reference protocol uses estimator defaults (e.g. ``max_iter``), under which the fits on
    poorly-scaled codes often stop at the iteration limit; that is part of the estimator, and a warning per
    (code, factor) pair would only bury the output.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(x, y)
