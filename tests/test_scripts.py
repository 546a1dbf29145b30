"""The measurement scripts in scripts/: bad input is one line and exit code 2; what they compare holds."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def test_reference_eval_script_refuses_a_folder_that_is_not_the_reference(tmp_path):
    """scripts/reference-eval-time: a wrong --dlib path or metric is one clear line and exit code 2."""
    script = SCRIPTS / "reference-eval-time"
    wrong = subprocess.run([sys.executable, str(script), "--dlib", str(tmp_path)], capture_output=True, text=True)
    assert wrong.returncode == 2
    assert "is not a disentanglement_lib checkout" in wrong.stderr and "Traceback" not in wrong.stderr
    (tmp_path / "disentanglement_lib" / "evaluation" / "metrics").mkdir(parents=True)
    unknown = subprocess.run([sys.executable, str(script), "--dlib", str(tmp_path), "--metrics", "mig,migg"],
                             capture_output=True, text=True)
    assert unknown.returncode == 2 and "unknown metric(s) migg" in unknown.stderr


def test_fused_adam_check_compares_against_the_default_adam():
    done = subprocess.run([sys.executable, str(SCRIPTS / "fused-adam-check"), "--steps", "3", "--batch-size", "4",
                           "--json"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["foreach"]["bit_identical"] and report["foreach"]["max_weight_difference"] == 0.0
    assert report["single"]["bit_identical"]  # the single-tensor Adam is the same arithmetic
    assert report["fused"]["max_weight_difference"] >= 0.0 and report["fused"]["seconds_per_step"] > 0
    bad = subprocess.run([sys.executable, str(SCRIPTS / "fused-adam-check"), "--steps", "0"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "must be >= 1" in bad.stderr


def test_reference_agreement_refuses_missing_or_wrong_checkouts(tmp_path):
    """scripts/reference-agreement and each scripts/agreement/*.py: a missing or wrong checkout is one line, exit 2."""
    script = SCRIPTS / "reference-agreement"
    missing = subprocess.run([sys.executable, str(script), "--only", "irs"], capture_output=True, text=True)
    assert missing.returncode == 2 and "irs needs --dlib PATH" in missing.stderr and "Traceback" not in missing.stderr
    wrong = subprocess.run([sys.executable, str(script), "--dlib", str(tmp_path), "--only", "udr"],
                           capture_output=True, text=True)
    assert wrong.returncode == 2 and "is not a checkout of it" in wrong.stderr
    unknown = subprocess.run([sys.executable, str(script), "--only", "migg"], capture_output=True, text=True)
    assert unknown.returncode == 2 and "unknown check(s) migg" in unknown.stderr
    for name, option in (("irs.py", "--dlib"), ("udr.py", "--dlib"), ("downstream.py", "--dlib"),
                         ("ubisoft.py", "--laforge"), ("infomec.py", "--latent-quantization")):
        done = subprocess.run([sys.executable, str(SCRIPTS / "agreement" / name), option, str(tmp_path)],
                              capture_output=True, text=True)
        assert done.returncode == 2 and "Traceback" not in done.stderr, (name, done.stderr)
        assert len(done.stderr.strip().splitlines()) == 1, (name, done.stderr)
