"""``[eval] repeats = k``: every saved model scored with k evaluation seeds, without retraining.

One repeat is today's evaluation bit for bit (existing results stay done and unchanged); more repeats
re-score the finished runs from their checkpoints, and the report has one row per repeat in runs.csv
and the mean over repeats in its tables.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from disent_bench.executors import get_executor
from disent_bench.grid import expand, load_grid
from disent_bench.report import write_tables
from disent_bench.report.runs import load_runs, per_run
from disent_bench.run_store import run_status
from disent_bench.runner.execute import evaluation_seed
from grid_helpers import tiny_grid
from training_helpers import one_thread  # noqa: F401

EVAL = {"mig": {"num_train": 200}}


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A tiny grid (2 models x 2 seeds) trained and scored once."""
    root = tmp_path_factory.mktemp("repeats")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DISENT_BENCH_DATA", str(root / "data"))
        grid = tiny_grid(root / "once.toml", seeds=[0, 1], models=("ae", "vae"), metrics=("mig",), eval=EVAL)
        runs = expand(load_grid(grid))
        outcomes = get_executor("local").run(runs, root / "results", jobs=1, progress=False)
        assert [o.status for o in outcomes] == ["done"] * 4
        yield root, runs


def _digests(directory: Path) -> dict[str, str]:
    return {str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(directory.rglob("*")) if p.is_file() and p.name != ".lock"}


def test_evaluation_seeds():
    assert evaluation_seed(7, 0) == 7  # the first repeat is the evaluation a run always had
    seeds = {evaluation_seed(7, r) for r in range(1, 20)} | {evaluation_seed(8, r) for r in range(1, 20)}
    assert len(seeds) == 38 and all(0 <= s < 2**31 for s in seeds)
    assert evaluation_seed(7, 3) == evaluation_seed(7, 3)


def test_repeats_one_is_todays_grid(finished, tmp_path):
    root, runs = finished
    explicit = expand(load_grid(tiny_grid(tmp_path / "one.toml", seeds=[0, 1], models=("ae", "vae"),
                                          metrics=("mig",), eval={**EVAL, "repeats": 1})))
    assert [r.to_json() for r in explicit] == [r.to_json() for r in runs]
    before = _digests(root / "results" / "runs")
    csv_before = write_tables(load_runs(root / "results"), tmp_path / "before")["runs.csv"].read_bytes()
    outcomes = get_executor("local").run(explicit, root / "results", jobs=1, progress=False)
    assert [o.status for o in outcomes] == ["skipped"] * 4
    assert _digests(root / "results" / "runs") == before
    assert write_tables(load_runs(root / "results"), tmp_path / "after")["runs.csv"].read_bytes() == csv_before


def test_repeats_rescore_without_training(finished, tmp_path):
    root, runs = finished
    results = tmp_path / "results"
    import shutil

    shutil.copytree(root / "results", results)
    once = {run.id: json.loads((results / "runs" / run.id / "metrics.json").read_text()) for run in runs}
    checkpoints = {run.id: (results / "runs" / run.id / "checkpoint.pt").stat().st_mtime_ns for run in runs}
    three = expand(load_grid(tiny_grid(tmp_path / "three.toml", seeds=[0, 1], models=("ae", "vae"),
                                       metrics=("mig",), eval={**EVAL, "repeats": 3})))
    assert [r.id for r in three] == [r.id for r in runs]  # the evaluation is not part of a run's identity
    assert {run_status(run, results)[0] for run in three} == {"rescore"}
    outcomes = get_executor("local").run(three, results, jobs=1, progress=False)
    assert [o.status for o in outcomes] == ["done"] * 4 and all(o.steps_trained == 0 for o in outcomes)
    for run in three:
        directory = results / "runs" / run.id
        assert directory.joinpath("checkpoint.pt").stat().st_mtime_ns == checkpoints[run.id]  # not rewritten
        record = json.loads((directory / "metrics.json").read_text())
        assert [r["seed"] for r in record["repeats"]] == [evaluation_seed(run.seed, r) for r in range(3)]
        # Repeat 0 is the one evaluation the run had; the others draw afresh.
        first = {k: v for k, v in record["repeats"][0]["results"]["mean"].items() if not k.endswith("seconds")}
        assert first == {k: v for k, v in once[run.id]["results"]["mean"].items() if not k.endswith("seconds")}
        assert record["results"] == record["repeats"][0]["results"]
        migs = [r["results"]["mean"]["mig.score"] for r in record["repeats"]]
        assert len(set(migs)) > 1

    frame = load_runs(results)
    assert len(frame) == 12 and sorted(frame["eval_repeat"].unique()) == [0, 1, 2]
    assert (frame.groupby("run_id").size() == 3).all()
    collapsed = per_run(frame)
    assert len(collapsed) == 4 and "eval_repeat" not in collapsed.columns
    for run_id, part in frame.groupby("run_id"):
        assert collapsed.set_index("run_id").at[run_id, "mig.score"] == pytest.approx(part["mig.score"].mean())


def test_repeats_must_be_a_positive_integer(tmp_path):
    from disent_bench.errors import UserError

    for bad in (0, -1, 1.5, "3", True):
        with pytest.raises(UserError, match="eval.repeats"):
            load_grid(tiny_grid(tmp_path / "bad.toml", eval={"repeats": bad}))
