"""Data integrity (issue 20, part 4): a changed data file is noticed cheaply, refused by name, never used.

The issue's failing case: four bytes overwritten in the middle of a synthetic cache (same size, new mtime)
were used silently, and the run recorded the checksum the file had when it was rendered.
"""

from __future__ import annotations

import json
import re
import os
import warnings
from pathlib import Path

import numpy as np
import pytest
from training_helpers import one_thread  # noqa: F401 (autouse: one torch thread in this process)
from typer.testing import CliRunner

from disent_bench.cli import app
from disent_bench.data import (
    generate_synthetic,
    get_dataset,
    integrity,
    synthetic_path,
    verify_file,
)
from disent_bench.data.spec import OfficialFile
from disent_bench.data.store import cached_store
from disent_bench.errors import UserError
from disent_bench.runner import execute as execute_module
from disent_bench.runner import execute_run

NAME = "dsprites_tiny"


def overwrite_middle(path: Path, data: bytes = b"\xde\xad\xbe\xef", *, keep_mtime: bool = False) -> None:
    """Overwrite ``len(data)`` bytes in the middle of ``path`` in place (same size).

    The mtime moves forward as a real write's does; file systems stamp times coarsely (a tick of a few
    ms), so a write right after the render could keep the old one: it is moved on explicitly then.
    """
    before = path.stat()
    with open(path, "r+b") as handle:
        handle.seek(before.st_size // 2)
        handle.write(data)
    after = path.stat().st_mtime_ns
    if keep_mtime:
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    elif after == before.st_mtime_ns:
        os.utime(path, ns=(after + 10**9, after + 10**9))
    assert path.stat().st_size == before.st_size


def rendered(data_home) -> Path:
    path = generate_synthetic(NAME, progress=False)
    assert path == synthetic_path(NAME)
    return path


def test_four_bytes_overwritten_in_a_synthetic_cache_are_refused_by_name(data_home):
    path = rendered(data_home)
    assert get_dataset(NAME, "synthetic", progress=False).integrity["check"] == "size and mtime"
    overwrite_middle(path)
    with pytest.raises(UserError) as error:
        get_dataset(NAME, "synthetic", progress=False)
    message = str(error.value)
    assert str(path) in message and "is corrupt" in message and "expected" in message
    assert "disent-bench data verify" in message and f"disent-bench data generate {NAME} --force" in message
    # Refused every time, not only once: the stamp keeps the checksum of the file as rendered.
    with pytest.raises(UserError, match="is corrupt"):
        get_dataset(NAME, "synthetic", progress=False)


def test_a_truncated_cache_is_refused_without_hashing_it(data_home, monkeypatch):
    path = rendered(data_home)
    with open(path, "r+b") as handle:
        handle.truncate(path.stat().st_size - 64)
    monkeypatch.setattr(integrity, "digests", lambda *a, **k: pytest.fail("a size change needs no hash"))
    with pytest.raises(UserError, match=r"is corrupt \(786496 bytes, 786560 when its checksum was recorded\)"):
        get_dataset(NAME, "synthetic", progress=False)


def test_an_intact_file_with_a_new_mtime_is_hashed_once_then_cheap_again(data_home):
    path = rendered(data_home)
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5 * 10**9))  # e.g. copied without keeping times
    first = get_dataset(NAME, "synthetic", progress=False).integrity
    assert first["check"] == "sha256"
    assert json.loads(integrity.stamp_path(path).read_text())["mtime_ns"] == stat.st_mtime_ns + 5 * 10**9
    second = get_dataset(NAME, "synthetic", progress=False).integrity
    assert second["check"] == "size and mtime" and second["sha256"] == first["sha256"]


def test_a_full_check_on_request_sees_a_write_that_kept_size_and_mtime(data_home, monkeypatch):
    path = rendered(data_home)
    overwrite_middle(path, keep_mtime=True)
    get_dataset(NAME, "synthetic", progress=False)  # the cheap check cannot see it (documented)
    with pytest.raises(UserError, match="is corrupt"):
        get_dataset(NAME, "synthetic", progress=False, verify=True)
    monkeypatch.setenv(integrity.VERIFY_ENV, "1")
    with pytest.raises(UserError, match="is corrupt"):
        get_dataset(NAME, "synthetic", progress=False)


def test_a_stamp_from_before_sizes_were_recorded_is_hashed_and_completed(data_home):
    path = rendered(data_home)
    stamp = json.loads(integrity.stamp_path(path).read_text())
    legacy = {k: v for k, v in stamp.items() if k not in ("size", "mtime_ns", "verified_at")}
    integrity.stamp_path(path).write_text(json.dumps(legacy))
    assert get_dataset(NAME, "synthetic", progress=False).integrity["check"] == "sha256"
    assert json.loads(integrity.stamp_path(path).read_text())["size"] == path.stat().st_size
    overwrite_middle(path)
    integrity.stamp_path(path).write_text(json.dumps(legacy))
    with pytest.raises(UserError, match="is corrupt"):
        get_dataset(NAME, "synthetic", progress=False)


@pytest.fixture
def run_spec(tmp_path):
    from grid_helpers import tiny_grid

    from disent_bench.grid import expand, load_grid

    grid = tiny_grid(tmp_path, steps=2, models=("ae",), metrics=("reconstruction",),
                     eval={"reconstruction": {"num_batches": 1, "batch_size": 8}})
    return expand(load_grid(grid))[0]


def test_a_run_on_a_corrupted_cache_fails_naming_it_and_a_clean_run_records_the_verified_checksum(
        data_home, tmp_path, run_spec, monkeypatch):
    monkeypatch.setattr(execute_module, "_DATASETS", {})  # a fresh worker: loads the data home's file
    path = rendered(data_home)
    recorded = json.loads(integrity.stamp_path(path).read_text())["sha256"]
    overwrite_middle(path)
    outcome = execute_run(run_spec, tmp_path / "corrupt")
    assert outcome.status == "failed" and str(path) in outcome.error and "data verify" in outcome.error
    assert not list((tmp_path / "corrupt").rglob("metrics.json"))

    generate_synthetic(NAME, force=True, progress=False)
    monkeypatch.setattr(execute_module, "_DATASETS", {})
    outcome = execute_run(run_spec, tmp_path / "clean")
    assert outcome.status == "done", outcome.error
    metrics = json.loads(next((tmp_path / "clean").rglob("metrics.json")).read_text())
    dataset = metrics["provenance"]["dataset"]
    assert dataset["checksum"] == dataset["integrity"]["sha256"] == recorded
    assert dataset["integrity"]["check"] in ("size and mtime", "sha256")
    assert dataset["integrity"]["sha256_verified_at"] and dataset["integrity"]["checked_at"]


def test_an_official_file_without_a_published_checksum_is_held_to_its_first_sha256(data_home):
    file = OfficialFile("painting.bin", None, check_format=lambda path: None)  # every byte string passes
    path = data_home / file.filename
    path.write_bytes(bytes(range(256)) * 64)
    first = verify_file(file)
    assert verify_file(file) == first
    overwrite_middle(path)
    with pytest.raises(UserError) as error:
        verify_file(file)
    assert str(path) in str(error.value) and f"expected {first}" in str(error.value)
    assert "disent-bench data verify" in str(error.value)


def test_a_changed_converted_store_is_converted_again_with_a_warning(tmp_path):
    def fill(array):
        array[:] = np.arange(array.size, dtype=np.uint64).reshape(array.shape) % 251

    store = cached_store(tmp_path, "toy", "abcd", (64, 8, 8, 1), fill)
    path = Path(store.filename)
    expected = np.array(store)
    del store
    overwrite_middle(path)
    with pytest.warns(UserWarning, match="changed since it was converted"):
        again = cached_store(tmp_path, "toy", "abcd", (64, 8, 8, 1), fill)
    np.testing.assert_array_equal(np.array(again), expected)
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))  # same bytes, new mtime
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cached_store(tmp_path, "toy", "abcd", (64, 8, 8, 1), lambda array: pytest.fail("not converted again"))


runner = CliRunner()


def test_data_verify_reports_ok_corrupt_with_both_checksums_and_missing(data_home):
    path = rendered(data_home)
    result = runner.invoke(app, ["data", "verify"])
    assert result.exit_code == 0, result.output
    assert f"OK         {NAME} synthetic: {path}" in result.output and "1 OK" in result.output

    recorded = json.loads(integrity.stamp_path(path).read_text())["sha256"]
    overwrite_middle(path)
    actual = integrity.digests(path)["sha256"]
    result = runner.invoke(app, ["data", "verify", NAME])
    assert result.exit_code == 1, result.output
    line = next(line for line in result.output.splitlines() if line.startswith("CORRUPT"))
    assert str(path) in line and f"expected sha256 {recorded}" in line and f"actual {actual}" in line
    assert f"data generate {NAME} --force" in line

    # A named dataset lists what it lacks; missing alone is not a failure.
    result = runner.invoke(app, ["data", "verify", "dsprites"])
    assert result.exit_code == 0, result.output
    assert "missing    dsprites official" in result.output and "missing    dsprites synthetic" in result.output


def test_data_verify_of_an_empty_home_and_of_an_unknown_name(data_home):
    result = runner.invoke(app, ["data", "verify"])
    assert result.exit_code == 0 and "nothing to verify" in result.output
    result = runner.invoke(app, ["data", "verify", "dsprite"])
    assert result.exit_code == 2 and "unknown dataset 'dsprite'" in result.output


def test_data_verify_checks_converted_stores(data_home):
    def fill(array):
        array[:] = 7

    store = cached_store(data_home / "cache", "toy", "abcd", (16, 4, 4, 1), fill)
    path = Path(store.filename)
    del store
    assert [v.status for v in integrity.verify_data(progress=False)] == ["OK"]
    overwrite_middle(path)
    verdicts = integrity.verify_data(progress=False)
    assert [(v.status, v.kind, v.path) for v in verdicts] == [("CORRUPT", "converted", path)]


def test_a_worker_checks_the_dataset_it_keeps_before_each_run(tmp_path, monkeypatch):
    """Runs in one process share a loaded dataset; a file corrupted between two of them is caught at the second."""
    from disent_bench.errors import UserError
    from disent_bench.runner import execute

    monkeypatch.setenv("DISENT_BENCH_DATA", str(tmp_path / "data"))
    monkeypatch.setattr(execute, "_DATASETS", {})
    first = execute._dataset("dsprites_tiny", "synthetic", False)
    assert execute._dataset("dsprites_tiny", "synthetic", False) is first  # intact: kept, checked cheaply
    path = Path(first.path)
    with open(path, "r+b") as handle:  # four bytes in the middle, inverted (same size, new mtime)
        handle.seek(path.stat().st_size // 2)
        middle = handle.read(4)
        handle.seek(path.stat().st_size // 2)
        handle.write(bytes(255 - b for b in middle))
    with pytest.raises(UserError, match=re.escape(str(path))):
        execute._dataset("dsprites_tiny", "synthetic", False)
