"""The study's search space (gamma through its horizon), its importances and summary, and the ablation's defaults
and resuming: fake objectives and a fake trainer, no training."""
import json
import math
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest

from agents.cli import run_cli
from agents.config import TrainConfig
from tuning import ablate_slots, importances, optimize
from tuning.optimize import SearchSpace, default_horizon_range

optuna.logging.set_verbosity(optuna.logging.WARNING)


def sample(space: SearchSpace, sampler: optuna.samplers.BaseSampler, n_trials: int,
           objective=lambda params, trial: 0.0) -> optuna.Study:
    """A study of ``n_trials`` on ``space`` whose objective is ``objective(config params, trial)``."""
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(lambda trial: objective(space.suggest(trial), trial), n_trials=n_trials)
    return study


@pytest.mark.parametrize("sampler", [optuna.samplers.RandomSampler(seed=3),
                                     optuna.samplers.TPESampler(seed=3, n_startup_trials=5)],
                         ids=["random", "tpe"])
def test_horizon_sampling_gives_gammas_whose_horizons_lie_in_the_range(sampler):
    low, high = 2.0, 100.0
    study = sample(SearchSpace(horizon=(low, high), n_slots=(1, 4)), sampler, 60,
                   objective=lambda p, t: -abs(math.log(1 / (1 - p["gamma"])) - 3.0))  # TPE: best near H = 20
    for t in study.trials:
        assert set(t.params) == {"tau", "horizon", "gamma", "n_slots"}
        assert low <= t.params["horizon"] <= high
        assert t.params["gamma"] == pytest.approx(1 - 1 / t.params["horizon"], abs=1e-12)
        assert low * (1 - 1e-9) <= 1 / (1 - t.params["gamma"]) <= high * (1 + 1e-9)
        assert t.distributions["horizon"].log and t.distributions["gamma"].single()  # gamma: recorded, not drawn
    # best_params holds the gamma a training run takes
    assert optimize.config_params(study.best_params)["gamma"] == study.best_params["gamma"]


def test_horizons_are_log_uniform_not_gamma_uniform():
    """Random draws of the horizon fill the four quarters of [log 2, log 400] evenly; a uniform gamma in
    [0.5, 0.999] would put four draws in five below H = 10 (the first quarter and a half)."""
    study = sample(SearchSpace(horizon=(2, 400)), optuna.samplers.RandomSampler(seed=0), 400)
    horizons = np.array([1 / (1 - t.params["gamma"]) for t in study.trials])
    quarter, _ = np.histogram(np.log(horizons), bins=4, range=(math.log(2), math.log(400)))
    assert (np.abs(quarter / len(horizons) - 0.25) < 0.06).all(), quarter
    assert 0.25 < (horizons < 10).mean() < 0.36  # log-uniform: log(10 / 2) / log(400 / 2) = 0.30, not 0.80
    assert np.median(horizons) == pytest.approx(math.sqrt(2 * 400), rel=0.25)


def test_gamma_range_samples_gamma_uniformly_without_a_horizon():
    study = sample(SearchSpace(gamma=(0.5, 0.999)), optuna.samplers.RandomSampler(seed=0), 200)
    gammas = np.array([t.params["gamma"] for t in study.trials])
    assert all("horizon" not in t.params for t in study.trials)
    assert ((0.5 <= gammas) & (gammas <= 0.999)).all()
    assert 0.4 < (gammas < 0.75).mean() < 0.6  # uniform: half the draws in the lower half
    assert not study.trials[0].distributions["gamma"].log


def test_horizon_and_gamma_ranges_exclude_each_other(capsys):
    with pytest.raises(ValueError, match="--horizon-range 2 50 and --gamma-range 0.5 0.9: give one of them"):
        SearchSpace(horizon=(2, 50), gamma=(0.5, 0.9))
    assert run_cli(optimize.main, ["--study", "x", "--horizon-range", "2", "50", "--gamma-range", "0.5", "0.9"]) == 2
    assert "--horizon-range 2.0 50.0 and --gamma-range 0.5 0.9: give one of them" in capsys.readouterr().err
    assert run_cli(optimize.main, ["--study", "x", "--horizon-range", "0.5", "50"]) == 2
    assert "--horizon-range 0.5 50.0: the horizon 1/(1 - gamma) must lie in [1, inf)" in capsys.readouterr().err
    assert run_cli(optimize.main, ["--study", "x", "--horizon-range", "50", "2"]) == 2
    assert "--horizon-range 50.0 2.0: give LOW HIGH with LOW <= HIGH" in capsys.readouterr().err


def test_default_horizon_range_is_the_train_movie_length():
    def space(*flags):
        return optimize.config_and_space(["--study", "s", *flags])[2]

    assert (space().horizon, space().gamma) == ((2.0, 400.0), None)  # LiRISMemory-v0: 400-segment movies
    assert space("--env", "LiRISMemory-Short-v0", "--recipe", "rl").horizon == (2.0, 100.0)
    assert space("--env", "LiRISMemory-Long-v0").horizon == (2.0, 2000.0)
    assert space("--dataset-options", "length=[300,500]").horizon == (2.0, 500.0)  # the longest movie
    assert space("--horizon-range", "5", "50").horizon == (5.0, 50.0)
    assert (space("--gamma-range", "0.9", "0.99").horizon, space("--gamma-range", "0.9", "0.99").gamma) == (
        None, (0.9, 0.99))
    assert default_horizon_range(TrainConfig().update({"train_dataset_options": {"length": 250}})) == (2.0, 250.0)
    assert default_horizon_range(TrainConfig().update({"dataset": "some/mediaeval"})) == (2.0, 1000.0)
    assert SearchSpace().horizon == optimize.DEFAULT_HORIZON_RANGE


def fake_study(n_trials: int, seed: int = 0, space: SearchSpace = SearchSpace(horizon=(2, 100), n_slots=(1, 8)),
               ) -> optuna.Study:
    """A study whose objective is set by the horizon alone (best at H = 20), with the study's user attributes."""
    study = sample(space, optuna.samplers.RandomSampler(seed=seed), n_trials,
                   objective=lambda p, t: 1.0 - abs(math.log(1 / (1 - p["gamma"]) / 20.0)))
    study.set_user_attr("objective", "gap_closed")
    return study


def test_importances_csv_png_and_summary_of_a_fake_study(tmp_path):
    study = fake_study(24)
    written = optimize.write_study_outputs(study, tmp_path)
    table = pd.read_csv(tmp_path / "param_importances.csv")
    assert set(table["parameter"]) == {"horizon", "tau", "n_slots"}  # gamma is fixed per trial: not ranked
    assert table["parameter"].iloc[0] == "horizon" and table["importance"].iloc[0] > 0.5
    assert table["importance"].sum() == pytest.approx(1.0)
    assert (table["n_trials"] == 24).all() and table["evaluator"].iloc[0] == importances.make_evaluator()[1]
    assert written["figures"]["param_importances"] == tmp_path / "param_importances.png"
    assert (tmp_path / "param_importances.png").stat().st_size > 1000
    best = study.best_params
    summary = (tmp_path / "summary.md").read_text()
    assert f"| tau | {best['tau']:.4g} |" in summary
    assert f"| gamma (lambda) | {best['gamma']:.6g} (horizon 1/(1 - gamma) = {best['horizon']:.4g} steps) |" in summary
    assert f"| N (n_slots) | {best['n_slots']} |" in summary
    assert "| horizon 1/(1-gamma) (log) | " in summary and "indicative" not in summary
    info = json.loads((tmp_path / "best_trial.json").read_text())
    assert info["importances"]["values"] == pytest.approx(dict(zip(table["parameter"], table["importance"])))
    cfg = TrainConfig.load(tmp_path / "best_params.json")  # the horizon is no config field: its gamma is
    assert (cfg.algorithm.gamma, cfg.algorithm.tau, cfg.memory.n_slots) == (best["gamma"], best["tau"],
                                                                            best["n_slots"])


@pytest.mark.parametrize("evaluator", ["fanova", "ped-anova"])
def test_each_importance_evaluator_ranks_the_horizon_first(tmp_path, evaluator):
    if evaluator == "fanova":
        pytest.importorskip("sklearn")
    result, _ = importances.write_importances(fake_study(40, seed=1), tmp_path, "gap_closed", evaluator)
    assert result.evaluator == evaluator and next(iter(result.values)) == "horizon"
    assert pd.read_csv(tmp_path / "param_importances.csv")["evaluator"].tolist() == [evaluator] * 3


def test_gamma_range_study_ranks_gamma(tmp_path):
    study = fake_study(12, space=SearchSpace(gamma=(0.5, 0.999), n_slots=(1, 8)))
    result, _ = importances.write_importances(study, tmp_path, "gap_closed")
    assert set(result.values) == {"gamma", "tau", "n_slots"} and result.note is None  # >= 10 trials: no caveat


def test_importances_are_skipped_with_a_note_when_too_few_trials_completed(tmp_path):
    small = fake_study(3)
    (tmp_path / "param_importances.csv").write_text("stale")
    written = optimize.write_study_outputs(small, tmp_path)
    note = written["figures"]["param_importances"]
    assert note.startswith("skipped: 3 completed trial(s), importances need at least 5")
    assert not (tmp_path / "param_importances.csv").exists() and not (tmp_path / "param_importances.png").exists()
    assert note in (tmp_path / "summary.md").read_text()
    medium = importances.param_importances(fake_study(7))
    assert medium.values and medium.note.startswith("indicative only: from 7 completed trials")


def fake_train(trained: list):
    """A trainer that writes a run's config.json and summary.json (metrics set by N and seed) and logs the run."""

    def train_fn(cfg: TrainConfig, **kwargs) -> dict:
        out = Path(cfg.run.out)
        out.mkdir(parents=True, exist_ok=True)
        cfg.save(out / "config.json")
        n, seed = cfg.memory.n_slots, cfg.run.seed
        summary = {"test_mse": 1.0 / n + 0.01 * seed, "test_gap_closed": 0.1 * math.log2(n) + 0.01 * seed,
                   "val_gap_closed": 0.0}
        (out / "summary.json").write_text(json.dumps(summary))
        trained.append((n, seed))
        return summary

    return train_fn


def test_ablation_trains_only_the_runs_not_finished(tmp_path):
    base = TrainConfig().update({"env": "LiRISMemory-Short-v0", "recipe": "rl", "timesteps": 100})
    trained: list = []
    first = ablate_slots.run_ablation(base, [1, 2], [0], tmp_path, progress=False, train_fn=fake_train(trained))
    assert trained == [(1, 0), (2, 0)] and not first["skipped"].any()
    trained.clear()
    again = ablate_slots.run_ablation(base, [1, 2, 4], [0, 1], tmp_path, progress=False,
                                      train_fn=fake_train(trained))
    assert trained == [(1, 1), (2, 1), (4, 0), (4, 1)]  # (1, 0) and (2, 0) were finished: read back
    assert again.loc[again["skipped"], ["n_slots", "seed"]].values.tolist() == [[1, 0], [2, 0]]
    assert pd.read_csv(tmp_path / "runs.csv")[["n_slots", "seed"]].values.tolist() == [
        [1, 0], [1, 1], [2, 0], [2, 1], [4, 0], [4, 1]]
    table = ablate_slots.write_ablation(again, tmp_path)
    assert table["test_gap_closed_mean"].tolist() == pytest.approx([0.005, 0.105, 0.205])
    markdown = (tmp_path / "ablation.md").read_text()
    assert "| 4 | 2 | " in markdown and "test_gap_closed mean ± std [min, max]" in markdown
    assert (tmp_path / "ablation.png").stat().st_size > 1000


def test_ablation_defaults_and_training_flags(monkeypatch, tmp_path):
    """N = 1 2 4 10 20 and seeds 0 1 2 by default; every training flag reaches the runs' config."""
    calls = []
    monkeypatch.setattr(ablate_slots, "run_ablation", lambda base, ns, seeds, out, **kw: calls.append(
        (base, ns, seeds, out)) or pd.DataFrame({"n_slots": [1], "seed": [0], "test_mse": [1.0]}))
    argv = ["--env", "LiRISMemory-Short-v0", "--recipe", "rl", "--timesteps", "3000", "--encoder-epochs", "1",
            "--out", str(tmp_path), "--no-progress"]
    assert run_cli(ablate_slots.main, argv) == 0
    ((base, ns, seeds, out),) = calls
    assert (tuple(ns), seeds, out) == ((1, 2, 4, 10, 20), [0, 1, 2], tmp_path)
    assert (base.env, base.recipe, base.algorithm.timesteps, base.encoding.encoder_epochs) == (
        "LiRISMemory-Short-v0", "rl", 3000, 1)
    assert base.algorithm.gamma == 0.995  # the rl recipe's
