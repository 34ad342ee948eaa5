"""A newcomer's first hour: the quick recipe, every argument checked before anything runs, one-line errors, and
the threads setting honoured on every training path."""
import io
import json
from pathlib import Path

import pytest
import torch

from agents import predict, train, train_baseline, train_ddpg
from agents.cli import run_cli
from affect_env import PRESETS
from affect_env.progress import LOG_INTERVAL, progress_bar
from agents.config import TrainConfig, recipe
from agents.inputs import load_split, split_options
from agents.runs import train as train_run
from conftest import SMALL_SYNTHETIC

TINY = {"dataset_options": {k: list(v) if isinstance(v, tuple) else v for k, v in SMALL_SYNTHETIC.items()},
        "n_slots": 4, "memory_dim": 8, "net_arch": [32, 32], "predictor_hidden": [16], "batch_size": 32,
        "learning_starts": 100, "encoder": "pooling", "eval_every": 150, "checkpoint_every": 150,
        "jump_distance": 60, "device": "cpu", "pretrain_writer_epochs": 0}


def test_the_quick_recipe_is_the_default_method_on_a_small_budget():
    quick, default = recipe("quick"), recipe("default")
    assert quick.rmn == default.rmn and quick.memory == default.memory and quick.data == default.data
    assert quick.algorithm.timesteps <= default.algorithm.timesteps // 10
    assert 0 < quick.warm_start.pretrain_writer_epochs < default.warm_start.pretrain_writer_epochs
    assert 0 < quick.run.eval_every <= quick.algorithm.timesteps // 4  # several validations, not one at the end
    assert set(quick.overrides()) == set() and TrainConfig().update({"recipe": "quick"}) == quick


@pytest.mark.parametrize("main,args,message", [
    (train_ddpg.main, ["--n-slots", "0"], "n_slots must be a whole number >= 1, got 0"),
    (train_ddpg.main, ["--n-slots", "-3"], "n_slots must be a whole number"),
    (train_ddpg.main, ["--tau", "2"], "tau must lie in (0, 1], got 2.0"),
    (train_ddpg.main, ["--gamma", "1"], "gamma must lie in [0, 1)"),
    (train_ddpg.main, ["--timesteps", "0"], "timesteps must be a whole number >= 1, got 0"),
    (train_ddpg.main, ["--eval-every", "-1"], "eval_every must be a whole number >= 0"),
    (train_ddpg.main, ["--env", "CartPole-v1"], "env CartPole-v1: choose one of LiRISMemory-Short-v0"),
    (train_ddpg.main, ["--env", "LiRISMemory-Long-v0", "--dataset", "data/x"], "is a preset of the synthetic"),
    (train_ddpg.main, ["--algo", "sac"], "agents.train_ddpg trains the RMN"),
    (train.main, ["--algo", "sac", "--batch-size", "0"], "batch_size must be a whole number >= 1"),
    (train.main, ["--algo", "td3", "--init-from", "runs/x"], "init_from is for the RMN agent"),
    (train_baseline.main, ["--algo", "lstm", "--epochs", "0"], "epochs must be a whole number >= 1"),
    (train_baseline.main, ["--algo", "td3"], "choose a baseline"),
])
def test_bad_arguments_are_one_line_errors_before_anything_runs(main, args, message, tmp_path, capsys):
    out = tmp_path / "run"
    assert run_cli(main, [*args, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err
    assert not out.exists()  # nothing read, trained or written


def test_an_env_preset_sets_the_synthetic_movies_and_dataset_options_still_override():
    cfg = TrainConfig().update({"env": "LiRISMemory-Short-v0", "dataset_options": {"n_movies": [4, 2, 2]}}, "test")
    train = load_split(cfg, "train")
    assert len(train) == 4 and {len(m.targets) for m in train} == {100}
    assert split_options(TrainConfig(), "train") == dict(PRESETS["LiRISMemory-v0"])  # the default movies


def test_a_bad_config_file_names_the_file_and_the_field(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("n_slots: 4\nrefresh_every: -2\n")
    assert run_cli(train_ddpg.main, ["--config", str(bad), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert str(bad) in err and "refresh_every must be a whole number >= 0" in err
    bad.write_text("n_slots: [4\n")
    assert run_cli(train_ddpg.main, ["--config", str(bad), "--out", str(tmp_path / "r")]) == 2
    assert f"error: {bad}: not valid YAML" in capsys.readouterr().err


def test_a_budget_without_updates_is_said_and_the_run_still_validates_its_model(tmp_path, capsys):
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps(TINY))
    out = tmp_path / "run"
    assert run_cli(train_ddpg.main, ["--config", str(config), "--timesteps", "100", "--out", str(out),
                                     "--no-progress"]) == 0
    captured = capsys.readouterr()
    assert "warning: learning_starts (100) >= timesteps (100)" in captured.err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["updates"] == 0 and "the model of step 100" in summary["selected"]


def test_threads_are_honoured_by_the_stock_algorithms_and_the_baselines(tmp_path):
    for algo in ("td3", "segment"):
        torch.set_num_threads(2)
        cfg = TrainConfig().update({**TINY, "algo": algo, "threads": 1, "timesteps": 150, "epochs": 1,
                                    "out": str(tmp_path / algo)})
        train_run(cfg, progress=False)
        assert torch.get_num_threads() == 1, algo


def test_a_truncated_model_file_is_one_line_naming_it(tmp_path, capsys):
    out = tmp_path / "run"
    train_run(TrainConfig().update({**TINY, "timesteps": 150, "out": str(out)}), progress=False)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "model.zip").write_bytes((out / "model.zip").read_bytes()[:100_000 // 50])
    code = run_cli(predict.main, [str(broken), "--input", str(Path(__file__).parent / "data" / "ceap360vr_subset"),
                                  "--output", str(tmp_path / "p")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and str(broken / "model.zip") in err[0] and "not a readable RMN model" in err[0]


def test_progress_in_a_log_file_is_plain_lines(tmp_path, capsys):
    """Where the output is not a terminal (a log file), training progress is one plain line per tenth of the run."""
    train_run(TrainConfig().update({**TINY, "timesteps": 200, "out": str(tmp_path / "run")}), progress=True)
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("step ")]
    assert lines[0].startswith("step 20/200 (10%)") and lines[-1].startswith("step 200/200 (100%)")
    assert len(lines) == 10 and all("elapsed, about" in line for line in lines)


def test_progress_bars_redraw_rarely_where_the_output_is_a_log_file():
    """Encoder pretraining, prediction, extraction... use tqdm bars: ten redraws a second in a terminal, but in a log
    file every redraw stays, so there a bar is redrawn at most every LOG_INTERVAL seconds."""

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    in_file, in_terminal = progress_bar(range(3), file=io.StringIO()), progress_bar(range(3), file=Terminal())
    assert in_file.mininterval == LOG_INTERVAL and in_terminal.mininterval == 0.1
    assert progress_bar(range(3), file=io.StringIO(), mininterval=1).mininterval == 1  # an explicit value wins
    for bar in (in_file, in_terminal):
        assert list(bar) == [0, 1, 2]
    log = io.StringIO()
    bar = progress_bar(range(3), file=log)
    drawn = log.getvalue()
    for _ in bar:
        bar.set_postfix(val_mse=0.5)  # a new postfix waits for the next timed redraw in a log file
    assert log.getvalue().count("val_mse") <= 1 and log.getvalue().startswith(drawn)
