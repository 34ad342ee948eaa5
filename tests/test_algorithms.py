"""Other RL algorithms on LiRISMemory-v0: ``agents.train --algo``, the zoo hyperparameter file and wrapper."""
import inspect
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from affect_env.data import load_dataset
from affect_env.encoder import SegmentEncoder
from agents.cli import run_cli
from agents.config import LEAF_PATHS, STOCK_ALGORITHMS, TrainConfig
from agents.rmn.factory import evaluate_rmn
from agents.runs import load_model_file, train
from agents.sb3_algorithms import (HYPERPARAMS_FILE, ZOO_NAMES, algorithm_class, algorithm_config,
                                   evaluate_policy_on, evaluation_env, load_predictor, predict_movies)
from agents.train import main as train_main
from agents.zoo import main as zoo_main

ALGORITHMS = ("rmn", *STOCK_ALGORITHMS)  # the RL algorithms (the supervised baselines are tested on their own)

ROOT = Path(__file__).resolve().parents[1]
TINY_DATA = {"n_movies": [4, 2, 2], "length": 240, "dependency_distance": 200, "intro_span": 10}
TINY_ENV_KWARGS = ["dataset_options:" + repr(TINY_DATA).replace(" ", ""), "n_slots:4", "memory_dim:8"]
# short rollouts so the on-policy algorithms update within a few hundred steps
TINY_HYPERPARAMS = {"ppo": {"n_steps": 100, "batch_size": 50, "n_epochs": 2},
                    "recurrentppo": {"n_steps": 100, "batch_size": 50, "n_epochs": 2,
                                     "policy_kwargs": {"lstm_hidden_size": 16}},
                    "a2c": {"n_steps": 10},
                    "rmn": {"train_freq": 3}}


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_config(algo: str, out: Path) -> TrainConfig:
    base = TrainConfig().update(dict(
        dataset_options=dict(TINY_DATA), n_slots=4, memory_dim=8, net_arch=(32, 32), predictor_hidden=(16,),
        encoder="pooling", timesteps=200, learning_starts=50, batch_size=32, eval_every=100, checkpoint_every=100,
        device="cpu", seed=0, pretrain_writer_epochs=0, out=str(out)))
    keep = set(base.flat()) - {"train_freq", "gradient_steps", "learning_rate"}
    return algorithm_config(algo, base, keep)


def _csv_predictions(run: Path, test) -> list:
    names = test.target_names
    return [pd.read_csv(run / "predictions" / f"{m.movie_id}.csv")[[f"{n}_pred" for n in names]].to_numpy()
            for m in test]


@pytest.mark.parametrize("algo", ALGORITHMS)
def test_each_algorithm_trains_evaluates_and_reloads(algo, tmp_path):
    run = tmp_path / algo
    hyperparams = TINY_HYPERPARAMS.get(algo)
    cfg = tiny_config(algo, run)
    if algo == "rmn":  # config fields, not constructor arguments
        cfg, hyperparams = cfg.update(hyperparams), None
    summary = train(cfg, hyperparams=hyperparams, progress=False)

    assert summary["algo"] == algo and summary["timesteps"] >= 200
    test = load_dataset("synthetic", "test", **TINY_DATA)
    metrics = pd.read_csv(run / "metrics.csv")
    assert metrics["scope"].tolist() == ["global"] + [m.movie_id for m in test]
    assert np.isclose(metrics.loc[0, "mse"], summary["test_mse"])
    assert np.isfinite(summary["test_gap_closed"]) and np.isfinite(summary["test_valence_pcc"])
    for name in ("predictions.png", "memory_attention.png", "training_curves.png", "error_by_position.png"):
        assert (run / "figures" / name).stat().st_size > 0
    assert pd.read_csv(run / "error_by_position.csv")["movies"].iloc[0] == len(test)
    log = pd.read_csv(run / "eval_log.csv")
    assert log["timesteps"].tolist()[:2] == [100, 200] and np.isfinite(log["mse"]).all()
    assert (run / "checkpoint" / "model.zip").exists() and TrainConfig.load(run / "config.json").algo == algo
    saved = _csv_predictions(run, test)
    assert all(p.shape == (len(m), 2) for p, m in zip(saved, test))

    # the saved run reloads and predicts the same
    if algo == "rmn":
        _, results = evaluate_rmn(load_model_file(run, device="cpu"), test)
    else:
        assert summary["updates"] > 0  # it learned, not only collected
        model = algorithm_class(algo).load(run / "model.zip", device="cpu")
        config, encoder = TrainConfig.load(run / "config.json"), SegmentEncoder.load(run / "encoder.pt")
        predictor = load_predictor(run / "predictor.pt")
        _, results = evaluate_policy_on(model, evaluation_env(config, test, encoder, predictor))
        if algo in ("td3", "recurrentppo"):  # movies batched in lockstep = one at a time (recurrent state too)
            env = evaluation_env(config, test, encoder, predictor)
            one_by_one = predict_movies(model, env, batch_movies=1)
            for a, b in zip(one_by_one, results):
                np.testing.assert_allclose(a["prediction"], b["prediction"], rtol=1e-5, atol=1e-6)
        att = results[0]["attention"]
        assert att.shape == (len(test.movies[0]), 4) and np.allclose(att.sum(axis=1), 1.0, atol=1e-5)
    for result, csv in zip(results, saved):
        np.testing.assert_allclose(result["prediction"], csv, rtol=1e-5, atol=1e-6)


def test_cli_rejects_an_unknown_algorithm_listing_the_choices():
    proc = subprocess.run([sys.executable, "-m", "agents.train", "--algo", "dqn", "--no-progress"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "algo" in proc.stderr and "dqn" in proc.stderr and "Traceback" not in proc.stderr
    assert all(a in proc.stderr for a in ALGORITHMS)  # the choices are listed


def test_cli_bad_options_are_one_line_errors(tmp_path, capsys):
    assert run_cli(train_main, ["--algo", "td3", "--hyperparams", "n_stepz:5", "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "error: TD3 (td3) takes no argument n_stepz" and not (tmp_path / "b").exists()
    assert run_cli(train_main, ["--algo", "td3", "--long-val-options", "length=2000", "--out",
                                str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "error: command line: algo td3: long_val_options and select_on are for the RMN agent"
    assert not (tmp_path / "c").exists()


def test_cli_trains_with_per_algorithm_defaults_and_explicit_overrides(tmp_path, capsys):
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps({"dataset_options": TINY_DATA, "n_slots": 4, "memory_dim": 8, "net_arch": [16],
                                  "encoder": "pooling", "eval_every": 60, "checkpoint_every": 60}))
    out = tmp_path / "run"
    assert train_main(["--algo", "a2c", "--config", str(config), "--timesteps", "60", "--gamma", "0.95", "--out",
                       str(out), "--hyperparams", "n_steps:20", "--no-progress"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["run"] == str(out) and printed["algo"] == "a2c"
    saved = TrainConfig.load(out / "config.json").flat()
    a2c = yaml.safe_load(HYPERPARAMS_FILE.read_text())["a2c"]["LiRISMemory-v0"]
    assert saved["learning_rate"] == a2c["learning_rate"]  # the algorithm's default (not given)
    assert saved["net_arch"] == [16] and saved["gamma"] == 0.95 and saved["timesteps"] == 60  # given ones win
    assert json.loads((out / "hyperparams.json").read_text())["hyperparams"]["n_steps"] == 20
    assert (out / "predictor.pt").exists() and (out / "metrics.csv").exists()


def test_zoo_file_parses_and_names_every_algorithm():
    data = yaml.safe_load(HYPERPARAMS_FILE.read_text())
    assert set(ZOO_NAMES[a] for a in ALGORITHMS) <= set(data)
    assert data["LiRISMemory-v0"] == data["td3"]["LiRISMemory-v0"]  # what plain rl_zoo3 -conf reads
    zoo_only = {"policy", "n_timesteps", "noise_type", "noise_std"}
    for algo in ALGORITHMS:
        section = data[ZOO_NAMES[algo]]["LiRISMemory-v0"]
        cls = algorithm_class(algo)
        assert section["policy"] in cls.policy_aliases
        accepted = set(inspect.signature(cls.__init__).parameters) | (set(LEAF_PATHS) if algo == "rmn" else set())
        assert set(section) - zoo_only <= accepted, (algo, set(section) - zoo_only - accepted)
        cfg = algorithm_config(algo)
        assert cfg.algo == algo and cfg.algorithm.timesteps == section["n_timesteps"]
        if algo in STOCK_ALGORITHMS:
            assert list(cfg.memory.net_arch) == section["policy_kwargs"]["net_arch"]


def _zoo_argv(algo: str, log: Path, *extra: str) -> list:
    return ["--algo", algo, "--env", "LiRISMemory-v0", "-n", "160", "--num-threads", "1", "-f", str(log),
            "--seed", "0", "--eval-freq", "-1", "--env-kwargs", *TINY_ENV_KWARGS, *extra]


def test_plain_rl_zoo3_trains_td3_with_the_shipped_file(tmp_path, monkeypatch):
    from rl_zoo3.train import train

    monkeypatch.setattr(sys, "argv", ["rl_zoo3.train", *_zoo_argv("td3", tmp_path, "--gym-packages", "affect_env",
                                                                   "-conf", str(HYPERPARAMS_FILE),
                                                                   "-params", "learning_starts:50")])
    train()
    (model_zip,) = tmp_path.glob("td3/LiRISMemory-v0_*/LiRISMemory-v0.zip")
    model = algorithm_class("td3").load(model_zip, device="cpu")
    assert model.num_timesteps == 160 and model._n_updates > 0


def test_zoo_wrapper_trains_the_rmn(tmp_path):
    assert zoo_main(_zoo_argv("rmn", tmp_path, "-params", "learning_starts:50", "batch_size:32")) == 0
    (model_zip,) = tmp_path.glob("rmn/LiRISMemory-v0_*/LiRISMemory-v0.zip")
    model = algorithm_class("rmn").load(model_zip, device="cpu")
    assert model.num_timesteps == 160 and model._n_updates > 0
    used = yaml.unsafe_load(next(tmp_path.glob("rmn/LiRISMemory-v0_*/LiRISMemory-v0/config.yml")).read_text())
    assert dict(used)["policy"] == "RMNPolicy"
    assert dict(used)["policy_kwargs"]["memory"] == TrainConfig().to_dict()["memory"]  # the project's recipe
    assert dict(used)["recipe"] == TrainConfig().to_dict()["rmn"]
