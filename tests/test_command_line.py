"""The experiment scripts' command line: every config field is a flag with its dataclass
default and description, and flagfiles are found by name from any working directory."""
from __future__ import annotations

import dataclasses
import os
import subprocess
import sys

import pytest
from absl import flags
from conftest import REPO

from pixelrnn_jax import ModelConfig, cli
from pixelrnn_jax.training import TrainConfig

EXPERIMENTS = REPO / "experiments"
# small and quick: 16x16 frames build in seconds, zero epochs still evaluate and write results
QUICK = ["--frame_size=16", "--num_epochs=0", "--max_videos=24", "--batch_size=4"]


def _env():
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env.update(JAX_PLATFORMS="cpu", PYTHONPATH=str(REPO))
    return env


def test_every_config_field_is_a_flag_with_its_default_and_description():
    fv = flags.FlagValues()
    cli.define_config_flags(TrainConfig, flag_values=fv)
    fields = [f for f in dataclasses.fields(ModelConfig)] + \
        [f for f in dataclasses.fields(TrainConfig) if f.name != "model"]
    for f in fields:
        assert f.name in fv, f.name
        assert fv[f.name].default == f.default, f.name
        assert fv[f.name].help and fv[f.name].help != "(no help available)", f.name
    fv(["prog", "--K=8", "--num_frames=8", "--plateau_factor=0.25", "--noexport_weights",
        "--init_from=somewhere"])
    config = cli.config_from_flags(TrainConfig, fv)
    assert config.model.K == 8 and config.num_frames == 8 and config.plateau_factor == 0.25
    assert config.export_weights is False and config.init_from == "somewhere"
    assert config.model.cnn_layers == ModelConfig.cnn_layers


def test_flagfiles_expand_nested_and_beside_the_script(tmp_path):
    (tmp_path / "a.flags").write_text("# a comment\n--K=8\n\n--flagfile=b.flags\n")
    (tmp_path / "b.flags").write_text("// also a comment\n--num_frames=8\n")
    other = tmp_path / "elsewhere"
    other.mkdir()
    cwd = os.getcwd()
    try:
        os.chdir(other)   # neither file is in the working directory: found beside the script
        assert cli.expand_flagfiles(["--flagfile=a.flags", "--seed=3"], tmp_path) == [
            "--K=8", "--num_frames=8", "--seed=3"]
    finally:
        os.chdir(cwd)
    (tmp_path / "loop.flags").write_text("--flagfile=loop.flags\n")
    with pytest.raises(ValueError, match="includes itself"):
        cli.expand_flagfiles(["--flagfile=loop.flags"], tmp_path)
    with pytest.raises(FileNotFoundError, match="the flagfiles in .*: a.flags, b.flags"):
        cli.expand_flagfiles(["--flagfile=c.flags"], tmp_path)


@pytest.mark.parametrize("cwd,flagfile", [
    (REPO, "gesture.flags"),
    # nested flagfiles are expanded by the unit tests above; the whole command is slow
    pytest.param(EXPERIMENTS, "gesture_sensornoise.flags", marks=pytest.mark.slow)])
def test_the_quickstart_command_as_written(tmp_path, cwd, flagfile):
    """`python experiments/train.py --flagfile=gesture.flags` from the repository root (the
    design card's command), and a nested flagfile from inside experiments/."""
    proc = subprocess.run([sys.executable, str(EXPERIMENTS / "train.py"),
                           f"--flagfile={flagfile}", *QUICK, f"--data_dir={tmp_path}/tfds",
                           f"--workdir={tmp_path}/run"], cwd=cwd, env=_env(),
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "run" / "results.json").exists()
    assert "test_accuracy" in proc.stdout


def test_every_flagfile_states_its_command_and_result():
    for path in sorted(EXPERIMENTS.glob("*.flags")):
        head = [ln for ln in path.read_text().splitlines() if ln.startswith("#")]
        assert any(f"--flagfile={path.name}" in ln for ln in head), path.name
        assert any("Measured" in ln or "measured" in ln for ln in head), path.name
