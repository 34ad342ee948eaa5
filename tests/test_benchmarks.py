"""Benchmarks: each one's importable entry point runs on a micro config and returns its table (no timing checks)."""
import json

import numpy as np
import pandas as pd
import pytest
import torch

from agents.cli import run_cli
from benchmarks import memory_scaling
from benchmarks.common import NetworkSizes, markdown_table, mean_spread, write_table
from benchmarks.memory_scaling import METHODS as SCALING_METHODS
from benchmarks.memory_scaling import ScalingSettings, measure_isolated, run_memory_scaling
from benchmarks.quality import MODELS, TABLE_COLUMNS, QualitySettings, run_quality
from benchmarks.throughput import COLUMNS, ThroughputSettings, env_pivot, rmn_config, run_throughput
from conftest import CEAP_SUBSET

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def test_markdown_table_and_mean_spread(tmp_path):
    assert mean_spread([1.0, 3.0]) == "2.000 ± 1.414"
    assert mean_spread([0.5]) == "0.500" and mean_spread([np.nan]) == "—"
    df = pd.DataFrame({"model": ["rmn", "lstm"], "mse": [0.012345, np.nan]})
    text = markdown_table(df)
    assert text.splitlines() == ["| model | mse |", "|---|---|", "| rmn | 0.01235 |", "| lstm | — |"]
    md = write_table(df, tmp_path, "t", "Header line")
    assert md.startswith("Header line") and pd.read_csv(tmp_path / "t.csv").shape == (2, 2)


def test_settings_share_the_network_sizes():
    sizes = NetworkSizes(n_slots=3, memory_dim=4, net_arch=(8, 8), predictor_hidden=(8,))
    assert sizes.memory_fields() == {"n_slots": 3, "memory_dim": 4, "net_arch": (8, 8), "predictor_hidden": (8,)}
    assert "predictor_hidden" not in sizes.memory_fields(read_out=False)
    for cls in (QualitySettings, ThroughputSettings, ScalingSettings):
        assert issubclass(cls, NetworkSizes)
    # the paper recipe keeps its own single-FC read-out; the project recipe takes the settings' read-out sizes
    s = ThroughputSettings(n_slots=3, memory_dim=4, net_arch=(8, 8), predictor_hidden=(8,))
    paper, default = rmn_config(s, "paper"), rmn_config(s, "default")
    assert paper.recipe == "paper" and paper.memory.predictor_hidden == () and paper.memory.n_slots == 3
    assert default.recipe == "default" and default.memory.predictor_hidden == (8,)


def _micro_quality(**kw):
    base = dict(distances=(30,), extra_length=40, n_movies=(2, 1, 1), synthetic_options={"intro_span": 10},
                real_data=None, seeds=(0,), encoder="pooling", n_slots=3, memory_dim=4, net_arch=(8, 8),
                predictor_hidden=(8,), rmn_timesteps=120, rmn_learning_starts=60, rmn_batch_size=8,
                rmn_options={"pretrain_writer_epochs": 1}, epochs=1,
                window=8, hidden=8, patience=1)
    return QualitySettings(**{**base, **kw})


def test_quality_runs_every_model_with_one_shared_encoder(tmp_path):
    torch.set_num_threads(1)
    settings = _micro_quality(encoder="lstm", rmn_options={"pretrain_writer_epochs": 1, "encoder_epochs": 1})
    runs, table = run_quality(settings, tmp_path, progress=False)
    assert list(table.columns) == TABLE_COLUMNS
    assert list(table["model"]) == list(MODELS) and set(table["dataset"]) == {"synthetic d=30"}
    assert np.isfinite(runs[["gap_closed", "mse", "pcc", "valence_pcc", "arousal_pcc"]].to_numpy()).all()
    algos, runs_dir = {"memory_bptt": "memory_tbptt"}, tmp_path / "quality_runs" / "synthetic_d30"
    for model in MODELS:  # the table shows each run's own summary
        summary = json.loads((runs_dir / model / "seed0" / "summary.json").read_text())
        assert runs.set_index("model").loc[model, "mse"] == pytest.approx(summary["test_mse"])
        assert summary["algo"] == algos.get(model, model)
    # every model of one dataset and seed read the same shared encoder
    (enc,) = (tmp_path / "quality_runs" / "encoders").glob("encoder-*/encoder.pt")
    for model in MODELS:
        cfg = json.loads((runs_dir / model / "seed0" / "config.json").read_text())
        assert cfg["encoding"]["encoder"] == str(enc)
        # memory_bptt is memory_tbptt by full BPTT; the other recurrent baselines use the settings' window
        if model in ("memory_bptt", "lstm", "memory_tbptt", "transformer"):
            assert cfg["baseline"]["bptt_window"] == (0 if model == "memory_bptt" else 8)


def test_quality_on_real_tables_reports_mse_and_pcc_without_gap_closed(tmp_path):
    torch.set_num_threads(1)
    s = _micro_quality(distances=(), real_data=str(CEAP_SUBSET), models=("rmn", "segment"), seeds=(0, 1))
    runs, table = run_quality(s, tmp_path, progress=False)
    assert list(table["dataset"]) == [CEAP_SUBSET.name] * 2 and list(table["seeds"]) == [2, 2]
    assert runs["gap_closed"].isna().all() and np.isfinite(runs["mse"]).all()  # no oracle on real data
    assert (table["gap_closed"] == "—").all() and table["mse"].str.contains("±").all()


def test_memory_scaling_table_and_what_grows(tmp_path):
    torch.set_num_threads(1)
    s = ScalingSettings(n_slots=3, memory_dim=4, net_arch=(8, 8), predictor_hidden=(8,), lstm_hidden=8,
                        batch_size=8, rmn_updates=2)
    df = run_memory_scaling([40, 120], settings=s, isolate=False, progress=False)
    assert list(df.columns) == ["method", "length", "update_s", "update_x", "refresh_s", "movie_epoch_s", "saved_mib",
                                "saved_x", "peak_rss_mib", "peak_rss_x", "rss_before_mib", "buffer_steps"]
    assert list(df["method"]) == [m for m in SCALING_METHODS for _ in range(2)]
    by = {(r.method, r.length): r for r in df.itertuples()}
    # an RMN update saves the same tensors whatever the movie's length; full BPTT saves every step
    assert by["rmn", 120].saved_mib == pytest.approx(by["rmn", 40].saved_mib, rel=1e-6)
    assert by["rmn", 40].buffer_steps == by["rmn", 120].buffer_steps == 120  # the longest movie fits whole
    assert by["rmn", 40].refresh_s > 0 and np.isnan(by["lstm_bptt", 40].refresh_s)
    for m in ("lstm_bptt", "memory_bptt"):
        assert by[m, 120].saved_x > 2.0
    assert (df["update_x"][df["length"] == 40] == 1.0).all()
    row = measure_isolated("lstm_bptt", 40, s)  # the CLI's path: a fresh process per measurement
    assert row["method"] == "lstm_bptt" and row["peak_rss_mib"] > 0 and row["saved_mib"] > 0


def test_memory_scaling_cli_rejects_too_short_movies(capsys):
    assert run_cli(memory_scaling.main, ["--lengths", "10", "100"]) == 2
    assert "--lengths" in capsys.readouterr().err


def test_throughput_table_covers_env_updates_and_inference():
    torch.set_num_threads(1)
    s = ThroughputSettings(n_slots=3, memory_dim=4, net_arch=(8, 8), predictor_hidden=(8,), movie_length=60,
                           n_movies=2, env_steps=100, n_envs=(1, 2), fill_steps=80, gradient_steps=3, batch_size=8,
                           stream_length=60, repeats=1)
    df = run_throughput(s, progress=False)
    assert list(df.columns) == COLUMNS
    assert df["benchmark"].value_counts().to_dict() == {"env steps": 11, "training updates": 4,
                                                        "streaming inference": 5}
    assert not df["work"].str.startswith("failed").any()  # SyncVectorEnv works with the env
    pivot = env_pivot(df)  # batched env, DummyVecEnv and SyncVectorEnv side by side at 1 and 2 envs
    assert list(pivot.columns) == ["1 envs", "2 envs"] and len(pivot) == 5 and pivot.iloc[:3].notna().all().all()
    assert (df["per_second"] > 0).all()
    ddpg = df[df["implementation"].str.startswith("SB3 DDPG")]
    assert len(ddpg) == 1 and ddpg["params"].iloc[0] > 0
