"""``disent-bench speed --eval``: the per-metric time table of a whole evaluation (wiring, not speed)."""

from __future__ import annotations

import json

import torch


def test_speed_eval_prints_per_metric_seconds(data_home):
    from typer.testing import CliRunner

    from disent_bench.cli import app

    threads = torch.get_num_threads()
    outcome = CliRunner().invoke(app, ["speed", "--eval", "--json", "--preset", "quick", "--metrics", "mig,dci",
                                      "--dataset", "dsprites_tiny", "--device", "cpu", "--threads", "1"])
    assert outcome.exit_code == 0, outcome.output
    result = json.loads(outcome.stdout)
    assert set(result["metric_seconds"]) == {"mig", "dci"}
    assert result["preset"] == "quick" and result["dataset"] == "dsprites_tiny (synthetic)"
    assert result["images_encoded"] > 0 and result["encoding_seconds"] > 0
    assert result["encode_images_per_s"] > 0 and result["bare_encode_images_per_s"] > 0
    assert 0.0 <= result["scores"]["dci.disentanglement"] <= 1.0
    assert "dci_baseline" not in result  # scikit-learn's DCI only with --dci-baseline (minutes at paper size)
    assert torch.get_num_threads() == threads  # the thread setting is restored


def test_speed_eval_rejects_unknown_metric(data_home):
    from typer.testing import CliRunner

    from disent_bench.cli import app

    from disent_bench.errors import UserError

    outcome = CliRunner().invoke(app, ["speed", "--eval", "--metrics", "nope", "--dataset", "dsprites_tiny"])
    assert isinstance(outcome.exception, UserError)  # the CLI's main() turns it into "error: ..." and exit 2
    assert "unknown metric 'nope'" in str(outcome.exception)
