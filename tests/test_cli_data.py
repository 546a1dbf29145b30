"""``disent-bench data ...``: the commands end to end, and their one-line errors with exit code 2."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from disent_bench.cli import app
from disent_bench.data import dsprites

SHARED = Path(__file__).resolve().parents[2] / "shared"
runner = CliRunner()


def _run(*args):
    return runner.invoke(app, list(args))


def _assert_user_error(result, *fragments):
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, result.output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_list_shows_every_dataset_without_reading_images(data_home):
    result = _run("data", "list")
    assert result.exit_code == 0, result.output
    for name in ("dsprites", "dsprites_tiny", "737,280", "1,536", "missing"):
        assert name in result.output
    assert list(data_home.iterdir()) == []  # nothing rendered or downloaded


def test_generate_then_list_and_show(data_home, tmp_path):
    result = _run("data", "generate", "dsprites_tiny")
    assert result.exit_code == 0, result.output
    assert "rendered 1,536 images in" in result.output and " s -> " in result.output
    assert "already" in _run("data", "generate", "dsprites_tiny").output
    assert "rendered" in _run("data", "generate", "dsprites_tiny", "--force").output
    listing = _run("data", "list").output
    assert "present" in listing.split("dsprites_tiny")[1]
    out = tmp_path / "pictures" / "tiny.png"
    result = _run("data", "show", "dsprites_tiny", "--out", str(out), "--source", "synthetic", "--seed", "3")
    assert result.exit_code == 0, result.output
    with Image.open(out) as picture:
        assert picture.format == "PNG" and picture.width > 400 and picture.height > 300
    assert not list(out.parent.glob(".*.tmp"))  # written atomically


def test_unknown_dataset_lists_the_valid_names(data_home, tmp_path):
    for args in (("generate", "dsprite"), ("fetch", "dsprite"), ("show", "dsprite", "--out", str(tmp_path / "x.png"))):
        _assert_user_error(_run("data", *args), "unknown dataset 'dsprite'", "dsprites, ", "dsprites_tiny")


def test_fetch_offline_fails_fast(data_home, monkeypatch):
    url = "http://127.0.0.1:9/dsprites.npz"
    monkeypatch.setattr(dsprites, "SPEC", dataclasses.replace(dsprites.SPEC, official_url=url))
    start = time.perf_counter()
    result = _run("data", "fetch", "dsprites")
    assert time.perf_counter() - start < 30
    _assert_user_error(result, url, str(data_home / dsprites.OFFICIAL_FILENAME), "data generate dsprites")


def test_unwritable_data_home_and_output(data_home, tmp_path):
    # data_home (monkeypatch) restores DISENT_BENCH_DATA, which --data-dir sets for the process.
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    _assert_user_error(_run("data", "generate", "dsprites_tiny", "--data-dir", str(blocker / "home")),
                       "is not writable", str(blocker / "home"))
    _assert_user_error(_run("--data-dir", str(tmp_path / "home"), "data", "show", "dsprites_tiny",
                            "--out", str(blocker / "x.png")), "--out")
    _assert_user_error(_run("--data-dir", str(tmp_path / "home"), "data", "show", "dsprites_tiny",
                            "--out", str(tmp_path / "x.jpg")), "must be a .png file")


def test_corrupt_official_file_and_bad_source(data_home, tmp_path):
    (data_home / dsprites.OFFICIAL_FILENAME).write_bytes(b"truncated")
    _assert_user_error(_run("data", "fetch", "dsprites"), "does not match the official checksum")
    _assert_user_error(_run("data", "show", "dsprites_tiny", "--out", str(tmp_path / "x.png"), "--source", "web"),
                       "unknown source 'web'")


def test_compare_needs_a_reference_and_a_known_module(data_home, tmp_path):
    _assert_user_error(_run("data", "compare", "dsprites", "--reference", str(tmp_path / "none.gif")), "not found")
    _assert_user_error(_run("data", "compare", "dsprites_tiny", "--reference", str(tmp_path / "none.gif")),
                       "no reference comparison", "dsprites, shapes3d")


@pytest.mark.skipif(not (SHARED / "reference" / "dsprites.gif").is_file(),
                    reason="reference frames not found: the team's shared/ folder is not beside this checkout")
def test_compare_prints_the_match_numbers(tmp_path, monkeypatch):
    from PIL import Image as PILImage

    # A 24-frame excerpt of the reference keeps this quick; the full comparison is a CLI run.
    with PILImage.open(SHARED / "reference" / "dsprites.gif") as gif:
        frames = []
        for number in range(0, gif.n_frames, 14):
            gif.seek(number)
            frames.append(gif.convert("L"))
    excerpt = tmp_path / "excerpt.gif"
    frames[0].save(excerpt, save_all=True, append_images=frames[1:])
    out = tmp_path / "compare.png"
    result = _run("data", "compare", "dsprites", "--reference", str(excerpt), "--out", str(out))
    assert result.exit_code == 0, result.output
    numbers = dict(line.split(": ", 1) for line in result.output.splitlines() if ": " in line)
    assert int(numbers["frames"]) == len(frames)
    assert float(numbers["min_iou"]) >= 0.9 and float(numbers["mean_iou"]) >= float(numbers["min_iou"])
    with PILImage.open(out) as picture:
        assert picture.format == "PNG"


def test_console_script_prints_one_line_and_exit_code_2(tmp_path):
    script = Path(sys.executable).with_name("disent-bench")
    if not script.is_file():
        pytest.skip(f"console script not installed beside {sys.executable} (pip install -e .)")
    env = {**os.environ, "DISENT_BENCH_DATA": str(tmp_path / "home")}
    completed = subprocess.run([str(script), "data", "show", "nope", "--out", str(tmp_path / "x.png")],
                               capture_output=True, text=True, env=env, timeout=120)
    assert completed.returncode == 2
    assert completed.stderr.strip().splitlines() == [
        "error: unknown dataset 'nope'; valid names: " + ", ".join(__import__("disent_bench.data").data.available())]


def test_list_and_fetch_of_the_datasets_without_synthetic(data_home, monkeypatch):
    listing = _run("data", "list").output
    row = next(line for line in listing.splitlines() if "smallnorb" in line)
    assert "missing" in row and "none:" in row and "(0/6" in listing
    monkeypatch.setattr("disent_bench.data.fetch.DEFAULT_TIMEOUT_S", 2.0)
    from disent_bench.data import smallnorb

    files = tuple(dataclasses.replace(f, url="http://127.0.0.1:9/" + f.filename) for f in smallnorb.SPEC.files)
    monkeypatch.setattr(smallnorb, "SPEC", dataclasses.replace(smallnorb.SPEC, official_files=files))
    _assert_user_error(_run("data", "fetch", "smallnorb"), "cannot download smallnorb", "no synthetic version")
    _assert_user_error(_run("data", "show", "mpi3d_toy", "--out", str(data_home / "m.png")),
                       "mpi3d_toy has no synthetic version", "data fetch mpi3d_toy")
    _assert_user_error(_run("data", "generate", "cars3d"), "cars3d has no synthetic version")


def test_show_of_a_nuisance_dataset_adds_a_row_of_fresh_draws(data_home, tmp_path, monkeypatch):
    import numpy as np

    spec = dataclasses.replace(dsprites.SPEC, factor_sizes=dsprites.TINY_SPEC.factor_sizes,
                               render_synthetic=dsprites.TINY_SPEC.render_synthetic,
                               factor_values=dsprites.TINY_SPEC.factor_values)
    monkeypatch.setattr(dsprites, "SPEC", spec)
    pictures = {}
    for name in ("dsprites", "noisy_dsprites"):
        out = tmp_path / f"{name}.png"
        result = _run("data", "show", name, "--out", str(out), "--source", "synthetic")
        assert result.exit_code == 0, result.output
        with Image.open(out) as picture:
            pictures[name] = np.asarray(picture.convert("RGB"))
    # Five factor rows, plus one for the nuisance draws.
    assert pictures["noisy_dsprites"].shape[0] > pictures["dsprites"].shape[0] * 1.1
