"""Run a grid on a Ray cluster (https://docs.ray.io): every pack of runs is one Ray task.

``disent-bench run --grid FILE --executor ray [--address ADDR]``

* **Where**: with ``--address`` (or ``RAY_ADDRESS``) the driver joins that cluster; without either it
  starts a small Ray instance on this machine (one CPU slot per core, no dashboard) and stops it at
  the end.
* **Packs**: runs that train together (``[benchmark] pack``, see :func:`disent_bench.runner.make_packs`)
  are one task, with the resources of one run (they share its device and threads); a lone run is a
  pack of one.
* **Resources**: each task asks for ``[benchmark] gpus_per_run`` GPUs and ``cpus_per_run`` CPUs
  (defaults: 1 CPU, and 1 GPU when the cluster has GPUs unless the run's device is ``cpu``); a task
  uses as many torch threads as the CPUs it asked for. A request no node of the cluster can satisfy is a UserError
  rather than a task that waits for ever.
* **Results, shared file system or not**: the driver writes a token into the results directory.
  A worker that can read it shares the file system, and runs
  :func:`disent_bench.runner.execute_pack` right there: the run's lock, its checkpoints and its
  results live in the shared directory, exactly as with the local executor. A worker that cannot
  (a node without the shared mount) runs it in a scratch directory on its own disk
  (``$TMPDIR/disent-bench-ray/<benchmark>``) and returns the run's files (config, train log,
  metrics, error and the final checkpoint); the driver writes them into the results directory
  atomically, ``DONE`` last. The driver also ships a partial checkpoint it holds, so an
  interrupted run resumes on any worker.
* **Failures**: a worker process or node that dies is retried by Ray (``max_retries`` system
  failures); the retry resumes from the run's last checkpoint when it can reach it (always on a
  shared file system; without one only if it lands on the same node, otherwise the run restarts from
  the checkpoint the driver shipped, or from step 0). A run that fails for its own reasons (an
  exception in training or scoring) is recorded as failed exactly as in local runs and is not
  retried (``retry_exceptions=False``).
* **Ctrl-C** cancels every outstanding task (each stops where it is; checkpoints stay) and shuts Ray
  down; a rerun of the same command picks up where this one stopped.

Workers need disent-bench (and any user model module) importable, and the same Python and Ray
versions as the driver, as Ray itself requires.
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
import secrets
import shutil
import socket
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from disent_bench import data
from disent_bench._io import atomic_write_bytes, atomic_write_json
from disent_bench.errors import UserError
from disent_bench.executors.local import OverallProgress
from disent_bench.grid import RunSpec
from disent_bench.progress import say
from disent_bench.run_store import CHECKPOINT, CONFIG, DONE, ERROR, METRICS, claim, is_done, run_dir
from disent_bench.runner import RunOutcome, available_cpus, execute_pack, make_packs
from disent_bench.train.checkpoint import checkpoint_step
from disent_bench.train.train_log import LOG_NAME

__all__ = ["RayExecutor", "INSTALL_HINT"]

INSTALL_HINT = 'pip install "disent-bench[ray]"'

#: File in the results directory holding the driver's token; a worker that reads the same token shares
#: the driver's file system.
SHARED_TOKEN_FILE = ".ray-driver-token"
TRAIN_LOG = LOG_NAME
#: What a worker without the shared file system sends back, in the order the driver writes it.
RUN_FILES = (CONFIG, TRAIN_LOG, CHECKPOINT, METRICS, ERROR, DONE)

# The worker's own data home setting, captured when a worker process first imports this module
# (before any task changes the environment).
_WORKER_DATA_ENV = os.environ.get("DISENT_BENCH_DATA")


def import_ray():
    """The ``ray`` module, or a UserError saying how to install it."""
    try:
        import ray
    except ImportError:
        raise UserError(f"--executor ray needs Ray, which is not installed; install it with: {INSTALL_HINT}") from None
    return ray


# -- the task (runs on a worker) --------------------------------------------------------------------
def _use_data_home(driver_data_home: str) -> None:
    """Point this worker at the driver's data home when it can see it, else at its own."""
    if Path(driver_data_home).is_dir():
        os.environ["DISENT_BENCH_DATA"] = driver_data_home
    elif _WORKER_DATA_ENV:
        os.environ["DISENT_BENCH_DATA"] = _WORKER_DATA_ENV
    else:
        # Not shared and not configured: synthetic data renders here; official data must be fetched
        # on the node (or DISENT_BENCH_DATA set before `ray start`).
        os.environ["DISENT_BENCH_DATA"] = str(Path(tempfile.gettempdir()) / "disent-bench-ray" / "datasets")


def shares_results_dir(out_dir: str, token: str) -> bool:
    """True when ``out_dir`` here holds the driver's ``token`` (i.e. this is the driver's file system).

    ``"*"`` means shared without looking, ``""`` never shared.
    """
    if token in ("", "*"):
        return token == "*"
    try:
        return (Path(out_dir) / SHARED_TOKEN_FILE).read_text(encoding="utf-8").strip() == token
    except (OSError, UnicodeDecodeError):
        return False


def scratch_results_dir(benchmark: str) -> Path:
    """Where a worker without the shared file system keeps runs while they train (on its own disk)."""
    return Path(tempfile.gettempdir()) / "disent-bench-ray" / benchmark


def _adopt_checkpoint(directory: Path, checkpoint: bytes) -> None:
    """Start from the driver's checkpoint unless this node already holds a later one."""
    local = directory / CHECKPOINT
    if local.is_file():
        probe = directory / f".{CHECKPOINT}.driver"
        atomic_write_bytes(probe, checkpoint)
        try:
            if _step_of(local) >= _step_of(probe):
                return
        finally:
            probe.unlink(missing_ok=True)
    atomic_write_bytes(local, checkpoint)


def _step_of(path: Path) -> int:
    """The step a checkpoint file holds; -1 when it cannot be read (a damaged one is never preferred)."""
    try:
        return checkpoint_step(path) or 0
    except UserError:
        return -1


def pack_task(runs_json: Sequence[Mapping[str, Any]], out_dir: str, token: str, data_home: str,
              checkpoints: Sequence[bytes | None], threads: int, wait: bool) -> dict[str, Any]:
    """A pack of runs (one run, or runs that train together: ``[benchmark] pack``) on a Ray worker.

    Returns ``{"outcomes", "files", "host", "pid", "shared"}``: an outcome per run, and per run its files
    as bytes when the worker does not share the results directory (the driver writes them), or None
    when it does (they are already in place).
    """
    torch.set_num_threads(max(1, threads))
    _use_data_home(data_home)
    runs = [RunSpec.from_json(run_json) for run_json in runs_json]
    info = {"host": socket.gethostname(), "pid": os.getpid()}
    if shares_results_dir(out_dir, token):
        outcomes = execute_pack(runs, out_dir, progress=False, wait=wait)
        return {"outcomes": [o.to_json() for o in outcomes], "files": [None] * len(runs), "shared": True, **info}

    scratch = scratch_results_dir(runs[0].benchmark)
    for run, checkpoint in zip(runs, checkpoints):
        if checkpoint is not None:
            directory = run_dir(scratch, run.id)
            directory.mkdir(parents=True, exist_ok=True)
            _adopt_checkpoint(directory, checkpoint)
    outcomes = execute_pack(runs, scratch, progress=False, wait=wait)
    files: list[dict[str, bytes] | None] = []
    for run, outcome in zip(runs, outcomes):
        directory = run_dir(scratch, run.id)
        files.append(None if outcome.status == "claimed" else
                     {name: (directory / name).read_bytes() for name in RUN_FILES if (directory / name).is_file()})
        if outcome.status in ("done", "skipped"):
            # The driver now has everything; free the node's disk.
            shutil.rmtree(directory, ignore_errors=True)
    return {"outcomes": [o.to_json() for o in outcomes], "files": files, "shared": False, **info}


# -- the driver -------------------------------------------------------------------------------------
def _store_returned_files(run: RunSpec, out_dir: Path, files: Mapping[str, bytes]) -> bool:
    """Write a non-sharing worker's files into the results directory (atomic, DONE last).

    Holds the run's lock while writing, and writes nothing when the run meanwhile finished here
    with the same evaluation (another driver or a local run did it). Returns True when it wrote.
    """
    directory = run_dir(out_dir, run.id)
    with claim(directory, wait=True):
        if is_done(directory, run):
            return False
        for name in RUN_FILES:
            if name in files and name != DONE:
                atomic_write_bytes(directory / name, files[name])
        if DONE in files:
            (directory / ERROR).unlink(missing_ok=True)
            atomic_write_bytes(directory / DONE, files[DONE])
    return True


def _check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """Fail fast on an address nothing listens on (Ray itself retries such a connection for minutes)."""
    if address == "auto" or address.startswith("local"):
        return
    hostport = address.split("://", 1)[-1].rstrip("/")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise UserError(f"--address {address!r} is not a Ray address; give HOST:PORT (e.g. 10.0.0.1:6379, "
                        "what `ray start --head` prints), ray://HOST:10001 or auto")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise UserError(f"cannot connect to the Ray cluster at {address!r} ({exc.strerror or exc}); start one "
                        "with `ray start --head` and pass the address it prints, or leave out --address "
                        "(and RAY_ADDRESS) to run on a Ray instance on this machine") from None


def _present_auth_token() -> None:
    """Make the driver present this machine's Ray token when joining a cluster.

    Recent Ray versions start clusters with token authentication (``~/.ray/auth_token``) but a
    driver joining one by address only sends the token when ``RAY_AUTH_MODE=token``; without it the
    connection fails after a long retry. A token-mode driver also joins clusters that have
    authentication disabled, so this is safe; an explicit ``RAY_AUTH_MODE`` is left alone.
    """
    if os.environ.get("RAY_AUTH_MODE"):
        return
    token_path = os.environ.get("RAY_AUTH_TOKEN_PATH") or str(Path.home() / ".ray" / "auth_token")
    if os.environ.get("RAY_AUTH_TOKEN") or Path(token_path).is_file():
        os.environ["RAY_AUTH_MODE"] = "token"
        # Ray reads its configuration when imported; refresh it as Ray itself does after this change.
        try:
            from ray._raylet import Config

            Config.initialize("")
        except Exception:  # noqa: BLE001 - older Ray without token authentication: nothing to refresh
            pass


def _results_token(out_dir: Path) -> str:
    """The results directory's token (created once; concurrent drivers on one directory share it)."""
    path = out_dir / SHARED_TOKEN_FILE
    try:
        token = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        token = ""
    if len(token) != 32:
        token = secrets.token_hex(16)
        atomic_write_bytes(path, (token + "\n").encode())
    return token


def _record_lost_worker(run: RunSpec, out_dir: Path, error: BaseException, retries: int) -> str:
    """error.json for a run whose worker died more often than Ray retries it (when nobody holds it)."""
    message = (f"Ray worker died {retries + 1} time(s) running it ({type(error).__name__}); "
               "its last checkpoint is kept")
    directory = run_dir(out_dir, run.id)
    with claim(directory) as owned:
        if owned and not is_done(directory, run):
            atomic_write_json(directory / ERROR, {
                "run_id": run.id, "error_type": type(error).__name__, "error": message, "user_error": False,
                "traceback": str(error), "executor": "ray",
                "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                "hostname": socket.gethostname()})
    return message


class RayExecutor:
    """Executes runs as Ray tasks on a cluster (``address``) or on a local Ray instance it starts.

    Parameters
    ----------
    address:
        A Ray cluster address (``"HOST:6379"``, ``"ray://HOST:10001"`` or ``"auto"``); None uses
        ``RAY_ADDRESS`` when set, else starts a local instance.
    num_cpus, num_gpus:
        Size of the local instance (default: this machine's cores; GPUs auto-detected). Ignored when
        joining a cluster.
    max_retries:
        How often Ray re-runs a task whose worker process or node died.
    object_store_memory:
        Bytes of shared memory for the local instance's object store (results and checkpoints pass
        through it; they are small).
    shared_filesystem:
        None detects per worker whether it sees the results directory (the token file); False makes
        every worker train in its scratch directory and send the files back (e.g. a shared mount
        whose file locks do not work across nodes); True trusts that every worker shares it.
    """

    name = "ray"

    def __init__(self, address: str | None = None, *, num_cpus: int | None = None, num_gpus: int | None = None,
                 max_retries: int = 3, object_store_memory: int = 256 * 1024 ** 2,
                 shared_filesystem: bool | None = None, **_: object) -> None:
        import_ray()  # fail now, with the install hint, before anything runs
        if max_retries < 0:
            raise UserError(f"ray executor: max_retries must be >= 0, got {max_retries}")
        self.address = address or os.environ.get("RAY_ADDRESS") or None
        if self.address:
            _check_reachable(self.address)  # before anything is written
        self.num_cpus = num_cpus
        self.num_gpus = num_gpus
        self.max_retries = int(max_retries)
        self.object_store_memory = object_store_memory
        self.shared_filesystem = shared_filesystem

    # -- connecting ---------------------------------------------------------------------------------
    def _connect(self) -> bool:
        """Start or join Ray; returns True when this call initialised Ray (and so must shut it down)."""
        ray = import_ray()
        if ray.is_initialized():
            return False
        quiet = {"logging_level": logging.ERROR, "log_to_driver": False}
        if self.address:
            _present_auth_token()
            try:
                ray.init(address=self.address, **quiet)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise UserError(f"cannot connect to the Ray cluster at {self.address!r} ({exc}); if it uses token "
                                "authentication, copy its token to ~/.ray/auth_token here (or set RAY_AUTH_TOKEN); "
                                "else check the address `ray start --head` printed, or leave out --address "
                                "(and RAY_ADDRESS) to run on a Ray instance on this machine") from None
        else:
            ray.init(num_cpus=self.num_cpus or available_cpus(), num_gpus=self.num_gpus,
                     include_dashboard=False, object_store_memory=self.object_store_memory, **quiet)
        return True

    # -- resources ----------------------------------------------------------------------------------
    @staticmethod
    def _largest_node() -> dict[str, float]:
        ray = import_ray()
        best: dict[str, float] = {"CPU": 0.0, "GPU": 0.0}
        for node in ray.nodes():
            if node.get("Alive", True):
                resources = node.get("Resources", {})
                for key in best:
                    best[key] = max(best[key], float(resources.get(key, 0.0)))
        return best

    def task_resources(self, run: RunSpec, node: Mapping[str, float]) -> dict[str, float]:
        """``num_cpus``/``num_gpus`` of a run's task: the grid's values, else 1 CPU and 1 GPU if the
        cluster has GPUs (none for a run with ``device = "cpu"``)."""
        resources = run.resources or {}
        gpus = resources.get("gpus_per_run")
        cpus = resources.get("cpus_per_run")
        if gpus is None:
            # A run pinned to the CPU (or to Apple's mps, which Ray does not schedule) takes no GPU.
            wants_gpu = run.device == "auto" or run.device.startswith("cuda")
            gpus = 1.0 if wants_gpu and node.get("GPU", 0) >= 1 else 0.0
        gpus = float(gpus)
        cpus = float(cpus) if cpus is not None else 1.0
        where = f"the Ray cluster at {self.address}" if self.address else "this machine's Ray instance"
        if gpus > node.get("GPU", 0):
            raise UserError(f"[benchmark] gpus_per_run = {gpus:g} but no node of {where} has that many GPUs "
                            f"(largest: {node.get('GPU', 0):g}); lower gpus_per_run or add GPU nodes")
        if cpus > node.get("CPU", 0):
            raise UserError(f"[benchmark] cpus_per_run = {cpus:g} but no node of {where} has that many CPUs "
                            f"(largest: {node.get('CPU', 0):g}); lower cpus_per_run")
        return {"num_cpus": cpus, "num_gpus": gpus}

    def _slots(self, runs: Sequence[RunSpec], node: Mapping[str, float]) -> int:
        """About how many runs the cluster trains at once (for the ETA only)."""
        ray = import_ray()
        if not runs:
            return 1
        total = ray.cluster_resources()
        need = self.task_resources(runs[0], node)
        slots = int(total.get("CPU", 1) // max(need["num_cpus"], 1e-9))
        if need["num_gpus"] > 0:
            slots = min(slots, int(total.get("GPU", 0) // need["num_gpus"]))
        return max(1, min(slots, len(runs)))

    # -- running ------------------------------------------------------------------------------------
    def run(self, runs: Sequence[RunSpec], out_dir: Path, *, jobs: int | None = None, progress: bool = True) -> list[RunOutcome]:
        """Execute ``runs`` (``jobs`` is ignored: the cluster's resources decide how many run at once)."""
        ray = import_ray()
        out_dir = Path(out_dir).resolve()
        out_dir.mkdir(parents=True, exist_ok=True)
        token = _results_token(out_dir)
        if self.shared_filesystem is False:
            token = ""  # no worker matches an empty token: all send their files back
        elif self.shared_filesystem is True:
            token = "*"
        data_home = str(data.data_home().resolve())

        started = self._connect()
        try:
            node = self._largest_node()
            overall = OverallProgress(runs, self._slots(runs, node))
            outcomes, todo = overall.skip_finished(runs, out_dir)
            if progress:
                resources = ray.cluster_resources()
                say(f"ray: {len(todo)} of {len(runs)} runs to do on {int(resources.get('CPU', 0))} CPUs and "
                    f"{int(resources.get('GPU', 0))} GPUs ({'cluster ' + self.address if self.address else 'local instance'})")
            outcomes.update(self._execute(todo, out_dir, token, data_home, node, overall, wait=False))
            claimed = [run for run in todo if outcomes[run.id].status == "claimed"]
            if claimed:
                say(f"revisiting {len(claimed)} run(s) claimed by another process (waiting for their locks)")
                outcomes.update(self._execute(claimed, out_dir, token, data_home, node, overall, wait=True))
            return [outcomes[run.id] for run in runs]
        finally:
            if started:
                ray.shutdown()

    def _execute(self, runs: Sequence[RunSpec], out_dir: Path, token: str, data_home: str,
                 node: Mapping[str, float], overall: Any, *, wait: bool) -> dict[str, RunOutcome]:
        ray = import_ray()
        task = ray.remote(pack_task)
        pending: dict[Any, list[RunSpec]] = {}
        outcomes: dict[str, RunOutcome] = {}
        packs = make_packs(list(runs))
        # Validate every run's resources before submitting any.
        resources = {run.id: self.task_resources(run, node) for run in runs}
        try:
            for pack in packs:
                checkpoints = []
                for run in pack:
                    checkpoint_path = run_dir(out_dir, run.id) / CHECKPOINT
                    checkpoints.append(checkpoint_path.read_bytes() if checkpoint_path.is_file() else None)
                res = resources[pack[0].id]  # a pack's runs share their settings, so their resources
                name = pack[0].id if len(pack) == 1 else f"{pack[0].id}+{len(pack) - 1}"
                ref = task.options(num_cpus=res["num_cpus"], num_gpus=res["num_gpus"],
                                   max_retries=self.max_retries, retry_exceptions=False,
                                   name=f"disent-bench:{name}").remote(
                    [run.to_json() for run in pack], str(out_dir), token, data_home, checkpoints,
                    max(1, int(res["num_cpus"])), wait)
                pending[ref] = pack
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
                for ref in ready:
                    pack = pending.pop(ref)
                    for outcome in self._collect(ray, ref, pack, out_dir):
                        overall.record(outcome)
                        outcomes[outcome.run_id] = outcome
                        say(overall.line(outcome))
        except KeyboardInterrupt:
            self._cancel(ray, pending)
            raise
        return outcomes

    def _collect(self, ray: Any, ref: Any, pack: Sequence[RunSpec], out_dir: Path) -> list[RunOutcome]:
        """The outcomes of a finished task, one per run of its pack; writes a non-sharing worker's files
        into the results."""
        try:
            reply = ray.get(ref)
        except ray.exceptions.TaskCancelledError:
            return [RunOutcome(run.id, "failed", error="cancelled") for run in pack]
        except (ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError,
                ray.exceptions.OutOfMemoryError) as exc:
            return [RunOutcome(run.id, "failed", error=_record_lost_worker(run, out_dir, exc, self.max_retries))
                    for run in pack]
        except ray.exceptions.RayError as exc:
            # Not a failure of the runs themselves (execute_pack records those): e.g. disent_bench missing
            # on the worker, or an object lost with its node.
            first_line = str(exc).strip().splitlines()[-1] if str(exc).strip() else ""
            return [RunOutcome(run.id, "failed", error=f"ray task failed: {type(exc).__name__}: {first_line}")
                    for run in pack]
        outcomes = []
        for run, outcome_json, files in zip(pack, reply["outcomes"], reply["files"]):
            outcome = RunOutcome(**outcome_json)
            outcome.extra = {**outcome.extra, "executor": "ray", "host": reply["host"], "pid": reply["pid"],
                             "shared_filesystem": reply["shared"]}
            if files is not None and outcome.status != "claimed":
                _store_returned_files(run, out_dir, files)
                if outcome.status == "skipped":
                    # Finished on the worker's disk by an earlier attempt; new to the results directory.
                    outcome.status = "done"
            outcomes.append(outcome)
        return outcomes

    @staticmethod
    def _cancel(ray: Any, pending: Mapping[Any, Sequence[RunSpec]]) -> None:
        """Ctrl-C: stop every outstanding task (a KeyboardInterrupt inside it), and give them a moment."""
        if not pending:
            return
        say(f"interrupted: cancelling {len(pending)} outstanding Ray task(s); checkpoints are kept")
        for ref in pending:
            try:
                ray.cancel(ref)
            except Exception:  # noqa: BLE001 - a task that just finished cannot be cancelled; fine
                pass
        deadline = time.monotonic() + 10.0
        remaining = list(pending)
        while remaining and time.monotonic() < deadline:
            _, remaining = ray.wait(remaining, num_returns=len(remaining), timeout=1.0)
