"""Huge grids in linear time (issue 20, part 3): expansion, ids, validation and ``run --dry-run`` of a grid
of millions of runs cost a fixed amount per run, and its summary a fixed number of lines.

Checked structurally rather than by timing (the machine is shared): validation works per setting, not per
seed; planning touches no file of a run without a folder (one listing of ``runs/`` says which have one);
the summary holds no run; the dry run prints a bounded summary unless ``--list`` asks for every run.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import weakref
from pathlib import Path

import pytest

from disent_bench import grid as grid_module
from disent_bench.errors import UserError
from disent_bench.grid import expand, iter_runs, load_grid, settings
from disent_bench.identity import RunIds, run_id
from disent_bench.runner import planning
from grid_helpers import tiny_grid

CLI = [sys.executable, "-c", "from disent_bench.cli import main; main()"]


def _fake_done(out: Path, run) -> None:
    """A finished run's folder as the run store reads it (DONE, metrics.json with its eval and speeds)."""
    folder = out / "runs" / run.id
    folder.mkdir(parents=True)
    record = {"results": {"mean": {"mig.score": 0.5}},
              "config": {"eval": run.eval, "model": {"name": run.model["name"]}, "train": {"batch_size": 8}},
              "provenance": {"device": "cpu"},
              "train": {"steps_this_attempt": 6, "seconds_this_attempt": 0.5},
              "eval": {"seconds": {"mig": 2.0}}}
    (folder / "metrics.json").write_text(json.dumps(record))
    (folder / "DONE").write_text("")


def test_the_ids_of_one_setting_are_run_id_seed_by_seed():
    dataset = {"name": "dsprites", "source": "auto", "correlations": [{"factors": ["posX", "posY"], "sigma": 0.2}]}
    model = {"name": "beta_vae", "latent_dim": 10, "params": {"beta": 4.0, "k": "random"}}
    train = {"steps": 10, "batch_size": 64, "lr": 1e-4, "betas": [0.9, 0.999], "eps": 1e-8, "log_every": 5}
    ids = RunIds(dataset, model, train, {"lr": 1e-4}, {"log_every": 100})
    # Seeds of every spelling: the fast path (an int) and the general one give run_id's text.
    for seed in (0, 1, 12, 1999999, True, 2.0):
        assert ids(seed) == run_id(dataset, model, train, seed, {"lr": 1e-4}, {"log_every": 100})
    assert ids(3).startswith(ids.prefix + "-s3-")


def test_iter_runs_is_expand_one_at_a_time(tmp_path):
    grid = load_grid(tiny_grid(tmp_path, seeds=3, models=("ae", {"name": "beta_vae", "beta": [1, 4]})))
    runs = expand(grid)
    assert len(runs) == 9
    assert [run.to_json() for run in iter_runs(grid)] == [run.to_json() for run in runs]
    assert len(list(settings(grid))) == 3


def test_validation_checks_each_setting_once_not_each_seed(tmp_path, monkeypatch):
    built = []

    class Counting(grid_module.TrainConfig):
        def __post_init__(self):
            built.append(self.seed)
            super().__post_init__()

    monkeypatch.setattr(grid_module, "TrainConfig", Counting)
    grid = load_grid(tiny_grid(tmp_path, seeds=1_000_000, models=("ae", "vae")))
    assert len(grid.seeds) == 1_000_000
    assert built == [0, 0]  # one check per setting (2 models), whatever the number of seeds


def test_settings_with_one_readable_name_still_give_distinct_runs_or_one_error(tmp_path):
    # Two vae entries differing only in a single (unswept) lr share their readable name: distinct runs.
    path = tiny_grid(tmp_path, seeds=50, models=({"name": "vae", "lr": 1e-3}, {"name": "vae", "lr": 1e-4}))
    runs = expand(load_grid(path))
    assert len({run.id for run in runs}) == 100
    # The same entry twice is one run twice: refused, naming it.
    path = tiny_grid(tmp_path, seeds=50, models=({"name": "vae", "lr": 1e-3}, {"name": "vae", "lr": 1e-3}))
    with pytest.raises(UserError, match=r"two entries give the same run vae|same run dsprites_tiny-vae-s0-"):
        load_grid(path)


def test_planning_reads_no_file_of_a_run_without_a_folder(tmp_path, monkeypatch):
    grid = load_grid(tiny_grid(tmp_path, seeds=100_000, models=("vae",)))
    first, second = (run for run, _ in zip(iter_runs(grid), range(2)))
    out = tmp_path / "res"
    _fake_done(out, first)
    (out / "runs" / second.id).mkdir()          # claimed, nothing written yet: pending, read from its folder
    (out / "runs" / "another-grid-s0-00000000").mkdir()  # a folder of no run of this grid
    (out / "runs" / "stray.txt").write_text("")

    touched: list[str] = []
    for module, name in ((os, "stat"), (os, "open"), (io, "open")):
        real = getattr(module, name)

        def counted(path, *args, _real=real, **kwargs):
            touched.append(str(path))
            return _real(path, *args, **kwargs)

        monkeypatch.setattr(module, name, counted)
    statuses: list[str] = []
    real_status = planning.run_status
    monkeypatch.setattr(planning, "run_status",
                        lambda run, out_dir: statuses.append(run.id) or real_status(run, out_dir))

    summary = planning.summarize(iter_runs(grid), out, measure=True)

    assert statuses == [first.id, second.id]  # only the runs the listing shows
    # Files read: those of the listed folders (a finished run of any grid there gives its model's speed).
    listed = {first.id, second.id, "another-grid-s0-00000000"}
    assert touched and all(Path(path).relative_to(out / "runs").parts[0] in listed for path in touched)
    assert summary.runs == 100_000
    assert summary.by_status == {"done": 1, "pending": 99_999}
    assert summary.by_model == {"vae": {"done": 1, "pending": 99_999}}
    assert summary.by_dataset == {"dsprites_tiny": {"done": 1, "pending": 99_999}}
    # The speed of the finished run (6 steps x 8 images in 0.5 s) and its evaluation time estimate the rest.
    assert summary.speeds == {"vae": (96.0, "stored")}
    assert summary.seconds == pytest.approx(99_999 * (6 * 8 / 96 + 2.0))
    assert not summary.unknown_eval


def test_the_summary_holds_no_run(tmp_path):
    grid = load_grid(tiny_grid(tmp_path, seeds=1000, models=("vae",)))
    alive: list[weakref.ref] = []

    def watched():
        for run in iter_runs(grid):
            alive.append(weakref.ref(run))
            yield run

    summary = planning.summarize(watched(), tmp_path / "res", measure=False)
    assert summary.runs == len(alive) == 1000
    assert sum(ref() is not None for ref in alive) == 0


@pytest.fixture
def env(tmp_path):
    return {**os.environ, "DISENT_BENCH_DATA": str(tmp_path / "data"), "COLUMNS": "200"}


def test_dry_run_of_100000_runs_prints_a_summary(tmp_path, env):
    path = tiny_grid(tmp_path, seeds=50_000, models=("ae", "vae"))
    proc = subprocess.run([*CLI, "run", "--grid", str(path), "--out", str(tmp_path / "res"), "--dry-run"],
                          capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) < 40, proc.stdout
    assert "100000 runs: 100000 pending" in proc.stdout
    assert "estimated time left at 1 job" in proc.stdout and "--list" in proc.stdout
    assert any("│ ae " in line and "50,000" in line for line in lines)  # per model
    assert any("dsprites_tiny" in line and "100,000" in line for line in lines)  # per dataset


def test_dry_run_only_selects_runs_one_at_a_time(tmp_path, env):
    path = tiny_grid(tmp_path, seeds=30, models=("ae", "vae"))
    only = subprocess.run([*CLI, "run", "--grid", str(path), "--out", str(tmp_path / "res"), "--dry-run",
                           "--only", "*-vae-s1?-*"], capture_output=True, text=True, env=env)
    assert only.returncode == 0, only.stderr
    assert "10 runs: 10 pending" in only.stdout
    none = subprocess.run([*CLI, "run", "--grid", str(path), "--dry-run", "--only", "nomatch*"],
                          capture_output=True, text=True, env=env)
    assert none.returncode == 2 and "--only" in none.stderr and "60 run ids" in none.stderr, none.stderr


def test_list_prints_every_run(tmp_path, env):
    path = tiny_grid(tmp_path, seeds=150, models=("vae",))
    proc = subprocess.run([*CLI, "run", "--grid", str(path), "--out", str(tmp_path / "res"), "--list"],
                          capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    ids = [run.id for run in expand(load_grid(path))]
    printed = {line.split("│")[1].strip() for line in proc.stdout.splitlines() if line.count("│") > 2}
    assert printed >= set(ids) and len(ids) == 150
    assert "150 runs: 150 pending" in proc.stdout
    assert not (tmp_path / "res").exists()  # --list runs nothing
