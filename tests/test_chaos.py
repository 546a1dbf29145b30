"""scripts/chaos-kill, reduced: SIGKILLed and restarted runs end identical to an uninterrupted one; report and
two runs beside each other on one results folder neither crash nor train a run twice.

The full measurement (20 kills, pictures in the reports) is ``scripts/chaos-kill``; this runs 3 kills of a
grid of 8 steps, which takes about a minute on 2 cores.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "chaos-kill"


@pytest.mark.slow
def test_runs_killed_at_random_moments_end_identical_to_an_uninterrupted_run(tmp_path, data_home):
    work = tmp_path / "chaos"
    done = subprocess.run([sys.executable, str(SCRIPT), "--kills", "3", "--steps", "8", "--no-pictures",
                           "--workdir", str(work), "--keep"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "Traceback" not in done.stdout + done.stderr
    assert re.search(r"^3 kills landed", done.stdout, re.MULTILINE), done.stdout
    # Three tables (chaos, report beside run, two runs at once), each of all three runs.
    assert done.stdout.count("3/3 identical") == 3, done.stdout
    assert "chaos: 3 kills, 3/3 runs identical; everything held" in done.stdout
    # The packed pair really trained packed and the AE alone: the grid has both paths of the trainer.
    packed = {d.name.split("-s0-")[0]: json.loads((d / "metrics.json").read_text())["provenance"]["packed_with"]
              for d in (work / "chaos" / "runs").iterdir()}
    assert packed == {"dsprites_tiny-ae": 1, "dsprites_tiny-beta_vae-beta1": 2, "dsprites_tiny-beta_vae-beta4": 2}
    # Two runs at once: each grid run trained by exactly one of them.
    counts = [re.search(r"(\d+) done", (work / "logs" / f"two-runs-{i}.log").read_text()) for i in (1, 2)]
    assert sum(int(m.group(1)) for m in counts if m) == 3


def test_bad_arguments_are_one_line_and_exit_code_2(tmp_path):
    bad = subprocess.run([sys.executable, str(SCRIPT), "--steps", "7", "--checkpoint-every", "2"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert bad.stderr.strip().startswith("error: ") and len(bad.stderr.strip().splitlines()) == 1
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "file").write_text("x")
    busy = subprocess.run([sys.executable, str(SCRIPT), "--workdir", str(tmp_path / "busy")],
                          capture_output=True, text=True)
    assert busy.returncode == 2 and "is not empty" in busy.stderr and "Traceback" not in busy.stderr
