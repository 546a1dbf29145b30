"""No number moves: the baseline grid of ``no_change.py`` gives the run ids, metrics, train logs and
checkpoints recorded before the package was restructured (``tests/data/no_change.json``).

Run ids are pure functions of the grid, so they must match everywhere. Weights and metrics are
bit-identical only on the CPU kind they were recorded on: torch picks its kernels by the CPU's vector
extensions (AVX2 vs AVX-512), which changes the order of floating-point sums and so the last digits.
On another kind the numbers are compared to a tolerance that a real change of computation would break.
"""

from __future__ import annotations

import json
import math

import pytest
import torch

from no_change import RECORD, VARIANTS, run_grid, variant_grid


@pytest.fixture(scope="module")
def recorded():
    return json.loads(RECORD.read_text())


@pytest.fixture(scope="module")
def now(tmp_path_factory):
    data_home = tmp_path_factory.mktemp("data")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DISENT_BENCH_DATA", str(data_home))
        return run_grid(tmp_path_factory.mktemp("results"))


def test_run_ids_unchanged(recorded):
    from disent_bench.grid import expand, parse_grid

    ids = [f"{variant}/{run.id}" for variant in VARIANTS
           for run in expand(parse_grid(variant_grid(variant), "no-change.toml"))]
    assert sorted(ids) == sorted(recorded["runs"])


def _same_machine_kind(recorded) -> bool:
    return recorded["cpu_capability"] == torch.backends.cpu.get_cpu_capability()


def test_numbers_unchanged(recorded, now):
    assert sorted(now["runs"]) == sorted(recorded["runs"])
    exact = _same_machine_kind(recorded)
    for run_id, before in recorded["runs"].items():
        after = now["runs"][run_id]
        assert after["packed_with"] == before["packed_with"], run_id
        if exact:
            assert after["results"] == before["results"], run_id
            assert after["final_loss"] == before["final_loss"], run_id
            assert after["train_log"] == before["train_log"], run_id
            assert after["checkpoint"] == before["checkpoint"], run_id
            continue
        assert after["checkpoint"]["step"] == before["checkpoint"]["step"]
        for key, value in before["final_loss"].items():
            assert math.isclose(after["final_loss"][key], value, rel_tol=1e-3, abs_tol=1e-4), (run_id, key)
        for row_before, row_after in zip(before["train_log"], after["train_log"], strict=True):
            for key, value in row_before.items():
                assert math.isclose(float(row_after[key]), float(value), rel_tol=1e-3, abs_tol=1e-4), (run_id, key)
