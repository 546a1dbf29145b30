"""A full disk (or a read-only one) anywhere in a run: one line naming the file and the cause, nothing lost.

The failures are injected where every write ends, ``os.replace`` of an atomic write (and the train log's
append), with ``OSError(ENOSPC)``: what a full file system raises.
"""

from __future__ import annotations

import errno
import json
import os
import sys
from pathlib import Path

import pytest

from disent_bench import _io
from disent_bench.errors import StorageError
from disent_bench.grid import expand, load_grid
from disent_bench.run_store import checkpoint_step
from grid_helpers import tiny_grid


def full_disk(monkeypatch, when):
    """Make ``os.replace`` (the last step of every atomic write) fail with ENOSPC when ``when(target)``."""
    real_replace = os.replace

    def replace(src, dst, *args, **kwargs):
        if when(Path(dst)):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(_io.os, "replace", replace)


def test_an_atomic_write_on_a_full_disk_names_the_file_and_leaves_the_old_one(tmp_path, monkeypatch):
    target = tmp_path / "metrics.json"
    target.write_text("old")
    full_disk(monkeypatch, lambda dst: True)
    with pytest.raises(StorageError, match=rf"cannot write {target}: the disk is full"):
        _io.atomic_write_text(target, "new")
    assert target.read_text() == "old"
    assert not list(tmp_path.glob("*.tmp")) and len(list(tmp_path.iterdir())) == 1


def run_cli(monkeypatch, capsys, grid: Path, out: Path) -> tuple[int, list[str]]:
    """``disent-bench run`` of ``grid`` into ``out`` in this process (so injected faults apply): its exit code
    and the lines it wrote to stderr."""
    from disent_bench import cli

    monkeypatch.setattr(sys, "argv", ["disent-bench", "run", "--grid", str(grid), "--out", str(out), "--jobs", "1",
                                      "--no-progress"])
    with pytest.raises(SystemExit) as exit_info:
        cli.main()
    return exit_info.value.code, capsys.readouterr().err.strip().splitlines()


def _grid(tmp_path):
    return tiny_grid(tmp_path, seeds=(0, 1), steps=6, models=("vae",), benchmark={"pack": 1})


def test_a_full_disk_mid_run_keeps_the_last_checkpoint_and_the_finished_runs(tmp_path, monkeypatch):
    from disent_bench.executors import get_executor

    runs = expand(load_grid(_grid(tmp_path)))
    out = tmp_path / "results"
    get_executor("local").run(runs[:1], out, progress=False)  # seed 0 finishes
    finished = out / "runs" / runs[0].id
    before = {p.name: p.read_bytes() for p in finished.iterdir() if p.is_file()}
    second = out / "runs" / runs[1].id
    writes = []

    def checkpoint_after_the_first(dst):
        if dst.name == "checkpoint.pt" and dst.parent == second:
            writes.append(dst)
            return len(writes) > 1  # step 2's checkpoint is written; the disk fills before step 4's
        return False

    full_disk(monkeypatch, checkpoint_after_the_first)
    with pytest.raises(StorageError, match=r"checkpoint\.pt: the disk is full"):
        get_executor("local").run(runs, out, progress=False)
    assert checkpoint_step(second) == 2  # the last good checkpoint is intact and loadable
    record = json.loads((second / "error.json").read_text())
    assert record["error_type"] == "StorageError" and "disk is full" in record["error"]
    assert not (second / "DONE").exists()
    assert {p.name: p.read_bytes() for p in finished.iterdir() if p.is_file()} == before
    assert not list(out.rglob("*.tmp"))


def test_when_even_the_error_record_cannot_be_written_nothing_else_is_attempted(tmp_path, monkeypatch, capsys):
    grid = _grid(tmp_path)
    out = tmp_path / "results"
    attempted = []

    def everything(dst):
        attempted.append(dst.name)
        return dst.name != "config.json"

    full_disk(monkeypatch, everything)
    code, err = run_cli(monkeypatch, capsys, grid, out)
    assert code == 1
    assert len(err) == 1 and err[0].startswith("error: cannot write ") and "the disk is full" in err[0]
    assert not any("Traceback" in line for line in err)
    # The first run's first checkpoint failed, then its error.json; the second run was never started.
    assert attempted.count("error.json") == 1 and not list(out.glob("runs/*/error.json"))
    assert not list(out.rglob("*.tmp"))


@pytest.mark.parametrize("target", ["metrics.json", "train_log.csv", "config.json"])
def test_every_write_of_a_run_stops_the_grid_with_the_file_named(tmp_path, monkeypatch, target):
    from disent_bench.executors import get_executor

    runs = expand(load_grid(_grid(tmp_path)))
    out = tmp_path / "results"
    if target == "train_log.csv":  # after its first row the log is appended to, not replaced
        real_open = open

        def appending(path, mode="r", *args, **kwargs):
            if "a" in mode and Path(path).name == target:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return real_open(path, mode, *args, **kwargs)

        monkeypatch.setattr(_io, "open", appending, raising=False)
    else:
        full_disk(monkeypatch, lambda dst: dst.name == target)
    with pytest.raises(StorageError, match=rf"{target}: the disk is full"):
        get_executor("local").run(runs, out, progress=False)
    first = out / "runs" / runs[0].id
    assert json.loads((first / "error.json").read_text())["error_type"] == "StorageError"
    assert not (out / "runs" / runs[1].id).exists()  # the grid stopped at the first run
    assert not list(out.rglob("*.tmp"))


def test_a_report_on_a_full_disk_is_one_error_and_leaves_no_half_file(tmp_path, monkeypatch):
    from disent_bench.report import make_report
    from report_zoo import write_zoo

    write_zoo(tmp_path, seeds=(0,), values_per_family=1, representations=("mean",))
    full_disk(monkeypatch, lambda dst: dst.name == "families.md")
    with pytest.raises(StorageError, match=r"families\.md: the disk is full"):
        make_report(tmp_path, pictures=False, progress=False, udr=False)
    assert not list(tmp_path.rglob("*.tmp")) and not (tmp_path / "report" / "families.md").exists()


def test_an_unwritable_results_directory_is_refused_before_anything_runs(tmp_path, monkeypatch, capsys):
    grid = _grid(tmp_path)
    out = tmp_path / "results"
    real_mkdir = Path.mkdir

    def read_only(self, *args, **kwargs):
        if self == out:
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(self))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", read_only)
    code, err = run_cli(monkeypatch, capsys, grid, out)
    assert code == 2
    assert err == [f"error: results directory {out} is not writable: the file system is read-only "
                   f"(Read-only file system); choose another with --out"]
    assert not out.exists()
