"""The grid runner: results layout, skip/resume, kill -9, concurrent runners, failures recorded."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from disent_bench.executors import get_executor
from disent_bench.grid import RunSpec, expand, load_grid
from disent_bench.models import AE
from disent_bench.run_store import run_status
from disent_bench.runner import execute_run
from grid_helpers import scores, tiny_grid
from training_helpers import one_thread  # noqa: F401 (autouse: one torch thread in this process)

TESTS = Path(__file__).resolve().parent
CLI = [sys.executable, "-c", "from disent_bench.cli import main; main()"]


class ExplodingModel(AE):
    """A user model (named "test_runner:ExplodingModel" in a grid) whose loss is NaN: training diverges."""

    def loss(self, x, *, generator=None):
        losses = super().loss(x, generator=generator)
        nan = losses["total"] * float("nan")
        return {"total": nan, "reconstruction": nan, "kl": losses["kl"]}


def grid_file(tmp_path: Path, *, checkpoint_every=2, **overrides) -> Path:
    """The tiny grid of these tests: ``tiny_grid`` (seed 0, 6 steps, an AE and a VAE) with ``overrides``."""
    return tiny_grid(tmp_path, train={"lr": 1e-3, "checkpoint_every": checkpoint_every, "log_every": 5},
                     eval={"mig": {"num_train": 200}}, **overrides)


@pytest.fixture(scope="module")
def data_home(tmp_path_factory):
    """One data home for the module: dsprites_tiny renders once."""
    return tmp_path_factory.mktemp("data")


@pytest.fixture
def env(data_home, monkeypatch):
    monkeypatch.setenv("DISENT_BENCH_DATA", str(data_home))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # one thread in subprocesses too: on a shared machine more only contend
    # Subprocesses import user models from this directory, as a user's PYTHONPATH would.
    pythonpath = os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    monkeypatch.setenv("PYTHONPATH", pythonpath)
    return {**os.environ}


def approx_scores(path: Path) -> dict:
    return {rep: {k: pytest.approx(v, rel=1e-12, abs=1e-15) for k, v in values.items()}
            for rep, values in scores(path).items()}


def test_runs_write_results_then_skip_and_resume(tmp_path, env):
    grid = load_grid(grid_file(tmp_path))
    runs = expand(grid)
    out = tmp_path / "results"
    outcomes = get_executor("local").run(runs, out, progress=False)
    assert [o.status for o in outcomes] == ["done", "done"]
    for run in runs:
        directory = out / "runs" / run.id
        for name in ("config.json", "checkpoint.pt", "train_log.csv", "metrics.json", "DONE"):
            assert (directory / name).is_file(), name
        assert not (directory / "error.json").exists()
        record = json.loads((directory / "metrics.json").read_text())
        assert RunSpec.from_json(json.loads((directory / "config.json").read_text())) == run
        prov = record["provenance"]
        for key in ("disent_bench", "python", "torch", "numpy", "scikit_learn", "device", "date"):
            assert prov[key], key
        assert prov["dataset"]["name"] == "dsprites_tiny" and prov["dataset"]["source"] == "synthetic"
        assert len(prov["dataset"]["checksum"]) == 64
        assert record["train"]["steps"] == 6 and record["train"]["seconds_total"] > 0
        mean = record["results"]["mean"]
        assert 0.0 <= mean["mig.score"] <= 1.0 and mean["reconstruction.bce"] > 0
        assert run_status(run, out) == ("done", 6)

    # A second invocation skips finished runs and leaves their files alone.
    before = {run.id: (out / "runs" / run.id / "metrics.json").stat().st_mtime_ns for run in runs}
    again = get_executor("local").run(runs, out, progress=False)
    assert [o.status for o in again] == ["skipped", "skipped"]
    assert before == {run.id: (out / "runs" / run.id / "metrics.json").stat().st_mtime_ns for run in runs}

    # A run killed after training (no DONE) is scored again from its checkpoint, with the same numbers.
    vae = runs[1]
    expected = scores(out / "runs" / vae.id / "metrics.json")
    (out / "runs" / vae.id / "DONE").unlink()
    assert run_status(vae, out) == ("partial", 6)
    outcome = execute_run(vae.to_json(), out)  # JSON in, as other executors ship it
    assert outcome.status == "done" and outcome.steps_trained == 0
    assert scores(out / "runs" / vae.id / "metrics.json") == expected

    # Changing only the evaluation re-scores the saved model without training it again.
    changed = RunSpec.from_json({**vae.to_json(), "eval": {**vae.eval, "metrics": ["mig"]}})
    assert changed.id == vae.id and run_status(changed, out)[0] == "rescore"
    outcome = execute_run(changed, out)
    assert outcome.status == "done" and outcome.steps_trained == 0
    assert set(scores(out / "runs" / vae.id / "metrics.json")["mean"]) >= {"mig.score"}
    assert "reconstruction.bce" not in scores(out / "runs" / vae.id / "metrics.json")["mean"]


def test_cli_dry_run_and_only(tmp_path, env):
    path = grid_file(tmp_path, seeds=[0, 1])
    out = tmp_path / "res"
    proc = subprocess.run([*CLI, "run", "--grid", str(path), "--out", str(out), "--only", "*-ae-s1-*",
                           "--no-progress"], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    done = [p.parent.name for p in out.glob("runs/*/DONE")]
    assert len(done) == 1 and "-ae-s1-" in done[0]
    proc = subprocess.run([*CLI, "run", "--grid", str(path), "--out", str(out), "--dry-run"],
                          capture_output=True, text=True, env={**env, "COLUMNS": "200"})
    assert proc.returncode == 0, proc.stderr
    assert "3 pending" in proc.stdout and "1 done" in proc.stdout and "estimated time left" in proc.stdout
    assert len(list(out.glob("runs/*/DONE"))) == 1  # a dry run runs nothing
    proc = subprocess.run([*CLI, "run", "--grid", str(path), "--out", str(out), "--only", "nomatch*"],
                          capture_output=True, text=True, env=env)
    assert proc.returncode == 2 and "--only" in proc.stderr


def test_kill_9_then_resume_gives_the_same_metrics(tmp_path, env):
    steps = 100
    path = grid_file(tmp_path, steps=steps, checkpoint_every=10, models=("vae",))
    run = expand(load_grid(path))[0]
    killed = tmp_path / "killed"
    checkpoint = killed / "runs" / run.id / "checkpoint.pt"
    proc = subprocess.Popen([*CLI, "run", "--grid", str(path), "--out", str(killed), "--no-progress"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while not checkpoint.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.01)
        assert checkpoint.exists(), "no checkpoint appeared"
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    status, step = run_status(run, killed)
    assert status == "partial" and 0 < step < steps, (status, step)
    assert not (killed / "runs" / run.id / "DONE").exists()

    resumed = subprocess.run([*CLI, "run", "--grid", str(path), "--out", str(killed), "--no-progress"],
                             env=env, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    record = json.loads((killed / "runs" / run.id / "metrics.json").read_text())
    assert record["train"]["resumed_from_step"] == step

    # The same run without interruption, in this process.
    clean = tmp_path / "clean"
    assert execute_run(run, clean).status == "done"
    # Weights are bit-identical; scores may differ in the last bit (numpy's summation order can depend on
    # memory alignment, which differs between processes).
    assert scores(killed / "runs" / run.id / "metrics.json") == approx_scores(clean / "runs" / run.id / "metrics.json")
    killed_state = torch.load(checkpoint, weights_only=True)["model_state"]
    clean_state = torch.load(clean / "runs" / run.id / "checkpoint.pt", weights_only=True)["model_state"]
    assert all(torch.equal(killed_state[k], clean_state[k]) for k in clean_state)


def test_two_concurrent_runners_do_each_run_once(tmp_path, env):
    path = grid_file(tmp_path, seeds=[0, 1], steps=20, checkpoint_every=10)
    runs = expand(load_grid(path))
    out = tmp_path / "shared"
    commands = [[*CLI, "run", "--grid", str(path), "--out", str(out), "--no-progress"],
                [*CLI, "run", "--grid", str(path), "--out", str(out), "--no-progress", "--jobs", "2"]]
    procs = [subprocess.Popen(c, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for c in commands]
    results = [p.communicate(timeout=300) for p in procs]
    for proc, (_, err) in zip(procs, results):
        assert proc.returncode == 0, err
    logs = "\n".join(err for _, err in results)
    for run in runs:
        # Trained and scored by exactly one of the two; the other skipped it or found it claimed then done.
        assert sum(f"{run.id}: done in" in err for _, err in results) == 1, logs
        directory = out / "runs" / run.id
        assert (directory / "DONE").is_file()
        json.loads((directory / "metrics.json").read_text())
        log_steps = [line.split(",")[0] for line in (directory / "train_log.csv").read_text().splitlines()[1:]]
        assert log_steps == ["5", "10", "15", "20"]  # one uninterrupted training
    assert not list(out.rglob("*.tmp"))  # no half-written files left behind


def test_failed_run_is_recorded_and_others_finish(tmp_path, env):
    path = grid_file(tmp_path, models=("test_runner:ExplodingModel", "ae"))
    out = tmp_path / "res"
    proc = subprocess.run([*CLI, "run", "--grid", str(path), "--out", str(out), "--no-progress"],
                          capture_output=True, text=True, env=env)
    assert proc.returncode == 1, proc.stderr
    runs = expand(load_grid(path))
    bad, good = runs
    assert "ExplodingModel" in bad.id
    error = json.loads((out / "runs" / bad.id / "error.json").read_text())
    assert error["error_type"] == "FloatingPointError" and "not finite" in error["error"]
    assert "Traceback" in error["traceback"]
    assert not (out / "runs" / bad.id / "DONE").exists()
    assert (out / "runs" / good.id / "DONE").is_file()
    assert f"failed: {bad.id}" in proc.stderr and "1 failed" in proc.stderr
    assert run_status(bad, out)[0] == "failed"
