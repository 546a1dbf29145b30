"""The grid file: parsing, every validation error (exit 2, nothing written), run expansion and stable ids."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from disent_bench.errors import UserError
from disent_bench.grid import expand, load_grid, parse_grid
from grid_helpers import tiny_grid

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-c", "from disent_bench.cli import main; main()"]

BASE = """
[benchmark]
name = "tiny"
seeds = [0, 1]
device = "cpu"

[train]
steps = 4
batch_size = 8
lr = 1e-3
latent_dim = 4
checkpoint_every = 2

[[datasets]]
name = "dsprites_tiny"
source = "synthetic"

[[models]]
name = "ae"

[[models]]
name = "beta_vae"
beta = [1, 4]
steps = 6

[eval]
metrics = ["mig", "reconstruction"]
preset = "quick"
representation = ["mean"]
[eval.mig]
num_train = 100
"""


def write(tmp_path: Path, text: str, name: str = "grid.toml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_parses_and_expands(tmp_path):
    grid = load_grid(write(tmp_path, BASE))
    assert grid.name == "tiny" and grid.seeds == [0, 1] and grid.device == "cpu"
    runs = expand(grid)
    # 1 dataset x (ae + beta_vae at 2 betas) x 2 seeds
    assert len(runs) == 6
    ids = [run.id for run in runs]
    assert len(set(ids)) == 6
    assert ids[0].startswith("dsprites_tiny-ae-s0-")
    assert any(i.startswith("dsprites_tiny-beta_vae-beta4-s1-") for i in ids)
    beta_runs = [run for run in runs if run.model["name"] == "beta_vae"]
    assert {run.train["steps"] for run in beta_runs} == {6}  # per-model override of [train]
    assert all(run.train["lr"] == 1e-3 and run.model["latent_dim"] == 4 for run in runs)
    assert runs[0].eval == {"metrics": ["mig", "reconstruction"], "preset": "quick", "representation": ["mean"],
                            "settings": {"mig": {"num_train": 100}}}
    assert grid.default_out == Path("results") / "tiny"


def test_seeds_as_integer_and_defaults(tmp_path):
    grid = load_grid(write(tmp_path, BASE.replace("seeds = [0, 1]", "seeds = 3")))
    assert grid.seeds == [0, 1, 2]


def test_run_ids_stable_and_ignore_non_semantic_settings(tmp_path):
    ids = {run.id for run in expand(load_grid(write(tmp_path, BASE)))}
    # Non-semantic: checkpoint/log intervals, device, benchmark name, order of entries and of keys,
    # 4 vs 4.0, 1e-3 vs 0.001, a default written out.
    reordered = """
        [eval]
        representation = "mean"
        preset = "quick"
        metrics = ["mig", "reconstruction"]
        mig = { num_train = 100 }

        [[models]]
        steps = 6
        beta = [4.0, 1]
        name = "beta_vae"

        [[models]]
        name = "ae"

        [[datasets]]
        source = "synthetic"
        name = "dsprites_tiny"

        [train]
        checkpoint_every = 3
        log_every = 1
        latent_dim = 4
        eps = 1e-8
        lr = 0.001
        batch_size = 8
        steps = 4

        [benchmark]
        seeds = [1, 0]
        device = "auto"
        name = "other"
        """
    text = reordered
    other = {run.id for run in expand(load_grid(write(tmp_path, text, "other.toml")))}
    assert other == ids
    # A non-core training setting counts only when it differs from the trainer's default.
    explicit = {run.id for run in expand(load_grid(write(tmp_path, BASE.replace("lr = 1e-3", "lr = 1e-3\ninit_from_seed = true"), "d.toml")))}
    assert explicit == ids
    changed = {run.id for run in expand(load_grid(write(tmp_path, BASE.replace("lr = 1e-3", "lr = 1e-3\ninit_from_seed = false"), "e.toml")))}
    assert not changed & ids
    # Semantic: a different lr changes every id; a new seed adds ids without changing the old ones.
    changed = {run.id for run in expand(load_grid(write(tmp_path, BASE.replace("lr = 1e-3", "lr = 2e-3"), "c.toml")))}
    assert not changed & ids
    more = {run.id for run in expand(load_grid(write(tmp_path, BASE.replace("seeds = [0, 1]", "seeds = [0, 1, 2]"),
                                                     "m.toml")))}
    assert ids < more


def test_id_is_stable_across_processes(tmp_path):
    path = write(tmp_path, BASE)
    code = ("import sys; from disent_bench.grid import load_grid, expand; "
            "print('\\n'.join(r.id for r in expand(load_grid(sys.argv[1]))))")
    env = {**os.environ, "PYTHONHASHSEED": "123"}
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, env=env,
                         check=True).stdout.split()
    assert out == [run.id for run in expand(load_grid(path))]


def test_list_of_train_values_expands_and_labels(tmp_path):
    text = BASE.replace('name = "ae"', 'name = "ae"\nlr = [1e-3, 1e-4]')
    runs = [r for r in expand(load_grid(write(tmp_path, text))) if r.model["name"] == "ae"]
    assert len(runs) == 4
    assert {r.train["lr"] for r in runs} == {1e-3, 1e-4}
    assert any("-lr0.0001-" in r.id for r in runs)


def test_slurm_and_resources_accepted(tmp_path):
    text = BASE.replace('device = "cpu"', 'device = "cpu"\ngpus_per_run = 0.5\ncpus_per_run = 2') + textwrap.dedent("""
        [slurm]
        partition = "gpu"
        time_min = 60
        gpus_per_node = 4
        array_parallelism = 8
        """)
    grid = load_grid(write(tmp_path, text))
    assert grid.resources == {"gpus_per_run": 0.5, "cpus_per_run": 2, "pack": "auto"}
    assert load_grid(write(tmp_path, BASE)).resources["cpus_per_run"] == 1  # the default
    assert grid.slurm["partition"] == "gpu"


BAD = [
    # (replace this, with this, expected words in the message)
    ('name = "tiny"', 'name = "tiny"\nsedes = 2', ["benchmark.sedes", "did you mean 'seeds'"]),
    ("seeds = [0, 1]", "seeds = []", ["benchmark.seeds", "empty"]),
    ("seeds = [0, 1]", 'seeds = "two"', ["benchmark.seeds"]),
    ("seeds = [0, 1]", "seeds = [0, 0]", ["benchmark.seeds", "twice"]),
    ('device = "cpu"', 'device = "gpu"', ["benchmark.device"]),
    ("steps = 4", 'steps = "4"', ["train.steps", "integer"]),
    ("steps = 4", "steps = 0", ["train.steps"]),
    ("lr = 1e-3", "lr = -1.0", ["train.lr"]),
    ("lr = 1e-3", "learning_rate = 1e-3", ["train.learning_rate", "unknown key"]),
    ('name = "dsprites_tiny"', 'name = "dsprite_tiny"', ["datasets[0].name", "did you mean 'dsprites_tiny'"]),
    ('source = "synthetic"', 'source = "synth"', ["datasets[0].source"]),
    ('name = "ae"', 'name = "autoencoder"', ["models[0].name", "unknown model"]),
    ('name = "ae"', 'name = "vea"', ["models[0].name", "did you mean 'vae'"]),
    ("beta = [1, 4]", "beta = [1, -4]", ["models[1].beta", "> 0"]),
    ("beta = [1, 4]", "beta = 0", ["models[1].beta", "> 0"]),
    ("beta = [1, 4]", "beta = []", ["models[1].beta", "empty"]),
    ("beta = [1, 4]", "beta = [4, 4.0]", ["models[1].beta", "twice"]),
    ("beta = [1, 4]", "beta = [1, 4]\ngamma = 3", ["models[1]", "gamma"]),
    ("beta = [1, 4]", "beta = [1, 4]\nstep = 3", ["models[1]", "did you mean 'steps'"]),
    ('name = "ae"', 'name = "ae"\nbeta = 4', ["models[0]", "takes no beta"]),
    ('name = "ae"', 'name = "nosuchpackage.mod:Model"', ["models[0]", "nosuchpackage"]),
    ('metrics = ["mig", "reconstruction"]', "metrics = []", ["eval.metrics", "empty"]),
    ('metrics = ["mig", "reconstruction"]', 'metrics = ["mgi"]', ["eval.metrics", "did you mean 'mig'"]),
    ('preset = "quick"', 'preset = "fast"', ["eval.preset"]),
    ('representation = ["mean"]', 'representation = ["median"]', ["eval.representation"]),
    ("num_train = 100", "num_trian = 100", ["eval.mig.num_trian", "did you mean 'num_train'"]),
    ("num_train = 100", "num_train = 0", ["eval.mig.num_train"]),
    ("[eval.mig]", "[eval.sap]", ["eval.sap", "does not include"]),
    ("[eval]", "[evaluation]", ["evaluation", "did you mean 'eval'"]),
]


@pytest.mark.parametrize("old,new,words", BAD, ids=[b[1].split("\n")[-1][:30] for b in BAD])
def test_validation_errors_name_file_and_key(tmp_path, old, new, words):
    assert old in BASE
    path = write(tmp_path, BASE.replace(old, new, 1))
    with pytest.raises(UserError) as info:
        load_grid(path)
    message = str(info.value)
    assert str(path) in message
    for word in words:
        assert word in message, message


def test_duplicate_runs_rejected(tmp_path):
    text = BASE.replace('[[models]]\nname = "ae"\n', '[[models]]\nname = "ae"\n\n[[models]]\nname = "ae"\n', 1)
    with pytest.raises(UserError, match="same run"):
        load_grid(write(tmp_path, text))


def test_structural_errors(tmp_path):
    with pytest.raises(UserError, match="not found"):
        load_grid(tmp_path / "missing.toml")
    with pytest.raises(UserError, match="not valid TOML"):
        load_grid(write(tmp_path, "[benchmark\nname=1"))
    with pytest.raises(UserError, match="no \\[\\[datasets\\]\\]"):
        load_grid(write(tmp_path, '[[models]]\nname = "ae"\n'))
    with pytest.raises(UserError, match="slurm.time_min"):
        parse_grid({"datasets": [{"name": "dsprites_tiny"}], "models": [{"name": "ae"}],
                    "slurm": {"time_min": "1h"}}, "x.toml")
    with pytest.raises(UserError, match="slurm.account"):
        parse_grid({"datasets": [{"name": "dsprites_tiny"}], "models": [{"name": "ae"}],
                    "slurm": {"account": "me"}}, "x.toml")
    with pytest.raises(UserError, match="gpus_per_run"):
        parse_grid({"benchmark": {"gpus_per_run": -1}, "datasets": [{"name": "dsprites_tiny"}],
                    "models": [{"name": "ae"}]}, "x.toml")


@pytest.mark.parametrize("command", [["run", "--grid"], ["run", "--dry-run", "--grid"]])
def test_cli_exit_2_and_nothing_written(tmp_path, command):
    path = write(tmp_path, BASE.replace("beta = [1, 4]", "beta = [1, -4]"))
    before = sorted(p.name for p in tmp_path.iterdir())
    proc = subprocess.run([*CLI, *command, str(path)], capture_output=True, text=True, cwd=tmp_path,
                          env={**os.environ, "DISENT_BENCH_DATA": str(tmp_path / "data")})
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("error: ") and "Traceback" not in proc.stderr
    assert "models[1].beta" in proc.stderr and str(path) in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no results/, no data/


def test_cli_missing_grid_file(tmp_path):
    proc = subprocess.run([*CLI, "run", "--grid", "nope.toml"], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 2 and "nope.toml" in proc.stderr and "not found" in proc.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("grid_file", ["benchmarks.toml", "grids/paper.toml", "grids/zoo.toml"])
def test_shipped_grids_are_valid(grid_file):
    grid = load_grid(ROOT / grid_file)
    runs = expand(grid)
    assert len(runs) >= 8
    models = {run.model["name"] for run in runs}
    assert {"ae", "beta_vae"} <= models
    assert len(grid.seeds) >= 2


def test_paper_grid_is_the_studys_whole_sweep():
    runs = expand(load_grid(ROOT / "grids/paper.toml"))
    sweeps = {"beta_vae": ("beta", [1, 2, 4, 6, 8, 16]), "annealed_vae": ("c_max", [5, 10, 25, 50, 75, 100]),
              "factor_vae": ("gamma", [10, 20, 30, 40, 50, 100]), "dip_vae_i": ("lambda_od", [1, 2, 5, 10, 20, 50]),
              "dip_vae_ii": ("lambda_od", [1, 2, 5, 10, 20, 50]), "beta_tc_vae": ("beta", [1, 2, 4, 6, 8, 10])}
    for name, (key, values) in sweeps.items():
        assert sorted({run.model["params"][key] for run in runs if run.model["name"] == name}) == values
    assert {run.train["steps"] for run in runs if run.model["name"] == "factor_vae"} == {150_000}
    assert {run.train["steps"] for run in runs if run.model["name"] != "factor_vae"} == {300_000}


def test_zoo_grid_has_every_family():
    from disent_bench import models

    runs = expand(load_grid(ROOT / "grids/zoo.toml"))
    built_in = {name for name in models.available() if models.resolve(name).__module__.startswith("disent_bench.")}
    on_images = {name for name in built_in if models.resolve(name).images_per_example() == 1}
    assert {run.model["name"] for run in runs} == on_images
    # The weakly-supervised families (trained on pairs) have grids of their own: all four in the GPU grid,
    # the two adaptive ones beside beta-VAE in the CPU companion; the correlated grids run on them too.
    weak = {run.model["name"] for run in expand(load_grid(ROOT / "grids/weak.toml"))}
    assert weak == (built_in - on_images) | {"beta_vae"}
    assert {run.model["name"] for run in expand(load_grid(ROOT / "grids/weak_cpu.toml"))} == {
        "beta_vae", "ada_gvae", "ada_ml_vae"}
    for name in ("correlated.toml", "correlated_cpu.toml"):
        assert all(run.dataset.get("correlations") or name == "correlated.toml"
                   for run in expand(load_grid(ROOT / "grids" / name)))


FAMILY_SWEEPS = """
[[models]]
name = "factor_vae"
gamma = [10, 20, 30]
steps = 3

[[models]]
name = "beta_tc_vae"
beta = [1, 6]

[[models]]
name = "dip_vae_i"
lambda_od = [1, 5]
lambda_d_factor = 2

[[models]]
name = "dip_vae_ii"
lambda_od = 10

[[models]]
name = "annealed_vae"
c_max = [5, 25]
iteration_threshold = 100
"""


def test_each_familys_hyper_parameter_expands(tmp_path):
    runs = expand(load_grid(write(tmp_path, BASE + FAMILY_SWEEPS)))
    ids = {run.id.rsplit("-", 1)[0] for run in runs}
    for expected in ("dsprites_tiny-factor_vae-gamma10-s0", "dsprites_tiny-factor_vae-gamma30-s1",
                     "dsprites_tiny-beta_tc_vae-beta6-s0", "dsprites_tiny-dip_vae_i-lambda_d_factor2-lambda_od5-s1",
                     "dsprites_tiny-dip_vae_ii-lambda_od10-s0",
                     "dsprites_tiny-annealed_vae-c_max25-iteration_threshold100-s0"):
        assert expected in ids
    factor = [run for run in runs if run.model["name"] == "factor_vae"]
    assert sorted({run.model["params"]["gamma"] for run in factor}) == [10, 20, 30]
    assert {run.train["steps"] for run in factor} == {3}
    assert len(runs) == 2 * (1 + 2 + 3 + 2 + 2 + 1 + 2)  # seeds x (ae, beta_vae, the five sweeps)


@pytest.mark.parametrize("entry, words", [
    ('name = "factor_vae"\ngamma = [10, -1]', ["models[2]", "gamma", "> 0"]),
    ('name = "dip_vae_i"\nlambda_od = 0', ["models[2]", "lambda_od", "> 0"]),
    ('name = "factor_vae"\ngama = 10', ["models[2]", "gama", "did you mean 'gamma'"]),
    ('name = "annealed_vae"\niteration_threshold = 0', ["models[2]", "iteration_threshold", ">= 1"]),
])
def test_bad_family_parameters_name_the_key(tmp_path, entry, words):
    with pytest.raises(UserError) as info:
        load_grid(write(tmp_path, BASE + "\n[[models]]\n" + entry + "\n"))
    for word in words:
        assert word in str(info.value)


def test_absurd_sizes_are_refused_before_anything_is_allocated(tmp_path, monkeypatch):
    """latent_dim in the hundreds of millions, a batch larger than the dataset: one line naming the key,
    and validation never builds the huge model (it would try to allocate ~300 GB)."""
    from disent_bench import models as registry

    built = []
    real_build = registry.build

    def watching_build(name, **kwargs):
        built.append(kwargs.get("latent_dim"))
        return real_build(name, **kwargs)

    monkeypatch.setattr(registry, "build", watching_build)
    with pytest.raises(UserError, match=r"train\.latent_dim: latent_dim = 100000000 gives about 5\.1e\+10 weights"):
        load_grid(tiny_grid(tmp_path / "latent.toml", train={"latent_dim": 100_000_000}))
    assert 100_000_000 not in built and set(built) <= {1, 2}
    with pytest.raises(UserError, match=r"train\.batch_size: batch_size = 1000000000 is larger than dsprites_tiny "
                                        r"\(1,536 images\); use 1\.\.1,536"):
        load_grid(tiny_grid(tmp_path / "batch.toml", train={"batch_size": 1_000_000_000}))
    load_grid(tiny_grid(tmp_path / "fine.toml", train={"latent_dim": 2048, "batch_size": 1536}))
    # Large but possible (about 40 GB of training state, for a big GPU): accepted, and not built here (10 GB).
    load_grid(tiny_grid(tmp_path / "large.toml", train={"latent_dim": 5_000_000}))
    assert 5_000_000 not in built and 2048 in built
