"""The Ray executor: same results as local runs, files back without a shared file system, a killed
worker retried and resumed, resource checks, and the install hint without Ray."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from disent_bench.errors import UserError
from disent_bench.grid import load_grid, expand
from disent_bench.models import BetaVAE
from grid_helpers import environ, run_locally, run_scores, tiny_grid

TESTS_ROOT = Path(__file__).resolve().parents[len(__name__.split(".")) - 1]  # what makes this module importable
PROJECT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


class KilledOnceVAE(BetaVAE):
    """A VAE whose worker process SIGKILLs itself at training step ``kill_after + 1`` the first time.

    ``kill_marker`` is a file: absent, the process creates it and dies; present (the retry), it trains
    normally. Same weights, same init and same losses as ``beta_vae`` with the same beta.
    """

    def __init__(self, *, in_channels: int, latent_dim: int = 10, beta: float = 1.0, kill_marker: str = "",
                 kill_after: int = 3) -> None:
        super().__init__(in_channels=in_channels, latent_dim=latent_dim, beta=beta)
        self.hparams.update(kill_marker=kill_marker, kill_after=kill_after)
        self._losses = 0

    def loss(self, x, *, generator=None):
        if self.training:
            self._losses += 1
            marker = Path(self.hparams["kill_marker"])
            if self._losses > self.hparams["kill_after"] and self.hparams["kill_marker"] and not marker.exists():
                marker.write_text(str(os.getpid()))
                os.kill(os.getpid(), signal.SIGKILL)
        return super().loss(x, generator=generator)


def _write_grid(path: Path, *, models=({"name": "beta_vae", "beta": [1.0, 4.0]},), benchmark=None) -> Path:
    return tiny_grid(path, name="raytiny", benchmark={"cpus_per_run": 1, **(benchmark or {})}, models=models,
                     metrics=["mig", "beta_vae", "reconstruction"])


def _losses(run_directory: Path) -> list[list[str]]:
    """train_log.csv without its timing columns."""
    import csv

    with open(run_directory / "train_log.csv", newline="") as handle:
        return [[row["step"], row["loss"], row["reconstruction"], row["kl"]] for row in csv.DictReader(handle)]


@pytest.fixture(scope="module")
def ray_mod():
    return pytest.importorskip("ray", reason="ray is not installed (pip install 'disent-bench[ray]')")


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """A data home and a scratch TMPDIR for this module; the environment a local Ray instance inherits."""
    root = tmp_path_factory.mktemp("ray")
    (root / "tmp").mkdir()
    # Workers import KilledOnceVAE from this module by name.
    pythonpath = os.pathsep.join(p for p in (str(TESTS_ROOT), os.environ.get("PYTHONPATH")) if p)
    with environ(DISENT_BENCH_DATA=str(root / "datasets"), TMPDIR=str(root / "tmp"), PYTHONPATH=pythonpath,
                 RAY_ADDRESS=None):
        yield root


@pytest.fixture(scope="module")
def ray_cluster(ray_mod, env):
    """One local 2-CPU Ray instance for the library-level tests (workers stay warm between them).

    The executor uses a Ray that is already initialised and leaves it running; the CLI test covers
    the executor starting and stopping its own instance.
    """
    import logging

    ray_mod.init(num_cpus=2, include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False,
                 object_store_memory=128 * 1024 ** 2)
    yield ray_mod
    ray_mod.shutdown()


@pytest.fixture(scope="module")
def local_scores(env):
    """The tiny grid run by the local executor in this process (which computes with the grid's cpus_per_run
    threads, whatever this process was set to: the executors must give the same numbers)."""
    return run_locally(_write_grid(env / "grid.toml"), env / "out_local")


@pytest.mark.slow
def test_ray_cli_matches_local_executor(ray_mod, env, local_scores):
    """`disent-bench run --executor ray` on a local 2-CPU Ray instance: the same metrics, bit for bit."""
    out = env / "out_ray"
    result = subprocess.run([str(BIN / "disent-bench"), "run", "--grid", str(local_scores["grid"]), "--out", str(out),
                             "--executor", "ray", "--no-progress"], capture_output=True, text=True, timeout=300,
                            cwd=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "2 done" in result.stderr
    assert run_scores(out) == local_scores["scores"]
    for run in local_scores["runs"]:
        directory = out / "runs" / run.id
        for name in ("config.json", "train_log.csv", "checkpoint.pt", "metrics.json", "DONE"):
            assert (directory / name).is_file(), name


@pytest.mark.slow
def test_ray_without_shared_filesystem_ships_files_back(ray_cluster, env, local_scores):
    """Workers that cannot see the results directory train in scratch; the driver writes what they return."""
    from disent_bench.executors.ray import RayExecutor

    out = env / "out_ray_unshared"
    runs = local_scores["runs"]
    # A partial checkpoint in the results directory is shipped to the worker, which resumes from it.
    first = runs[0]
    import shutil

    (out / "runs" / first.id).mkdir(parents=True)
    shutil.copy(env / "out_local" / "runs" / first.id / "checkpoint.pt", out / "runs" / first.id / "checkpoint.pt")
    # ... a finished checkpoint (step 6 of 6): the worker scores it without training.
    executor = RayExecutor(shared_filesystem=False)
    outcomes = executor.run(runs, out, progress=False)
    assert [o.status for o in outcomes] == ["done", "done"], outcomes
    assert all(o.extra["shared_filesystem"] is False for o in outcomes)
    assert run_scores(out) == local_scores["scores"]
    resumed = json.loads((out / "runs" / first.id / "metrics.json").read_text())["train"]
    assert resumed["resumed_from_step"] == 6 and resumed["steps_this_attempt"] == 0
    fresh = json.loads((out / "runs" / runs[1].id / "metrics.json").read_text())["train"]
    assert fresh["resumed_from_step"] == 0
    for run in runs:
        assert (out / "runs" / run.id / "DONE").is_file()
        assert _losses(out / "runs" / run.id) == _losses(env / "out_local" / "runs" / run.id)
    # The workers cleaned their scratch directories once the driver had the files.
    scratch = env / "tmp" / "disent-bench-ray" / "raytiny" / "runs"
    assert not scratch.exists() or not any(scratch.iterdir())
    # Run again: everything is finished, nothing is submitted.
    again = executor.run(runs, out, progress=False)
    assert [o.status for o in again] == ["skipped", "skipped"]


@pytest.mark.parametrize("shared_filesystem", [None, False], ids=["shared", "scratch"])
def test_a_pack_is_one_task_with_the_local_packs_numbers(ray_cluster, env, tmp_path, shared_filesystem):
    """``pack = 2``: both runs train together in one Ray task (one worker process), with the numbers the
    local executor's pack gives, files shipped back or not."""
    from disent_bench.executors import get_executor
    from disent_bench.executors.ray import RayExecutor

    grid = _write_grid(tmp_path / "grid.toml", benchmark={"pack": 2})
    runs = expand(load_grid(grid))
    local = get_executor("local").run(runs, tmp_path / "local", progress=False)
    assert [o.status for o in local] == ["done", "done"], local
    outcomes = RayExecutor(shared_filesystem=shared_filesystem).run(runs, tmp_path / "ray", progress=False)
    assert [o.status for o in outcomes] == ["done", "done"], outcomes
    assert len({o.extra["pid"] for o in outcomes}) == 1  # one task
    assert all(o.extra["shared_filesystem"] is (shared_filesystem is None) for o in outcomes)
    for run in runs:
        record = json.loads((tmp_path / "ray" / "runs" / run.id / "metrics.json").read_text())
        assert record["provenance"]["packed_with"] == 2
        assert _losses(tmp_path / "ray" / "runs" / run.id) == _losses(tmp_path / "local" / "runs" / run.id)
    assert run_scores(tmp_path / "ray") == run_scores(tmp_path / "local")


@pytest.mark.slow
@pytest.mark.parametrize("shared_filesystem", [None, False], ids=["shared", "scratch"])
def test_killed_worker_is_retried_and_resumes(ray_cluster, env, local_scores, tmp_path, shared_filesystem):
    """SIGKILL of the worker mid-training: Ray retries the task, which resumes from the step-2 checkpoint
    (in the results directory, or in the node's scratch directory) and ends with the same scores as
    the uninterrupted beta_vae run."""
    from disent_bench.executors.ray import RayExecutor

    marker = tmp_path / "killed"
    grid = _write_grid(tmp_path / "grid.toml", models=[{"name": f"{__name__}:KilledOnceVAE", "beta": 1.0,
                                                        "kill_marker": str(marker), "kill_after": 3}])
    runs = expand(load_grid(grid))
    out = tmp_path / "out"
    outcomes = RayExecutor(max_retries=2, shared_filesystem=shared_filesystem).run(runs, out, progress=False)
    assert marker.is_file(), "the worker was never killed"
    assert outcomes[0].extra["shared_filesystem"] is (shared_filesystem is None)
    assert outcomes[0].status == "done", outcomes
    assert int(marker.read_text()) != outcomes[0].extra["pid"]  # a new worker process finished it
    record = json.loads((out / "runs" / runs[0].id / "metrics.json").read_text())
    assert record["train"]["resumed_from_step"] == 2  # killed during step 4: the last checkpoint was step 2
    reference = next(v for k, v in local_scores["scores"].items() if "beta1-" in k)
    assert run_scores(out)[runs[0].id] == reference


@pytest.mark.slow
def test_killed_worker_without_retries_is_recorded_failed(ray_cluster, env, tmp_path):
    from disent_bench.executors.ray import RayExecutor

    marker = tmp_path / "killed"
    grid = _write_grid(tmp_path / "grid.toml", models=[{"name": f"{__name__}:KilledOnceVAE", "beta": 1.0,
                                                        "kill_marker": str(marker), "kill_after": 1}])
    runs = expand(load_grid(grid))
    outcomes = RayExecutor(max_retries=0).run(runs, tmp_path / "out", progress=False)
    assert outcomes[0].status == "failed" and "worker died" in outcomes[0].error
    error = json.loads((tmp_path / "out" / "runs" / runs[0].id / "error.json").read_text())
    assert error["executor"] == "ray" and error["user_error"] is False


def test_task_resources_defaults_and_checks(ray_mod, env):
    from disent_bench.executors.ray import RayExecutor

    grid = _write_grid(env / "grid_res.toml", models=[{"name": "beta_vae", "beta": 4.0}])
    run = expand(load_grid(grid))[0]
    executor = RayExecutor()
    bare = run.__class__(**{**run.to_json(), "resources": {}})
    assert executor.task_resources(bare, {"CPU": 8, "GPU": 0}) == {"num_cpus": 1.0, "num_gpus": 0.0}
    assert bare.device == "cpu"  # pinned to the CPU: no GPU even where there are some
    assert executor.task_resources(bare, {"CPU": 8, "GPU": 2}) == {"num_cpus": 1.0, "num_gpus": 0.0}
    auto = run.__class__(**{**run.to_json(), "resources": {}, "device": "auto"})
    assert executor.task_resources(auto, {"CPU": 8, "GPU": 0}) == {"num_cpus": 1.0, "num_gpus": 0.0}
    assert executor.task_resources(auto, {"CPU": 8, "GPU": 2}) == {"num_cpus": 1.0, "num_gpus": 1.0}
    wants_gpu = run.__class__(**{**run.to_json(), "resources": {"gpus_per_run": 1, "cpus_per_run": 4}})
    assert executor.task_resources(wants_gpu, {"CPU": 8, "GPU": 1}) == {"num_cpus": 4.0, "num_gpus": 1.0}
    with pytest.raises(UserError, match="gpus_per_run = 1 but no node"):
        executor.task_resources(wants_gpu, {"CPU": 8, "GPU": 0})
    with pytest.raises(UserError, match="cpus_per_run = 4 but no node"):
        executor.task_resources(wants_gpu, {"CPU": 2, "GPU": 1})


def test_unreachable_or_malformed_address_is_a_user_error(ray_mod, monkeypatch):
    """Ray would retry an address nothing listens on for minutes; the executor says so at once."""
    from disent_bench.executors.ray import RayExecutor

    with pytest.raises(UserError, match="cannot connect to the Ray cluster at '127.0.0.1:1'"):
        RayExecutor(address="127.0.0.1:1")
    monkeypatch.setenv("RAY_ADDRESS", "ray://127.0.0.1:1")
    with pytest.raises(UserError, match="cannot connect to the Ray cluster at 'ray://127.0.0.1:1'"):
        RayExecutor()
    with pytest.raises(UserError, match="is not a Ray address"):
        RayExecutor(address="headnode")


def test_without_ray_the_error_says_what_to_install(monkeypatch):
    from disent_bench.executors import get_executor

    monkeypatch.setitem(sys.modules, "ray", None)  # makes `import ray` raise ImportError
    with pytest.raises(UserError, match=r'pip install "disent-bench\[ray\]"'):
        get_executor("ray")


def test_cli_without_ray_exits_2_with_install_hint(tmp_path):
    grid = _write_grid(tmp_path / "grid.toml")
    code = ("import sys; sys.modules['ray'] = None; sys.argv = ['disent-bench'] + sys.argv[1:]; "
            "from disent_bench.cli import main; main()")
    result = subprocess.run([sys.executable, "-c", code, "run", "--grid", str(grid), "--out", str(tmp_path / "out"),
                             "--executor", "ray"], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "DISENT_BENCH_DATA": str(tmp_path / "datasets")})
    assert result.returncode == 2, result.stderr[-2000:]
    assert 'error: --executor ray needs Ray' in result.stderr
    assert 'pip install "disent-bench[ray]"' in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()  # nothing written before the check


def test_joining_a_cluster_presents_the_local_auth_token(ray_mod, monkeypatch, tmp_path):
    """Ray only sends ~/.ray/auth_token when RAY_AUTH_MODE=token; the executor sets it when a token exists."""
    from disent_bench.executors.ray import _present_auth_token

    monkeypatch.setitem(sys.modules, "ray._raylet", None)  # skip refreshing Ray's config in this process
    monkeypatch.delenv("RAY_AUTH_TOKEN", raising=False)
    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(tmp_path / "auth_token"))
    _present_auth_token()
    assert "RAY_AUTH_MODE" not in os.environ  # no token, nothing to present
    (tmp_path / "auth_token").write_text("x" * 32)
    _present_auth_token()
    assert os.environ["RAY_AUTH_MODE"] == "token"
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    _present_auth_token()
    assert os.environ["RAY_AUTH_MODE"] == "disabled"  # an explicit choice is left alone
