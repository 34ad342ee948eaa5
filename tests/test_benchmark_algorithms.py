"""benchmarks.algorithms: every method on a synthetic preset's data or a real dataset (the CEAP-360VR fixture), its
tables and curves, resumable runs and the seed sweep shared through an Optuna storage (micro budgets; no timing
checks)."""
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest
import torch
from matplotlib.figure import Figure
from optuna.trial import TrialState

from affect_env.presets import PRESETS
from agents.cli import run_cli
from agents.config import STOCK_ALGORITHMS
from agents.inputs import load_split, split_options
from benchmarks import algorithms
from benchmarks.common import BASELINE_MODELS
from benchmarks.curves import CURVE_COLUMNS, curve_columns, curve_table, plot_curves

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::optuna.exceptions.ExperimentalWarning")

SHORT = "LiRISMemory-Short-v0"


def micro(**kw) -> algorithms.AlgorithmBenchmarkSettings:
    """A few tiny movies of the short preset, a tiny memory and budget."""
    base = dict(methods=("rmn-rl", "ddpg", "segment"), seeds=(0,), preset=SHORT, timesteps=120, eval_every=60,
                n_slots=3, memory_dim=4, encoder="pooling", dataset_options={"n_movies": [2, 1, 1]},
                overrides={"learning_starts": 60, "batch_size": 8}, epochs=1, window=8, hidden=8, patience=1)
    return algorithms.AlgorithmBenchmarkSettings(**{**base, **kw})


@pytest.fixture
def micro_quick(monkeypatch):
    """``--quick`` runs :func:`micro` settings (on the preset asked for)."""
    monkeypatch.setattr(algorithms, "quick_settings", lambda preset: micro(preset=algorithms.check_preset(preset)))


def test_every_method_reads_exactly_the_presets_data():
    s = algorithms.preset_settings("short")
    assert s.preset == SHORT and s.timesteps == algorithms.PRESET_TIMESTEPS[SHORT] and s.seeds == (0, 1, 2)
    assert algorithms.METHODS == ("rmn", "rmn-rl", "rmn-paper", *STOCK_ALGORITHMS, *BASELINE_MODELS)
    preset = {k: list(v) if isinstance(v, tuple) else v for k, v in PRESETS[SHORT].items()}
    for method in algorithms.METHODS:
        cfg = algorithms.method_config(method, s, 2, Path("run"), "enc.pt")
        assert cfg.env == SHORT and cfg.data.dataset == "synthetic", method
        for split in ("train", "val", "test"):
            opts = {k: list(v) if isinstance(v, tuple) else v for k, v in split_options(cfg, split).items()}
            assert opts == preset, (method, split)
        assert (cfg.run.seed, cfg.algorithm.timesteps, cfg.run.eval_every, cfg.encoding.encoder) == \
               (2, s.timesteps, s.eval_every, "enc.pt"), method
        assert cfg.memory.n_slots == s.n_slots and cfg.memory.memory_dim == s.memory_dim
    # each RMN method keeps its recipe, each stock algorithm its zoo section, each baseline the shared sizes
    rl, paper = (algorithms.method_config(m, s, 0, Path("run")) for m in ("rmn-rl", "rmn-paper"))
    assert rl.recipe == "rl" and rl.rmn.critic == "gradient" and rl.warm_start.pretrain_writer_epochs == 0
    assert paper.recipe == "paper" and paper.memory.readout == "paper"
    assert algorithms.method_config("rmn", s, 0, Path("run")).warm_start.pretrain_writer_epochs > 0
    ddpg = algorithms.method_config("ddpg", s, 0, Path("run"))
    assert ddpg.algo == "ddpg" and ddpg.algorithm.learning_rate == 0.001 and ddpg.algorithm.timesteps == s.timesteps
    bptt = algorithms.method_config("memory_bptt", s, 0, Path("run"))
    assert bptt.algo == "memory_tbptt" and bptt.baseline.bptt_window == 0 and bptt.baseline.epochs == s.epochs
    # the movies loaded are the preset's: 100 segments on the short preset, 400 on the default one
    for name, length in (("short", 100), ("default", 400)):
        cfg = algorithms.method_config("td3", algorithms.quick_settings(name), 0, Path("run"))
        test = load_split(cfg, "test")
        assert len(test) == 4 and {len(m.targets) for m in test} == {length}


def test_method_and_preset_names_are_checked(capsys):
    assert algorithms.check_method("PPO_LSTM") == "recurrentppo" and algorithms.check_method("rmn_rl") == "rmn-rl"
    assert algorithms.check_method("Memory-BPTT") == "memory_bptt"
    with pytest.raises(ValueError, match="--methods bogus: unknown method; choose from rmn rmn-rl rmn-paper"):
        algorithms.check_method("bogus")
    with pytest.raises(ValueError, match="reference row"):
        algorithms.check_method("oracle")
    assert run_cli(algorithms.main, ["--algos", "td3", "bogus"]) == 2
    assert "--methods bogus" in capsys.readouterr().err
    assert run_cli(algorithms.main, ["--preset", "tiny"]) == 2
    assert "--preset tiny: choose one of short, default, long, marathon" in capsys.readouterr().err
    assert run_cli(algorithms.main, ["--study-name", "x"]) == 2
    assert "--study-name: give --storage too" in capsys.readouterr().err


def test_rl_rows_count_the_steps_taken_not_those_of_the_selected_model():
    summary = {"algo": "rmn", "recipe": "rl", "timesteps": 60, "trained_timesteps": 120, "train_wall_s": 2.0,
               "test_mse": 0.1, "test_gap_closed": 0.2, "val_gap_closed": 0.3, "test_valence_pcc": 0.5,
               "test_arousal_pcc": 0.3}
    row = algorithms.run_row("rmn-rl", 0, summary, 3.0)
    assert row["timesteps"] == 120 and row["env_steps_per_s"] == 60.0 and row["pcc"] == pytest.approx(0.4)
    assert row["kind"] == "rl" and row["recipe"] == "rl" and row["epochs"] is None
    base = {**summary, "algo": "lstm", "timesteps": 5000, "epochs": 4}
    row = algorithms.run_row("lstm", 0, base, 3.0)
    assert row["kind"] == "supervised" and row["epochs"] == 4 and row["timesteps"] is None
    assert row["env_steps_per_s"] is None


def test_local_benchmark_writes_tables_and_curves_and_resumes(tmp_path, micro_quick, monkeypatch):
    torch.set_num_threads(1)
    argv = ["--quick", "--preset", "short", "--out", str(tmp_path), "--no-progress"]
    assert run_cli(algorithms.main, argv) == 0
    runs = pd.read_csv(tmp_path / "algorithms_runs.csv")
    assert list(runs.columns[:len(algorithms.RUN_COLUMNS)]) == algorithms.RUN_COLUMNS
    assert list(runs["method"]) == ["rmn-rl", "ddpg", "segment"]
    assert list(runs["kind"]) == ["rl", "rl", "supervised"] and list(runs["timesteps"].iloc[:2]) == [120, 120]
    assert runs["epochs"].iloc[2] >= 1 and np.isfinite(runs[["test_mse", "gap_closed", "val_gap_closed"]]).all().all()
    table = pd.read_csv(tmp_path / "algorithms.csv").set_index("method")
    assert list(table.index) == ["rmn-rl", "ddpg", "segment", "oracle", "no_memory"]
    assert list(table["kind"]) == ["rl", "rl", "supervised", "reference", "reference"]
    assert table.loc["segment", "env steps"] == "—" and table.loc["ddpg", "epochs"] == "—"
    assert (float(table.loc["oracle", "gap_closed"]), float(table.loc["no_memory", "gap_closed"])) == (1.0, 0.0)
    # the references' test MSE is the data's own: the oracle and memory-less predictions of the test movies
    cfg = algorithms.method_config("rmn-rl", micro(), 0, tmp_path)
    test = load_split(cfg, "test")
    for ref in ("oracle", "no_memory"):
        mse = np.mean(np.concatenate([(getattr(m, ref) - m.targets) ** 2 for m in test]))
        assert float(table.loc[ref, "test MSE"]) == pytest.approx(mse, abs=1e-4)
    assert "gap_closed" in (tmp_path / "algorithms.md").read_text()
    curves = pd.read_csv(tmp_path / "algorithms_curves.csv")
    assert list(curves.columns) == CURVE_COLUMNS
    ddpg = curves[curves["method"] == "ddpg"]
    assert list(ddpg["timesteps"]) == [60, 120] and ddpg["gap_closed_mean"].notna().all()
    level = curves[curves["method"] == "segment"]
    assert len(level) == 1 and level["timesteps"].isna().all() and level["kind"].iloc[0] == "supervised"
    assert set(curves.loc[curves["kind"] == "reference", "gap_closed_mean"]) == {0.0, 1.0}
    assert (tmp_path / "algorithms_curves.png").stat().st_size > 1000

    # a second call trains nothing: every run's record is there; --rerun trains again what it names
    calls = []
    real_train = algorithms.train
    monkeypatch.setattr(algorithms, "train", lambda cfg, **kw: calls.append(cfg.algo) or real_train(cfg, **kw))
    assert run_cli(algorithms.main, argv) == 0 and calls == []
    assert pd.read_csv(tmp_path / "algorithms_runs.csv").equals(runs)
    assert run_cli(algorithms.main, argv + ["--rerun", "--methods", "segment"]) == 0 and calls == ["segment"]
    # a run left unfinished (no record) is trained again; --report-only reads the finished ones
    (algorithms.run_dir(tmp_path, "ddpg", 0) / algorithms.RECORD_FILE).unlink()
    assert run_cli(algorithms.main, argv + ["--report-only"]) == 0 and len(calls) == 1
    assert list(pd.read_csv(tmp_path / "algorithms_runs.csv")["method"]) == ["rmn-rl", "segment"]
    assert run_cli(algorithms.main, argv) == 0 and calls == ["segment", "ddpg"]

    # a run killed part-way (here at its first validation or epoch) goes on from its checkpoint, not from the start;
    # a finished one is replaced
    s = micro(epochs=3, patience=3)
    monkeypatch.setattr(algorithms, "train", lambda cfg, **kw: real_train(
        cfg, on_eval=lambda row: (_ for _ in ()).throw(KeyboardInterrupt()), **kw))
    for method in ("ddpg", "segment"):
        with pytest.raises(KeyboardInterrupt):
            algorithms.run_method(method, 0, s, tmp_path)
    resumed = []
    monkeypatch.setattr(algorithms, "train", lambda cfg, **kw: resumed.append(kw["resume"]) or real_train(cfg, **kw))
    ddpg, segment = (algorithms.run_method(m, 0, s, tmp_path) for m in ("ddpg", "segment"))
    assert resumed == [True, True]
    assert [p["timesteps"] for p in ddpg["curve"]] == [60, 120] and [p["epoch"] for p in segment["curve"]] == [1, 2, 3]
    algorithms.run_method("segment", 0, s, tmp_path)
    assert resumed == [True, True, False]


class FakeTrain:
    """``agents.runs.train`` in a few milliseconds: an eval log and a summary; counts the runs per (algo, seed)."""

    def __init__(self, seconds: float = 0.0) -> None:
        self.seconds, self.calls, self.configs, self.lock = seconds, [], [], threading.Lock()

    def __call__(self, cfg, progress=True, **kw):
        with self.lock:
            self.calls.append((cfg.algo, cfg.run.seed, cfg.baseline.bptt_window))
            self.configs.append(cfg)
        time.sleep(self.seconds)
        out = Path(cfg.run.out)
        out.mkdir(parents=True, exist_ok=True)
        steps = cfg.algorithm.timesteps
        pd.DataFrame({"timesteps": [steps // 2, steps], "gap_closed": [0.1 * cfg.run.seed, 0.2]}).to_csv(
            out / "eval_log.csv", index=False)
        return {"algo": cfg.algo, "recipe": cfg.recipe, "timesteps": steps, "train_wall_s": 1.0, "epochs": 2,
                "test_mse": 0.5, "test_gap_closed": 0.1, "val_gap_closed": 0.2, "test_valence_pcc": 0.3,
                "test_arousal_pcc": 0.1}


def test_two_workers_share_one_sqlite_study_and_run_each_pair_once(tmp_path, micro_quick, monkeypatch):
    fake = FakeTrain(seconds=0.05)
    monkeypatch.setattr(algorithms, "train", fake)
    url = f"sqlite:///{tmp_path / 'bench.db'}"
    argv = ["--quick", "--preset", "short", "--seeds", "0", "1", "--storage", url, "--no-progress"]
    outs = [tmp_path / "machine_a", tmp_path / "machine_b"]
    errors = []

    def worker(out):
        try:
            algorithms.main(argv + ["--out", str(out)])
        except Exception as err:  # noqa: BLE001 - reported below
            errors.append(err)

    threads = [threading.Thread(target=worker, args=(out,)) for out in outs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    pairs = [(a, s) for a, s, _ in fake.calls]
    assert sorted(pairs) == sorted({(a, s) for a, s in pairs}) and len(pairs) == 6  # 3 methods x 2 seeds, once each
    study = optuna.load_study(study_name=f"algorithms-{SHORT}-quick", storage=url)
    done = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert sorted((t.user_attrs["method"], t.user_attrs["seed"]) for t in done) == \
        sorted((m, s) for m in ("rmn-rl", "ddpg", "segment") for s in (0, 1))
    assert all(t.user_attrs["row"]["test_mse"] == 0.5 and t.user_attrs["curve"] for t in done)
    # the last worker to finish wrote the whole table; a later call runs nothing and reports every pair
    assert run_cli(algorithms.main, argv + ["--out", str(outs[0])]) == 0 and len(fake.calls) == 6
    runs = pd.read_csv(outs[0] / "algorithms_runs.csv")
    assert len(runs) == 6 and set(runs["seed"]) == {0, 1}
    table = pd.read_csv(outs[0] / "algorithms.csv").set_index("method")
    assert list(table["seeds"].iloc[:3]) == ["2", "2", "2"]
    # --report-only reads the study's own settings: no need to repeat the flags that made it
    report = tmp_path / "report"
    assert run_cli(algorithms.main, ["--report-only", "--storage", url, "--study-name", f"algorithms-{SHORT}-quick",
                                     "--out", str(report)]) == 0
    assert len(pd.read_csv(report / "algorithms_runs.csv")) == 6 and len(fake.calls) == 6
    assert pd.read_csv(report / "algorithms_curves.csv")["method"].iloc[0] == "rmn-rl"
    # a worker with other data, memory or encoder is refused: the study's runs must be comparable
    assert run_cli(algorithms.main, argv + ["--encoder", "lstm", "--out", str(outs[0])]) == 2


def test_a_new_budget_of_one_kind_runs_only_that_kind_again(tmp_path, micro_quick, monkeypatch):
    fake = FakeTrain()
    monkeypatch.setattr(algorithms, "train", fake)
    url = f"sqlite:///{tmp_path / 'bench.db'}"
    argv = ["--quick", "--preset", "short", "--storage", url, "--out", str(tmp_path / "out"), "--no-progress"]
    assert run_cli(algorithms.main, argv) == 0 and len(fake.calls) == 3
    # more epochs for the supervised baselines: only the baseline runs again, with them
    assert run_cli(algorithms.main, argv + ["--epochs", "4"]) == 0
    assert [a for a, _, _ in fake.calls[3:]] == ["segment"] and fake.configs[-1].baseline.epochs == 4
    # more env steps too: only the RL methods run again; the earlier budgets' pairs stay done
    assert run_cli(algorithms.main, argv + ["--epochs", "4", "--timesteps", "240"]) == 0
    assert sorted(a for a, _, _ in fake.calls[4:]) == ["ddpg", "rmn"]
    assert all(c.algorithm.timesteps == 240 for c in fake.configs[4:])
    assert run_cli(algorithms.main, argv) == 0 and len(fake.calls) == 6
    # --report-only reports each kind's newest budget: the rows and the header agree
    report = tmp_path / "report"
    assert run_cli(algorithms.main, ["--report-only", "--storage", url, "--study-name", f"algorithms-{SHORT}-quick",
                                     "--out", str(report)]) == 0
    runs = pd.read_csv(report / "algorithms_runs.csv")
    assert list(runs["method"]) == ["rmn-rl", "ddpg", "segment"] and list(runs["timesteps"].iloc[:2]) == [240, 240]
    header = (report / "algorithms.md").read_text()
    assert "RL methods 240 env steps" in header and "<= 4 epochs" in header
    assert run_cli(algorithms.main, argv + ["--epochs", "0"]) == 2


def test_a_study_stores_runs_finished_without_it_instead_of_training_them_again(tmp_path, micro_quick,
                                                                                    monkeypatch):
    fake = FakeTrain()
    monkeypatch.setattr(algorithms, "train", fake)
    url = f"sqlite:///{tmp_path / 'bench.db'}"
    local = ["--quick", "--preset", "short", "--out", str(tmp_path / "out"), "--no-progress"]
    assert run_cli(algorithms.main, local) == 0 and len(fake.calls) == 3
    # the same --out with a study: the finished runs become its trials, nothing is trained
    assert run_cli(algorithms.main, local + ["--storage", url]) == 0 and len(fake.calls) == 3
    study = optuna.load_study(study_name=f"algorithms-{SHORT}-quick", storage=url)
    done = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert sorted(t.user_attrs["method"] for t in done) == ["ddpg", "rmn-rl", "segment"]
    assert all(t.user_attrs["row"]["test_mse"] == 0.5 for t in done)
    # --rerun trains what it names again, even with a finished run in --out
    assert run_cli(algorithms.main, local + ["--storage", url, "--rerun", "--methods", "segment"]) == 0
    assert [a for a, _, _ in fake.calls[3:]] == ["segment"]


def test_a_killed_workers_pair_and_a_duplicated_pair_each_run_once(tmp_path, monkeypatch):
    fake = FakeTrain()
    monkeypatch.setattr(algorithms, "train", fake)
    s = micro(methods=("rmn-rl", "ddpg", "segment"), seeds=(0,))
    url = f"sqlite:///{tmp_path / 'bench.db'}"
    study = algorithms.open_benchmark_study(s, url, "sweep", tmp_path, heartbeat_interval=1, grace_period=2)
    # rmn-rl: its worker was killed (a running trial whose heartbeat stopped); ddpg: its worker hit an error (FAIL);
    # segment: enqueued twice at the same moment by workers on two machines
    for method in ("rmn-rl", "ddpg"):
        study.enqueue_trial({}, user_attrs={"method": method, "seed": 0, "requested": -1})
    killed, failed = study.ask(), study.ask()
    study._storage.record_heartbeat(killed._trial_id)
    study.tell(failed, state=TrialState.FAIL)
    for _ in range(2):
        study.enqueue_trial({}, user_attrs={"method": "segment", "seed": 0, "requested": -1})
    time.sleep(2.5)  # longer than the grace period: the killed worker's trial is stale
    assert algorithms.run_worker(study, s, tmp_path, url, progress=False) == 3
    assert sorted(a for a, _, _ in fake.calls) == ["ddpg", "rmn", "segment"]
    states = {t.number: t.state for t in study.trials}
    assert states[killed.number] == TrialState.FAIL and states[failed.number] == TrialState.FAIL
    pruned = [t for t in study.trials if t.state == TrialState.PRUNED]
    assert len(pruned) == 1 and pruned[0].user_attrs["method"] == "segment" and "duplicate_of" in pruned[0].user_attrs
    records, pending = algorithms.study_records(study)
    assert sorted(r["row"]["method"] for r in records) == ["ddpg", "rmn-rl", "segment"] and pending == []
    # nothing left: a second worker runs nothing; --rerun asks for every pair again, once
    assert algorithms.run_worker(study, s, tmp_path, url, progress=False) == 0
    assert algorithms.run_worker(study, replace(s, methods=("ddpg",)), tmp_path, url, rerun=True,
                                 progress=False) == 1
    assert [a for a, _, _ in fake.calls].count("ddpg") == 2


# ---- a real dataset -------------------------------------------------------------------------------------------
CEAP = Path(__file__).parent / "data" / "ceap360vr_subset"


def test_a_synthetic_benchmarks_identity_is_what_it_was_before_real_datasets():
    # studies and finished runs of synthetic benchmarks made before --dataset existed must still match
    s = replace(algorithms.preset_settings("short"), epochs=10, patience=3)  # the baselines' budget then
    assert s.dataset == "synthetic" and s.synthetic
    assert s.identity() == {
        "epochs": 10, "window": 64, "hidden": 64, "patience": 3, "batch_size": 256, "batch_movies": 8,
        "preset": SHORT, "timesteps": 20_000, "eval_every": 2_000, "dataset_options": {}, "n_slots": 10,
        "memory_dim": 32, "encoder": "lstm", "overrides": {}, "device": "cpu"}
    assert s.digest() == "ee7b73e8ba3f"
    real = algorithms.dataset_settings(str(CEAP), {"manifest": "ceap360vr"})
    assert real.identity()["dataset"] == str(CEAP) and real.identity()["dataset_options"] == {"manifest": "ceap360vr"}
    assert set(real.identity()) == set(s.identity()) | {"dataset"} and real.digest() != s.digest()


def test_each_kind_of_run_is_named_by_the_settings_it_reads(tmp_path):
    s = algorithms.preset_settings("short")
    assert (s.epochs, s.patience) == (100, 25)  # the default recipe's writer pretraining gets 100 epochs of BPTT
    assert "epochs" not in s.identity("rl") and "timesteps" not in s.identity("supervised")
    assert set(s.identity("shared")) == set(s.identity("rl")) - set(algorithms.RL_FIELDS)
    more_epochs, more_steps = replace(s, epochs=200), replace(s, timesteps=40_000)
    assert more_epochs.digest("rl") == s.digest("rl") and more_epochs.digest("supervised") != s.digest("supervised")
    assert more_steps.digest("supervised") == s.digest("supervised") and more_steps.digest("rl") != s.digest("rl")
    smaller = replace(s, n_slots=4)
    assert smaller.digest("rl") != s.digest("rl") and smaller.digest("supervised") != s.digest("supervised")
    # a run's record names its kind's settings; one written before records did (all settings) still matches
    for method, digest in (("lstm", s.digest("supervised")), ("ddpg", s.digest())):
        path = algorithms.run_dir(tmp_path, method, 0) / algorithms.RECORD_FILE
        path.parent.mkdir(parents=True)
        path.write_text(f'{{"settings": "{digest}", "row": {{}}, "curve": []}}')
        assert algorithms.load_record(tmp_path, method, 0, s) is not None
        assert algorithms.load_record(tmp_path, method, 0, more_epochs if method == "lstm" else more_steps) is None


def test_every_method_reads_the_real_dataset_with_its_options_alone():
    s = algorithms.dataset_settings(str(CEAP), {"manifest": "ceap360vr"})
    for method in algorithms.METHODS:
        cfg = algorithms.method_config(method, s, 1, Path("run"), "enc.pt")
        assert cfg.data.dataset == str(CEAP), method
        for split in ("train", "val", "test"):
            assert split_options(cfg, split) == {"manifest": "ceap360vr"}, (method, split)
    assert len(load_split(algorithms.method_config("td3", s, 0, Path("run")), "test")) == 2
    assert algorithms.reference_rows(s).empty


def test_preset_and_a_real_dataset_conflict(capsys):
    assert run_cli(algorithms.main, ["--preset", "short", "--dataset", str(CEAP)]) == 2
    err = capsys.readouterr().err
    assert f"--preset short with --dataset {CEAP}" in err and "not both" in err
    assert run_cli(algorithms.main, ["--dataset", "/no/such/data"]) == 2
    assert "--dataset /no/such/data: not a directory" in capsys.readouterr().err
    assert run_cli(algorithms.main, ["--dataset", str(CEAP), "--dataset-options", "manifest"]) == 2
    assert "--dataset-options 'manifest': expected KEY=VALUE" in capsys.readouterr().err


def test_real_dataset_benchmark_reports_mse_pcc_ccc_and_validation_mse_curves(tmp_path, micro_quick):
    torch.set_num_threads(1)
    argv = ["--quick", "--dataset", str(CEAP), "--dataset-options", "manifest=ceap360vr", "--methods", "ddpg",
            "segment", "--out", str(tmp_path), "--no-progress"]
    assert run_cli(algorithms.main, argv) == 0
    summary = pd.read_json(algorithms.run_dir(tmp_path, "ddpg", 0) / "summary.json", typ="series")
    assert {"test_valence_ccc", "test_arousal_ccc", "test_valence_mse", "val_mse"} <= set(summary.index)
    runs = pd.read_csv(tmp_path / "algorithms_runs.csv")
    per_target = [f"{t}_{m}" for t in ("valence", "arousal") for m in ("mse", "pcc", "ccc")]
    assert list(runs.columns) == algorithms.REAL_RUN_COLUMNS + per_target
    assert list(runs["method"]) == ["ddpg", "segment"] and list(runs["kind"]) == ["rl", "supervised"]
    assert np.isfinite(runs[["test_mse", "pcc", "ccc", "val_mse", *per_target]]).all().all()
    assert runs["ccc"].to_numpy() == pytest.approx(runs[["valence_ccc", "arousal_ccc"]].mean(axis=1).to_numpy())
    assert runs["test_mse"].to_numpy() == pytest.approx(runs[["valence_mse", "arousal_mse"]].mean(axis=1).to_numpy())
    table = pd.read_csv(tmp_path / "algorithms.csv").set_index("method")
    assert list(table.index) == ["ddpg", "segment"] and "reference" not in set(table["kind"])
    assert {"test MSE", "PCC", "CCC", "valence MSE", "valence PCC", "valence CCC", "arousal CCC", "val MSE"} <= \
        set(table.columns)
    assert not [c for c in table.columns if "gap_closed" in c]
    assert float(table.loc["ddpg", "CCC"]) == pytest.approx(runs["ccc"].iloc[0], abs=1e-3)
    text = (tmp_path / "algorithms.md").read_text()
    assert "ceap360vr_subset" in text and "gap_closed" not in text and "oracle" not in text
    curves = pd.read_csv(tmp_path / "algorithms_curves.csv")
    assert list(curves.columns) == curve_columns("mse") and "gap_closed_mean" not in curves.columns
    ddpg = curves[curves["method"] == "ddpg"]
    assert list(ddpg["timesteps"]) == [60, 120] and (ddpg["mse_mean"] > 0).all()
    level = curves[curves["method"] == "segment"]
    assert len(level) == 1 and level["mse_mean"].iloc[0] == pytest.approx(runs["val_mse"].iloc[1])
    assert set(curves["kind"]) == {"rl", "supervised"}
    assert (tmp_path / "algorithms_curves.png").stat().st_size > 1000
    # the runs are this dataset's: the same call reads them back; other reader options are other settings
    s = algorithms.dataset_settings(str(CEAP), {"manifest": "ceap360vr"}, quick=True)
    assert algorithms.load_record(tmp_path, "ddpg", 0, s) is not None
    assert algorithms.load_record(tmp_path, "ddpg", 0, replace(s, dataset_options={})) is None


def test_mse_curves_say_lower_is_better_and_cut_off_untrained_spikes(tmp_path, monkeypatch):
    records = [{"row": {"method": "td3", "kind": "rl", "val_mse": 0.2},
                "curve": [{"timesteps": 10, "mse": 90.0}, {"timesteps": 20, "mse": 0.3}]},
               {"row": {"method": "lstm", "kind": "supervised", "val_mse": 0.25}, "curve": []}]
    table = curve_table(records, metric="mse")
    assert list(table["mse_mean"]) == [90.0, 0.3, 0.25]
    drawn = {}
    real_savefig = Figure.savefig
    monkeypatch.setattr(Figure, "savefig", lambda fig, *a, **kw: drawn.update(ax=fig.axes[0]) or
                        real_savefig(fig, *a, **kw))
    plot_curves(table, tmp_path / "c.png", "t", metric="mse")
    ax = drawn["ax"]
    assert ax.get_ylabel() == "validation MSE (lower is better)"
    assert ax.get_ylim() == pytest.approx((0.0, 4.0 * 0.3))
    with pytest.raises(ValueError, match="curve metric 'pcc'"):
        curve_table(records, metric="pcc")


def test_a_real_dataset_study_is_named_after_its_folder(tmp_path, micro_quick, monkeypatch):
    monkeypatch.setattr(algorithms, "train", FakeTrain())
    url = f"sqlite:///{tmp_path / 'bench.db'}"
    argv = ["--quick", "--dataset", str(CEAP), "--dataset-options", "manifest=ceap360vr", "--methods", "td3",
            "--storage", url, "--out", str(tmp_path), "--no-progress"]
    assert run_cli(algorithms.main, argv) == 0
    names = [x.study_name for x in optuna.get_all_study_summaries(url, include_best_trial=False)]
    assert names == ["algorithms-ceap360vr_subset-quick"]
    study = optuna.load_study(study_name=names[0], storage=url)
    assert study.user_attrs["settings"]["dataset"] == str(CEAP)
    # --report-only reads the settings back from the study: real data, no references
    report = tmp_path / "report"
    assert run_cli(algorithms.main, ["--report-only", "--storage", url, "--study-name", names[0],
                                     "--out", str(report)]) == 0
    assert list(pd.read_csv(report / "algorithms.csv")["method"]) == ["td3"]
    assert list(pd.read_csv(report / "algorithms_curves.csv").columns) == curve_columns("mse")
