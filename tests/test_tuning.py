"""Tuning: Optuna studies over tau/gamma/N (storage, workers, pruning, failures, outputs) and the N-ablation."""
import json
import multiprocessing
import os
import signal
import sys
import threading
import time
from pathlib import Path
from wsgiref.util import setup_testing_defaults

import optuna
import pandas as pd
import pytest
import torch
from optuna.trial import TrialState

from agents.cli import Command, parse_command, run_cli
from agents.config import TrainConfig, recipe
from agents.runs import train
from tuning import ablate_slots, optimize
from tuning.optimize import RMNObjective, SearchSpace, run_study
from tuning.storage import JOURNAL_PREFIX, fail_running_trials, make_storage, open_study, resolve_storage_url

TINY = dict(dataset_options={"n_movies": [4, 2, 2], "length": 240, "dependency_distance": 200, "intro_span": 10},
            memory_dim=8, net_arch=[32, 32], predictor_hidden=[32], encoder="pooling", timesteps=200,
            learning_starts=100, eval_every=100, batch_size=32, device="cpu", pretrain_writer_epochs=0)
SPACE = SearchSpace(n_slots=(1, 4))


def tiny(**changes) -> TrainConfig:
    """The default recipe with :data:`TINY` (and ``changes``) on top."""
    return recipe("default").update({**TINY, **changes}, "test")


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def crashing_train(cfg, **kwargs):
    raise RuntimeError("simulated crash in training")


@pytest.fixture(scope="module")
def study_dir(tmp_path_factory):
    """A study that lived through a crashing trial and a killed worker, then got 2 real trials."""
    out = tmp_path_factory.mktemp("study")
    base = tiny()
    hb = dict(heartbeat_interval=1, grace_period=2)
    study = run_study("tiny", base, out, n_trials=1, space=SPACE, progress=False, train_fn=crashing_train, **hb)
    assert [t.state for t in study.trials] == [TrialState.FAIL]
    # a worker killed mid-trial: its trial stays RUNNING with a last heartbeat that then goes stale
    killed = optuna.load_study(study_name="tiny", storage=make_storage(resolve_storage_url(None, out), **hb))
    with pytest.warns(UserWarning, match="Heartbeat"):  # ask() on a heartbeat storage: as a worker would
        trial = killed.ask()
    killed._storage.record_heartbeat(trial._trial_id)
    time.sleep(2.5)  # longer than the grace period: the heartbeat is stale
    run_study("tiny", base, out, n_trials=2, space=SPACE, progress=False, **hb)
    return out


def load(out, name="tiny"):
    return optuna.load_study(study_name=name, storage=resolve_storage_url(None, out))


def test_crashed_and_killed_trials_leave_the_study_resumable(study_dir):
    study = load(study_dir)
    states = [t.state for t in study.trials]
    # trial 0 raised, trial 1's worker was killed (failed by heartbeat), then 2 new trials completed
    assert states == [TrialState.FAIL, TrialState.FAIL, TrialState.COMPLETE, TrialState.COMPLETE]
    assert study.direction == optuna.study.StudyDirection.MAXIMIZE  # synthetic data has an oracle
    assert study.user_attrs["objective"] == "gap_closed"
    for t in study.trials[2:]:
        summary = json.loads((study_dir / "trials" / str(t.number) / "summary.json").read_text())
        assert t.value == pytest.approx(summary["val_gap_closed"])
        assert 1 <= t.params["n_slots"] <= 4
        assert sorted(t.intermediate_values) == [100, 200]  # reported every eval_every steps


def test_study_writes_all_outputs(study_dir):
    study = load(study_dir)
    trials = pd.read_csv(study_dir / "trials.csv")
    assert list(trials["state"]) == ["FAIL", "FAIL", "COMPLETE", "COMPLETE"]
    assert {"params_tau", "params_horizon", "params_gamma", "params_n_slots", "value"} <= set(trials.columns)
    best = json.loads((study_dir / "best_trial.json").read_text())
    assert best["number"] == study.best_trial.number
    assert best["value"] == max(t.value for t in study.trials if t.state == TrialState.COMPLETE)
    assert (best["direction"], best["objective"]) == ("maximize", "validation gap_closed")
    for name in ("optimization_history", "intermediate_values", "objective_vs_n_slots"):
        assert (study_dir / f"{name}.png").stat().st_size > 1000, name
    # two completed trials: no importances, and the summary says why
    assert not (study_dir / "param_importances.png").exists() and not (study_dir / "param_importances.csv").exists()
    assert best["importances"]["note"].startswith("skipped: 2 completed trial(s)")
    summary = (study_dir / "summary.md").read_text()
    assert f"best trial #{best['number']} of study `tiny`" in summary and best["importances"]["note"] in summary


def test_best_params_round_trip_into_training(study_dir, tmp_path):
    path = study_dir / "best_params.json"
    cfg = TrainConfig.load(path)
    study = load(study_dir)
    assert (cfg.algorithm.tau, cfg.algorithm.gamma, cfg.memory.n_slots) == tuple(
        study.best_params[k] for k in ("tau", "gamma", "n_slots"))
    assert cfg.memory.memory_dim == TINY["memory_dim"]
    assert cfg.run.checkpoint_every == TrainConfig().run.checkpoint_every
    # the trials' budget stays with the study: the best settings train for the recipe's budget
    assert cfg.algorithm.timesteps == TrainConfig().algorithm.timesteps != TINY["timesteps"]
    assert cfg.run.eval_every == TrainConfig().run.eval_every
    assert cfg.run.out == str(study_dir / "best")
    assert "run" in json.loads(path.read_text())  # nested, as a run's config.json
    # what `python -m agents.train_ddpg --config` reads, from the nested file and from the same fields flat
    flat = tmp_path / "flat.json"
    flat.write_text(json.dumps(cfg.flat()))
    for file in (path, flat):
        parsed = parse_command(Command, ["--config", str(file)], "python -m agents.train_ddpg", "",
                               defaults={"algo": "rmn"})
        assert parsed.train == cfg
    cfg = cfg.update({"out": str(tmp_path / "best"), "timesteps": 120, "eval_every": 0})
    summary = train(cfg, progress=False)
    assert summary["timesteps"] == 120
    assert TrainConfig.load(tmp_path / "best" / "config.json").memory.n_slots == study.best_params["n_slots"]


def test_optuna_dashboard_loads_the_storage(study_dir):
    import optuna_dashboard

    app = optuna_dashboard.wsgi(resolve_storage_url(None, study_dir))
    environ = {"PATH_INFO": "/api/studies", "REQUEST_METHOD": "GET"}
    setup_testing_defaults(environ)
    status = []
    body = b"".join(app(environ, lambda s, h, *a: status.append(s)))
    assert status[0].startswith("200")
    studies = json.loads(body)["study_summaries"]
    assert [s["study_name"] for s in studies] == ["tiny"]


def test_joining_with_other_settings_is_an_error(study_dir):
    other = tiny(timesteps=300)
    with pytest.raises(ValueError, match=r"timesteps=200 \(this run: 300\)"):
        run_study("tiny", other, study_dir, n_trials=0, space=SPACE, progress=False, write_outputs=False)


def test_pruner_stops_a_trial_through_on_eval(tmp_path):
    # the threshold is impossible to reach, so the first validation report must prune
    pruner = optuna.pruners.ThresholdPruner(lower=1e9)
    study = run_study("prune", tiny(), tmp_path, n_trials=1, space=SPACE, pruner=pruner,
                      progress=False)
    (trial,) = study.trials
    assert trial.state == TrialState.PRUNED
    assert list(trial.intermediate_values) == [100]
    assert not (tmp_path / "trials" / "0" / "summary.json").exists()  # training stopped at step 100
    assert not (tmp_path / "best_params.json").exists()  # nothing completed: no best to write


def test_pruning_callback_reports_and_raises():
    study = optuna.create_study(direction="minimize", pruner=optuna.pruners.ThresholdPruner(upper=1.0))
    trial = study.ask()
    on_eval = RMNObjective(TrainConfig(), SPACE, "unused", "mse").pruning_callback(trial)
    on_eval({"timesteps": 10, "mse": 0.5, "gap_closed": 0.1})
    with pytest.raises(optuna.TrialPruned, match="step 20"):
        on_eval({"timesteps": 20, "mse": 2.0, "gap_closed": 0.1})
    assert study._storage.get_trial(trial._trial_id).intermediate_values == {10: 0.5, 20: 2.0}


def _worker(argv):
    sys.exit(run_cli(optimize.main, argv))


@pytest.mark.parametrize("kind", ["sqlite", "journal"])
def test_two_workers_share_one_study(tmp_path, kind):
    """Two processes run the documented worker command (``python -m tuning.optimize`` with the same study)
    at the same moment; forked rather than spawned only to skip re-importing torch."""
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps({**TINY, "timesteps": 100, "learning_starts": 50, "eval_every": 100}))
    url = resolve_storage_url(None, tmp_path / "out") if kind == "sqlite" else f"journal:{tmp_path / 'journal.log'}"
    argv = ["--study", "shared", "--out", str(tmp_path / "out"), "--config", str(config), "--n-range", "1", "4",
            "--n-trials", "1", "--no-progress"] + ([] if kind == "sqlite" else ["--storage", url])
    ctx = multiprocessing.get_context("fork")
    workers = [ctx.Process(target=_worker, args=(argv + ["--sampler-seed", str(k)],)) for k in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=300)
        assert w.exitcode == 0
    study = optuna.load_study(study_name="shared", storage=make_storage(url))
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 2
    assert sorted(t.number for t in study.trials) == [0, 1]
    assert {p.name for p in (tmp_path / "out" / "trials").iterdir()} == {"0", "1"}
    assert TrainConfig.load(tmp_path / "out" / "best_params.json").memory.n_slots == study.best_params["n_slots"]


def _train_then_hang(cfg, *, on_eval, **kwargs):
    """The killed worker's training: the real one, held for good inside the trial right after its first validation
    report, so that the kill lands in the middle of a trial however fast the machine is."""

    def report_then_hang(row: dict) -> None:
        on_eval(row)
        while True:
            time.sleep(60)

    return train(cfg, on_eval=report_then_hang, **kwargs)


def _hanging_worker(argv):
    optimize.train = _train_then_hang  # in this forked worker only
    _worker(argv)


def _wait_for(find, what: str, alive=(), timeout: float = 300):
    """Poll ``find()`` until it returns something; fail naming ``what`` on timeout or when a process of ``alive``
    has exited meanwhile."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = find()
        if found:
            return found
        for process in alive:
            if process.exitcode is not None:
                pytest.fail(f"waiting for {what}: worker {process.pid} exited with {process.exitcode}")
        time.sleep(0.2)
    pytest.fail(f"timed out after {timeout} s waiting for {what}")


def _trials(storage, study_name: str) -> list:
    """The study's trials, ``[]`` while no worker has created the study yet."""
    try:
        study_id = storage.get_study_id_from_name(study_name)
    except KeyError:
        return []
    return storage.get_all_trials(study_id)


def test_workers_on_two_machines_share_a_postgresql_study(postgres_url, tmp_path, capfd):
    """The documented multi-machine setup on a real PostgreSQL server: two workers run `python -m tuning.optimize`
    with the same --storage URL at the same moment on a new database, each with its own --out (as on two machines,
    sharing no lock file). One is killed (SIGKILL) in the middle of a trial: its heartbeats stop, and once the grace
    period has passed the next worker that starts a trial marks it FAIL; the other worker's trials are unaffected,
    and every finished trial is in the database with the value its run wrote."""
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps({**TINY, "timesteps": 100, "learning_starts": 50, "eval_every": 50}))
    grace = 3
    argv = ["--study", "pg", "--storage", postgres_url, "--config", str(config), "--n-range", "1", "4",
            "--heartbeat-interval", "1", "--grace-period", str(grace), "--no-progress"]
    killed_out, survivor_out = tmp_path / "machine-a", tmp_path / "machine-b"
    ctx = multiprocessing.get_context("fork")
    victim = ctx.Process(target=_hanging_worker,
                         args=(argv + ["--out", str(killed_out), "--n-trials", "1", "--sampler-seed", "0"],))
    survivor = ctx.Process(target=_worker,
                           args=(argv + ["--out", str(survivor_out), "--n-trials", "2", "--sampler-seed", "1"],))
    victim.start()
    survivor.start()
    try:
        storage = make_storage(resolve_storage_url(postgres_url, tmp_path), heartbeat_interval=None)

        def victim_mid_trial():
            return [t for t in _trials(storage, "pg") if t.state == TrialState.RUNNING and t.intermediate_values
                    and t.user_attrs.get("run_dir", "").startswith(str(killed_out))]

        (killed,) = _wait_for(victim_mid_trial, "the first worker's trial to report", alive=(victim,))
        os.kill(victim.pid, signal.SIGKILL)
        killed_at = time.monotonic()
        victim.join(timeout=60)
        assert victim.exitcode == -signal.SIGKILL
        survivor.join(timeout=300)
        assert survivor.exitcode == 0  # its trials are unaffected by the other worker's death
    finally:
        for process in (victim, survivor):
            if process.is_alive():
                process.kill()
                process.join()
    # the surviving machine runs the same command again once the grace period has passed since the kill: its first
    # trial fails the dead worker's one (unless one of its first trials already did)
    time.sleep(max(0.0, killed_at + grace + 1 - time.monotonic()))
    assert run_cli(optimize.main, argv + ["--out", str(survivor_out), "--n-trials", "1", "--sampler-seed", "2"]) == 0

    study = optuna.load_study(study_name="pg", storage=resolve_storage_url(postgres_url, tmp_path))
    assert [t.number for t in study.trials] == [0, 1, 2, 3]
    dead = study.trials[killed.number]
    assert dead.state == TrialState.FAIL
    assert list(dead.intermediate_values) == [50]  # failed in the middle: after its first report, before the end
    assert not (killed_out / "trials" / str(killed.number) / "summary.json").exists()
    finished = [t for t in study.trials if t.number != killed.number]
    assert [t.state for t in finished] == [TrialState.COMPLETE] * 3
    for t in finished:
        run_dir = Path(t.user_attrs["run_dir"])
        assert run_dir.parent == survivor_out / "trials"
        assert t.value == pytest.approx(json.loads((run_dir / "summary.json").read_text())["val_gap_closed"])
        assert sorted(t.intermediate_values) == [50, 100]
    err = capfd.readouterr().err
    assert err.count(f"trial {killed.number} of study 'pg' marked FAIL: no heartbeat") == 1
    assert TrainConfig.load(survivor_out / "best_params.json").memory.n_slots == study.best_params["n_slots"]


def test_workers_on_several_machines_may_create_a_new_database_at_once(postgres_url, tmp_path):
    """Workers started at the same moment on a new PostgreSQL database, each with its own --out (no shared lock
    file): all of them open the one study, although their schema creations collide (retried)."""
    ctx = multiprocessing.get_context("fork")
    start = ctx.Barrier(4)

    def open_at_once(k: int) -> None:
        start.wait()
        study = open_study("race", resolve_storage_url(postgres_url, tmp_path), tmp_path / f"machine-{k}",
                           direction="minimize", user_attrs={"objective": "mse"})
        sys.exit(0 if study.user_attrs == {"objective": "mse"} else 1)

    workers = [ctx.Process(target=open_at_once, args=(k,)) for k in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=120)
    assert [w.exitcode for w in workers] == [0] * 4
    assert [s.study_name for s in optuna.get_all_study_summaries(resolve_storage_url(postgres_url, tmp_path))] == [
        "race"]


def test_database_errors_say_what_to_do(monkeypatch):
    """A database URL that cannot be used is one line naming the problem, never the password; a missing PostgreSQL
    driver names the package to install."""
    with pytest.raises(ValueError, match=r"cannot open the database: .*refused") as err:
        make_storage(resolve_storage_url("postgresql://optuna:s3cret@127.0.0.1:1/optuna", "."))
    assert "s3cret" not in str(err.value) and "optuna:***@" in str(err.value) and "\n" not in str(err.value)
    monkeypatch.setitem(sys.modules, "psycopg", None)  # as if not installed
    with pytest.raises(ValueError, match=r"driver is not installed .*pip install 'affect-rmn\[postgres\]'"):
        make_storage(resolve_storage_url("postgresql://optuna@db.example/optuna", "."))
    with pytest.raises(ValueError, match="--grace-period 1 with --heartbeat-interval 1: a live trial would be failed"):
        make_storage(JOURNAL_PREFIX + "unused", heartbeat_interval=1, grace_period=1)


@pytest.mark.parametrize("when", ["after training", "at a report"])
def test_a_worker_whose_trial_was_failed_meanwhile_stops_saying_why(tmp_path, when):
    """A worker that sent no heartbeat for longer than the grace period (paused, cut off from the database) finds
    its trial failed by another worker: it stops with one line saying so, not Optuna's internal assertion."""
    url = resolve_storage_url(None, tmp_path)

    def train_while_declared_dead(cfg, *, on_eval, **kwargs):
        fail_running_trials(optuna.load_study(study_name="stale", storage=url))  # what the other worker does
        if when == "at a report":
            on_eval({"timesteps": 100, "gap_closed": 0.1, "mse": 1.0})
        return {"val_gap_closed": 0.5}

    with pytest.raises(ValueError, match="trial 0 was marked FAIL by another worker while this one ran it"):
        run_study("stale", tiny(), tmp_path, n_trials=2, space=SPACE, progress=False, write_outputs=False,
                  train_fn=train_while_declared_dead)
    assert [t.state for t in load(tmp_path, "stale").trials] == [TrialState.FAIL]


def test_journal_running_trials_can_be_failed_explicitly(tmp_path):
    url = f"journal:{tmp_path / 'journal.log'}"
    study = open_study("j", url, tmp_path, direction="maximize")
    study.ask()  # a worker that died: journal storages have no heartbeats
    study = run_study("j", tiny(), tmp_path, storage=url, n_trials=0, fail_running=True,
                      progress=False)
    assert [t.state for t in study.trials] == [TrialState.FAIL]
    assert pd.read_csv(tmp_path / "trials.csv")["state"].tolist() == ["FAIL"]


def test_cli_rejects_fixing_a_tuned_field(capsys):
    assert run_cli(optimize.main, ["--study", "x", "--tau", "0.01"]) == 2
    assert "--tau 0.01: tuned by the study; set its range with --tau-range" in capsys.readouterr().err
    assert run_cli(optimize.main, ["--study", "x", "--gamma=0.9"]) == 2
    assert "--gamma 0.9: tuned by the study; set its range with --horizon-range (of 1/(1 - gamma)) or --gamma-range" \
        in capsys.readouterr().err
    assert run_cli(optimize.main, ["--study", "x", "--n-slots", "4"]) == 2
    assert "--n-slots 4: tuned by the study; set its range with --n-range" in capsys.readouterr().err
    assert run_cli(optimize.main, ["--study", "x", "--tau-range", "0.1", "0.01"]) == 2
    assert "--tau-range 0.1 0.01: give LOW HIGH" in capsys.readouterr().err
    assert run_cli(optimize.main, ["--study", "x", "--memory-dim", "8", "--tune-memory-dim"]) == 2
    assert "--memory-dim and --tune-memory-dim: give one of them" in capsys.readouterr().err
    assert run_cli(optimize.main, ["--study", "x", "--resume", "somewhere"]) == 2
    assert "--resume somewhere: a study resumes by running the same command again" in capsys.readouterr().err
    assert run_cli(ablate_slots.main, ["--n", "1", "2", "--n-slots", "4"]) == 2
    assert "--n-slots 4: the ablation sets N; give the sizes with --n" in capsys.readouterr().err


def test_cli_study_settings(tmp_path):
    """The search space and the trials' base config of the command line: eval_every is the flag's or the config
    file's, else timesteps // 5; the study directory is --out, else runs/tuning/<study>; a --config file may hold
    the tuned fields (a best_params.json as the base of another study): the study samples them."""
    args, cfg, space = optimize.config_and_space(
        ["--study", "s", "--timesteps", "1000", "--tau-range", "0.01", "0.02", "--n-range", "2", "3",
         "--tune-learning-rate", "--tune-batch-size", "16", "32", "--no-progress"])
    assert (cfg.run.eval_every, cfg.run.out, cfg.algorithm.timesteps, args.progress) == (200, "runs/tuning/s", 1000,
                                                                                         False)
    assert (space.tau, space.n_slots, space.horizon, space.gamma) == ((0.01, 0.02), (2, 3), (2.0, 400.0), None)
    assert (space.learning_rate, space.memory_dim, space.batch_size) == (optimize.DEFAULT_LR_RANGE, None, (16, 32))
    _, cfg, _ = optimize.config_and_space(["--study", "s", "--eval-every", "7", "--out", str(tmp_path)])
    assert (cfg.run.eval_every, cfg.run.out) == (7, str(tmp_path))
    config = tmp_path / "base.json"
    config.write_text(json.dumps({"algorithm": {"tau": 0.5, "timesteps": 500}, "run.eval_every": 50,
                                  "out": "elsewhere"}))
    _, cfg, _ = optimize.config_and_space(["--study", "s", "--config", str(config)])
    assert (cfg.algorithm.tau, cfg.run.eval_every, cfg.run.out) == (0.5, 50, "runs/tuning/s")
    with pytest.raises(ValueError, match="--eval-every 0: must be >= 1"):
        optimize.config_and_space(["--study", "s", "--eval-every", "0"])


def test_slot_ablation_table_plot_and_resume(tmp_path, capsys):
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps({**TINY, "timesteps": 100, "learning_starts": 50, "eval_every": 0}))
    argv = ["--n", "2", "1", "--seeds", "1", "--config", str(config), "--out", str(tmp_path / "abl"), "--no-progress"]
    assert run_cli(ablate_slots.main, argv) == 0
    printed = capsys.readouterr().out
    assert "| N | seeds | test_mse mean ± std [min, max] | test_gap_closed" in printed
    runs = pd.read_csv(tmp_path / "abl" / "runs.csv")
    assert runs[["n_slots", "seed"]].values.tolist() == [[1, 0], [2, 0]]
    for _, r in runs.iterrows():
        summary = json.loads((Path(r["run"]) / "summary.json").read_text())
        assert r["test_mse"] == pytest.approx(summary["test_mse"])
        assert TrainConfig.load(Path(r["run"]) / "config.json").memory.n_slots == r["n_slots"]
    table = pd.read_csv(tmp_path / "abl" / "ablation.csv")
    assert table["n_slots"].tolist() == [1, 2] and table["n_seeds"].tolist() == [1, 1]
    assert table["test_mse_mean"].tolist() == pytest.approx(runs["test_mse"].tolist())
    assert (tmp_path / "abl" / "ablation.png").stat().st_size > 1000
    # resuming: finished runs are read back, never retrained
    base = TrainConfig.load(config)
    again = ablate_slots.run_ablation(base, [1, 2], [0], tmp_path / "abl", progress=False, train_fn=crashing_train)
    assert again["skipped"].all()
    assert again["test_mse"].tolist() == pytest.approx(runs["test_mse"].tolist())
    # other settings in the same directory: an error, not a silent mix
    with pytest.raises(ValueError, match="n1_seed0: this run was trained with timesteps=100"):
        ablate_slots.run_ablation(base.update({"timesteps": 50}), [1], [0], tmp_path / "abl", progress=False)


def test_ablation_summary_statistics():
    runs = pd.DataFrame({"n_slots": [4, 4, 4, 1], "seed": [0, 1, 2, 0], "test_mse": [1.0, 2.0, 3.0, 5.0]})
    table = ablate_slots.summarize_ablation(runs, ["test_mse"])
    assert table["n_slots"].tolist() == [1, 4]
    row = table.iloc[1]
    assert (row["test_mse_mean"], row["test_mse_std"], row["test_mse_min"], row["test_mse_max"]) == (2.0, 1.0, 1.0, 3.0)
    assert pd.isna(table.iloc[0]["test_mse_std"])
    assert "| 1 | 1 | 5.0000 ± n/a [5.0000, 5.0000] |" in ablate_slots.markdown_table(table, ["test_mse"])


def test_objective_falls_back_to_mse_where_memory_has_nothing_to_buy():
    """gap_closed is undefined where the oracle is no better than the memory-less prediction: a study of such a
    synthetic set (every cause switched off) optimises the validation MSE, and asking for gap_closed is an error."""
    base = tiny()
    assert optimize.resolve_objective(base) == ("gap_closed", "maximize")
    flat = base.update({"dataset_options": {**TINY["dataset_options"], "genre_effect": 0.0, "arc_effect": 0.0,
                                            "character_effect": 0.0}})
    assert optimize.resolve_objective(flat) == ("mse", "minimize")
    with pytest.raises(ValueError, match="no gap"):
        optimize.resolve_objective(flat, "gap_closed")


def test_trials_share_one_encoder_and_one_writer_pretraining_per_setting(tmp_path):
    """The LSTM encoder is pretrained once for the study and the writer once per memory size, not once per trial:
    every trial starts from the shared files of its setting."""
    base = tiny(encoder="lstm", encoder_epochs=1, pretrain_writer_epochs=1, timesteps=120, eval_every=0)
    space = SearchSpace(n_slots=(2, 2), tau=(0.005, 0.05))  # one memory size, several tau
    study = run_study("shared", base, tmp_path, n_trials=2, space=space, progress=False)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 2
    shared = tmp_path / "shared"
    encoders = sorted(shared.glob("encoder-*/encoder.pt"))
    writers = sorted(shared.glob("writer-*/writer_pretrain/model.pt"))
    assert len(encoders) == 1 and len(writers) == 1
    for trial in study.trials:
        used = TrainConfig.load(Path(trial.user_attrs["run_dir"]) / "config.json")
        assert used.warm_start.init_from == str(writers[0].parent)
        assert not (Path(trial.user_attrs["run_dir"]) / "writer_pretrain").exists()  # not pretrained again
        assert not (Path(trial.user_attrs["run_dir"]) / "encoder_history.csv").exists()


def test_one_waiting_trial_goes_to_one_of_many_workers_popping_an_sqlite_study_at_once(tmp_path):
    """Workers pop an enqueued trial by reading that it is waiting and marking it running; on SQLite, which has no
    row locks, both must happen in one write transaction, or two workers read "waiting" and both run the trial."""
    url = resolve_storage_url(None, tmp_path)
    study = optuna.create_study(study_name="pops", storage=make_storage(url, heartbeat_interval=None))
    workers = [make_storage(url, heartbeat_interval=None) for _ in range(6)]  # one connection pool each
    for _ in range(8):
        study.enqueue_trial({"x": 0.0})
        trial_id = study.get_trials(deepcopy=False, states=(TrialState.WAITING,))[0]._trial_id
        barrier, won = threading.Barrier(len(workers)), []

        def pop(storage):
            barrier.wait()
            if storage.set_trial_state_values(trial_id, state=TrialState.RUNNING):
                won.append(storage)

        threads = [threading.Thread(target=pop, args=(storage,)) for storage in workers]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(won) == 1
        study._storage.set_trial_state_values(trial_id, state=TrialState.COMPLETE, values=[0.0])
