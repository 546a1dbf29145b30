"""The no-change baseline: what a small grid gives, recorded once, compared by ``test_no_change.py``.

A refactoring must not move a number. This module runs one small grid that goes through every path
that produces numbers (a run trained alone, runs trained as a pack, a model with an auxiliary
optimiser, a scheduled loss, resuming, every metric with small samples) and returns what a run leaves
behind: its id, its ``metrics.json`` headline values, its ``train_log.csv`` losses and a hash of its
checkpoint's weights and optimiser states.

``python tests/no_change.py`` writes ``tests/data/no_change.json`` from the code as it stands: run it
only when a change is *meant* to change numbers, and say so in the commit.
"""

from __future__ import annotations

import csv
import hashlib
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

RECORD = Path(__file__).resolve().parent / "data" / "no_change.json"

GRID = {
    "benchmark": {"name": "no-change", "seeds": [0, 1], "device": "cpu", "cpus_per_run": 1, "pack": 2},
    "train": {"steps": 9, "batch_size": 8, "lr": 1e-3, "latent_dim": 4, "checkpoint_every": 4,
              "log_every": 3},
    "datasets": [{"name": "dsprites_tiny", "source": "synthetic"}],
    "models": [
        {"name": "ae"},
        {"name": "beta_vae", "beta": [1, 4]},
        {"name": "factor_vae", "gamma": 10},
        {"name": "annealed_vae", "c_max": 5, "iteration_threshold": 6},
        {"name": "beta_tc_vae", "beta": 2},
        {"name": "dip_vae_ii", "lambda_od": 2},
    ],
    "eval": {
        # The metrics the record was made with, named: metrics added since (downstream, irs, ...) come after
        # them with random streams of their own, so these numbers must not move.
        "metrics": ["beta_vae", "factor_vae", "mig", "dci", "sap", "modularity", "reconstruction", "unsupervised"],
        "preset": "quick", "representation": ["mean", "sampled"],
        "beta_vae": {"num_train": 20, "num_eval": 10, "batch_size": 8},
        "factor_vae": {"num_train": 20, "num_eval": 10, "batch_size": 8, "num_variance_estimate": 100},
        "mig": {"num_train": 200},
        "dci": {"num_train": 100, "num_test": 50},
        "sap": {"num_train": 200, "num_test": 100},
        "modularity": {"num_train": 200, "num_test": 100},
        "reconstruction": {"num_batches": 2, "batch_size": 16},
        "unsupervised": {"num_train": 200},
    },
}

#: Columns of train_log.csv that are timings, not numbers of the run.
TIMING_COLUMNS = ("images_per_s", "elapsed")


def _tensor_digest(value: Any, digest: "hashlib._Hash") -> None:
    """Feed a checkpoint's nested tensors (and plain values) into ``digest`` in a fixed order."""
    if isinstance(value, torch.Tensor):
        digest.update(str(value.dtype).encode() + str(tuple(value.shape)).encode())
        digest.update(value.detach().cpu().contiguous().numpy().tobytes())
    elif isinstance(value, dict):
        for key in sorted(value, key=str):
            digest.update(str(key).encode())
            _tensor_digest(value[key], digest)
    elif isinstance(value, (list, tuple)):
        for item in value:
            _tensor_digest(item, digest)
    else:
        digest.update(repr(value).encode())


def checkpoint_digests(path: Path) -> dict[str, str]:
    """sha256 of a checkpoint's weights, of its optimiser states and of its random-stream states."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    out = {}
    # The run's own random streams; not torch's global generator, which depends on the whole process.
    state["rng"] = {key: state["rng"][key] for key in ("sample", "noise")}
    for key in ("model_state", "optimizer_state", "auxiliary_optimizer_states", "rng"):
        digest = hashlib.sha256()
        _tensor_digest(state[key], digest)
        out[key] = digest.hexdigest()
    out["step"] = int(state["step"])
    return out


def train_log_losses(path: Path) -> list[dict[str, str]]:
    """``train_log.csv`` rows without the timing columns (values as written: exact text)."""
    with open(path, newline="") as handle:
        return [{k: v for k, v in row.items() if k not in TIMING_COLUMNS} for row in csv.DictReader(handle)]


#: The two ways a run trains: packed (two runs at once: ``pack = 2``) and alone (``pack = 1``, one seed).
VARIANTS = {"packed": {}, "alone": {"pack": 1, "seeds": [0]}}


def variant_grid(variant: str) -> dict[str, Any]:
    return {**GRID, "benchmark": {**GRID["benchmark"], **VARIANTS[variant]}}


def run_grid(out_dir: Path) -> dict[str, Any]:
    """Run the baseline grid both ways into ``out_dir`` and return what their runs left behind."""
    record: dict[str, Any] = {"torch": torch.__version__,
                              "cpu_capability": torch.backends.cpu.get_cpu_capability(), "runs": {}}
    for variant in VARIANTS:
        for run_id, entry in _run_variant(variant, out_dir / variant).items():
            record["runs"][f"{variant}/{run_id}"] = entry
    return record


def _run_variant(variant: str, out_dir: Path) -> dict[str, Any]:
    from disent_bench.executors import get_executor
    from disent_bench.grid import expand, parse_grid

    runs = expand(parse_grid(variant_grid(variant), "no-change.toml"))
    # Half the steps first, then resume: the record covers resuming as well as training.
    half = [type(run)(**{**run.to_json(), "train": {**run.train, "steps": 5}}) for run in runs]
    get_executor("local").run(half, out_dir, jobs=1, progress=False)
    for run in runs:
        (out_dir / "runs" / run.id / "DONE").unlink()
    outcomes = get_executor("local").run(runs, out_dir, jobs=1, progress=False)
    failed = [o for o in outcomes if o.status != "done"]
    if failed:
        raise RuntimeError(f"baseline runs did not finish: {failed}")
    record: dict[str, Any] = {}
    for run in runs:
        directory = out_dir / "runs" / run.id
        metrics = json.loads((directory / "metrics.json").read_text())
        headline = {rep: {k: v for k, v in scores.items() if not k.endswith("seconds")}
                    for rep, scores in metrics["results"].items()}
        record[run.id] = {
            "results": headline,
            "final_loss": metrics["train"]["final_loss"],
            "packed_with": metrics["provenance"]["packed_with"],
            "train_log": train_log_losses(directory / "train_log.csv"),
            "checkpoint": checkpoint_digests(directory / "checkpoint.pt"),
        }
    return record


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        import os

        os.environ["DISENT_BENCH_DATA"] = str(Path(tmp) / "data")
        record = run_grid(Path(tmp) / "results")
    RECORD.parent.mkdir(exist_ok=True)
    RECORD.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    print(f"wrote {RECORD}: {len(record['runs'])} runs", file=sys.stderr)


if __name__ == "__main__":
    main()
