"""``train_log.csv``: one row every ``log_every`` steps with the mean of each loss term over those steps.

Columns: ``step, loss, reconstruction, kl``, then the model's own terms in the order its loss dict gives
them (e.g. ``tc``; FactorVAE's ``discriminator_loss`` and ``discriminator_accuracy``; AnnealedVAE's
``capacity``; DIP-VAE's ``dip_penalty``), then ``images_per_s, elapsed``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence

import torch

__all__ = ["LOG_NAME", "LOG_COLUMNS", "BASE_TERMS", "log_terms", "log_columns", "csv_text"]

LOG_NAME = "train_log.csv"
BASE_TERMS = ("reconstruction", "kl")
#: The columns every model's log has (more may follow ``kl``, see :func:`log_columns`).
LOG_COLUMNS = ("step", "loss", *BASE_TERMS, "images_per_s", "elapsed")


def log_terms(losses: Mapping[str, torch.Tensor]) -> tuple[str, ...]:
    """The loss dict's entries to log, in column order: reconstruction, kl, then the model's own scalars."""
    extra = [key for key, value in losses.items()
             if key not in ("total", *BASE_TERMS) and isinstance(value, torch.Tensor) and value.dim() == 0]
    return (*BASE_TERMS, *extra)


def log_columns(terms: Sequence[str]) -> tuple[str, ...]:
    return ("step", "loss", *terms, "images_per_s", "elapsed")


def csv_text(rows: Sequence[Mapping[str, float]], terms: Sequence[str] = BASE_TERMS, header: bool = True) -> str:
    columns = log_columns(terms)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    if header:
        writer.writerow(columns)
    for row in rows:
        writer.writerow([int(row["step"])] + [repr(float(row[k])) for k in columns[1:]])
    return buffer.getvalue()
