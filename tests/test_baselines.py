"""Supervised baselines: end-to-end training and outputs, the BPTT memory shares the RMN's modules, gradient
flow under full and truncated BPTT, causality and streaming equivalence, and the CLI's error handling."""
import json

import numpy as np
import pandas as pd
import pytest
import torch
from gymnasium import spaces

from affect_env.memory import MemoryPredictor, action_dim
from agents.baselines import (
    LSTMBaseline, MemoryTBPTT, WindowTransformer, load_baseline, predict_movies, tbptt_losses,
)
from agents.config import MemoryConfig, TrainConfig
from agents.inputs import load_splits
from agents.cli import run_cli
from agents.runs import train
from agents.train_baseline import main
from agents.rmn.networks import SlotActor
from agents.rmn.policies import RMNPolicy
from agents.rollout import rollout

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

TINY = {"n_movies": [3, 2, 2], "length": 90, "dependency_distance": 50, "intro_span": 10}
D_E = 12


def tiny_config(out, **kw) -> TrainConfig:
    return TrainConfig().update(dict(dataset_options=TINY, n_slots=4, memory_dim=8, net_arch=(16, 16),
                                     predictor_hidden=(16,), encoder="pooling", device="cpu", out=str(out), **kw))


@pytest.mark.parametrize("model", ["segment", "lstm", "memory_tbptt", "transformer"])
def test_baseline_trains_end_to_end_and_writes_the_rmn_outputs(tmp_path, model):
    torch.set_num_threads(2)
    cfg = tiny_config(tmp_path / model, algo=model, bptt_window=16, epochs=2, hidden=16)
    summary = train(cfg, progress=False)
    assert torch.get_num_threads() == cfg.run.threads == 1  # --threads applies, as for the RMN
    out = tmp_path / model
    for name in ("config.json", "encoder.pt", "model.pt", "eval_log.csv", "metrics.csv", "summary.json",
                 "figures/predictions.png", "figures/training_curves.png"):
        assert (out / name).exists(), name
    metrics = pd.read_csv(out / "metrics.csv")
    assert metrics["scope"].iloc[0] == "global" and len(metrics) == 1 + TINY["n_movies"][2]
    assert np.isfinite(metrics[["mse", "gap_closed", "valence_pcc", "arousal_pcc"]].iloc[0]).all()
    assert json.loads((out / "summary.json").read_text())["test_mse"] == pytest.approx(summary["test_mse"])
    assert summary["test_mse"] == pytest.approx(metrics["mse"].iloc[0])
    assert 1 <= summary["best_epoch"] <= summary["epochs"] <= 2
    log = pd.read_csv(out / "eval_log.csv")
    assert list(log["epoch"]) == list(range(1, summary["epochs"] + 1))
    assert summary["val_mse"] == pytest.approx(log["mse"].min(), rel=1e-5)  # the best epoch is the one kept

    # the saved checkpoint reproduces the written predictions from raw features
    loaded, encoder = load_baseline(out)
    test = load_splits(cfg)["test"]
    preds = predict_movies(loaded, encoder.embed_dataset(test))
    for movie, pred in zip(test, preds):
        table = pd.read_csv(out / "predictions" / f"{movie.movie_id}.csv")
        assert len(table) == movie.n_segments
        np.testing.assert_allclose(table[["valence_pred", "arousal_pred"]].to_numpy(), pred, atol=1e-5)
    if model == "memory_tbptt":
        assert (out / "figures" / "memory_attention.png").exists()


def test_a_second_run_into_the_same_directory_is_refused(tmp_path):
    cfg = tiny_config(tmp_path / "run", algo="segment", epochs=1, hidden=8)
    train(cfg, progress=False)
    with pytest.raises(ValueError, match="already holds a run"):
        train(cfg, progress=False)


@pytest.mark.parametrize("model", ["memory_tbptt", "transformer"])
def test_an_interrupted_baseline_goes_on_from_its_last_epoch_to_the_same_end(tmp_path, model):
    """Ctrl-C (or SIGTERM, or a kill) keeps the checkpoint of the last finished epoch; ``--resume`` redoes only the
    epochs after it, drops their rows of the abandoned part, keeps the best model as the checkpoint saw it, and
    ends exactly where the uninterrupted run ends."""
    kw = dict(algo=model, bptt_window=16, epochs=4, patience=4, hidden=16)
    whole = train(tiny_config(tmp_path / "whole", **kw), progress=False)
    out = tmp_path / "cut"
    with pytest.raises(KeyboardInterrupt):
        train(tiny_config(out, **kw), progress=False,
              on_eval=lambda row: (_ for _ in ()).throw(KeyboardInterrupt()) if row["epoch"] == 2 else None)
    assert not (out / "summary.json").exists() and list(pd.read_csv(out / "eval_log.csv")["epoch"]) == [1, 2]
    # killed later in epoch 3, after its validation row and a better model were written, before its checkpoint
    log = pd.read_csv(out / "eval_log.csv")
    pd.concat([log, log.tail(1).assign(epoch=3, timesteps=log["timesteps"].max() + 1, mse=0.0)]).to_csv(
        out / "eval_log.csv", index=False)
    (out / "model.pt").write_bytes(b"the abandoned epoch's model")
    assert run_cli(main, ["--resume", str(out), "--no-progress"]) == 0
    resumed = json.loads((out / "summary.json").read_text())
    assert list(pd.read_csv(out / "eval_log.csv")["epoch"]) == [1, 2, 3, 4]
    for key in ("test_mse", "val_mse", "best_epoch", "epochs", "updates", "segments_seen"):
        assert resumed[key] == whole[key], key
    np.testing.assert_array_equal(pd.read_csv(out / "eval_log.csv")["mse"],
                                  pd.read_csv(tmp_path / "whole" / "eval_log.csv")["mse"])


@pytest.mark.parametrize("write_top_k", [0, 2])
def test_memory_tbptt_uses_the_rmn_policy_modules_and_inference(write_top_k):
    model = MemoryTBPTT(D_E, 4, 8, 2, net_arch=(16, 16), predictor_hidden=(16,), erase_bias=-2.0,
                        write_top_k=write_top_k)
    assert type(model.actor) is SlotActor and type(model.predictor) is MemoryPredictor
    if write_top_k:  # the RMN's top-k write: the other slots stay exactly as they were
        memory = torch.rand(3, 4, 8)
        _, written = model.step(torch.randn(3, D_E), memory)
        assert ((written != memory).any(-1).sum(-1) <= write_top_k).all()
    obs = spaces.Dict({"segment": spaces.Box(-np.inf, np.inf, (D_E,), np.float32),
                       "memory": spaces.Box(-np.inf, np.inf, (4, 8), np.float32)})
    act = spaces.Box(-1, 1, (action_dim(4, 8),), np.float32)
    memory = MemoryConfig(n_slots=4, memory_dim=8, net_arch=(16, 16), predictor_hidden=(16,), erase_bias=-2.0,
                          coupled_gates=False, write_top_k=write_top_k)
    policy = RMNPolicy(obs, act, lambda _: 1e-3, memory=memory, n_targets=2)
    # same parameter layout: the BPTT-trained weights load strictly into an RMN policy, and back
    policy.actor.load_state_dict(model.actor.state_dict())
    policy.predictor.load_state_dict(model.predictor.state_dict())
    emb = [np.random.default_rng(0).normal(size=(40, D_E)).astype(np.float32)]
    ours = predict_movies(model, emb, chunk=7)[0]
    rmn = rollout(policy.actor, policy.predictor, emb)[0]["prediction"]
    np.testing.assert_allclose(ours, rmn, atol=1e-5)


def _sequence(length=24, seed=0):
    g = torch.Generator().manual_seed(seed)
    e = torch.randn(1, length, D_E, generator=g)
    y = torch.randn(1, length, 2, generator=g)
    return e, y


def _recording_memory_model():
    """A MemoryTBPTT whose writes keep their output memories (with .grad) for inspection."""
    torch.manual_seed(0)
    model = MemoryTBPTT(D_E, 4, 8, 2, net_arch=(16, 16), predictor_hidden=(16,))
    memories = []
    original = model.step

    def step(e, m):
        y, m_new = original(e, m)
        m_new.retain_grad()
        memories.append(m_new)
        return y, m_new

    model.step = step
    return model, memories


def test_full_bptt_gradient_reaches_the_first_write_from_the_last_loss():
    model, memories = _recording_memory_model()
    e, y = _sequence(24)
    mask = torch.zeros(1, 24)
    mask[0, -1] = 1.0  # only the last segment's error
    losses = list(tbptt_losses(model, e, y, mask, window=0))
    assert len(losses) == 1
    losses[0].backward()
    assert memories[0].grad is not None and memories[0].grad.abs().sum() > 0  # through 23 later writes
    assert model.predictor.m0.grad.abs().sum() > 0  # m0 only feeds the first write
    first_layer = model.actor.features.embed_in.weight
    assert first_layer.grad.abs().sum() > 0


@pytest.mark.parametrize("kind", ["memory", "lstm"])
def test_truncated_bptt_detaches_between_windows(kind):
    e, y = _sequence(20)
    mask = torch.ones(1, 20)
    if kind == "memory":
        model, memories = _recording_memory_model()
        start = model.predictor.m0
    else:
        torch.manual_seed(0)
        model, memories = LSTMBaseline(D_E, 2, hidden_size=8), []
        start = model.h0
    losses = tbptt_losses(model, e, y, mask, window=10)
    next(losses)  # window 1: no backward
    second = next(losses)
    second.backward()
    assert start.grad is None  # the initial state only enters window 1
    if kind == "memory":
        assert len(memories) == 20
        assert all(m.grad is None for m in memories[:10])  # nothing from window 2 reaches window 1's writes
        assert all(m.grad is not None for m in memories[10:-1])
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    with pytest.raises(StopIteration):
        next(losses)


def test_transformer_is_causal_and_windowed():
    torch.manual_seed(0)
    model = WindowTransformer(D_E, 2, window=8, d_model=16, n_heads=2)
    base = np.random.default_rng(1).normal(size=(40, D_E)).astype(np.float32)
    ref = predict_movies(model, [base], chunk=6)[0]
    np.testing.assert_allclose(predict_movies(model, [base], chunk=1000)[0], ref, atol=1e-5)  # chunking is exact
    future = base.copy()
    future[25] += 3.0
    changed = predict_movies(model, [future], chunk=6)[0]
    np.testing.assert_allclose(changed[:25], ref[:25], atol=1e-6)  # the past does not see the future
    assert np.abs(changed[25] - ref[25]).max() > 1e-4
    assert np.abs(changed[25:33] - ref[25:33]).max(axis=1).min() > 1e-6  # seen while inside the window ...
    np.testing.assert_allclose(changed[33:], ref[33:], atol=1e-6)  # ... forgotten once it left it


def test_transformer_computes_what_its_encoder_layers_compute():
    """Only the newest token goes through the last layer: the predictions and the gradients are those of the whole
    ``nn.TransformerEncoder`` read at the newest token, windows cut by the movie's start included."""
    torch.manual_seed(0)
    model = WindowTransformer(D_E, 2, window=8, d_model=16, n_heads=2, n_layers=3)
    windows = torch.randn(12, 8, D_E)
    valid = torch.arange(8)[None, :] >= torch.arange(12)[:, None] - 4  # the first windows start before the movie
    full = model.head(model.norm(model.encoder(model.inp(windows) + model.age, src_key_padding_mask=~valid)[:, -1]))
    fast = model.forward_windows(windows, valid)
    torch.testing.assert_close(fast, full, atol=1e-5, rtol=1e-5)
    grads = [torch.autograd.grad(y.square().sum(), list(model.parameters())) for y in (fast, full)]
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_recurrent_streaming_prediction_does_not_depend_on_chunking():
    torch.manual_seed(0)
    movies = [np.random.default_rng(i).normal(size=(n, D_E)).astype(np.float32) for i, n in enumerate((31, 17))]
    for model in (LSTMBaseline(D_E, 2, hidden_size=8), MemoryTBPTT(D_E, 4, 8, 2, net_arch=(16, 16))):
        whole = predict_movies(model, movies, chunk=1000)
        for a, b, m in zip(predict_movies(model, movies, chunk=5, batch_movies=1), whole, movies):
            assert a.shape == (len(m), 2)
            np.testing.assert_allclose(a, b, atol=1e-5)


def test_cli_reports_bad_options_in_one_line(tmp_path, capsys):
    rc = run_cli(main, ["--algo", "transformer", "--bptt-window", "0", "--encoder", "pooling", "--out",
                        str(tmp_path / "t")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "bptt_window must be >= 1 for the transformer" in err[0]
    rc = run_cli(main, ["--algo", "lstm", "--epochs", "0", "--out", str(tmp_path / "t")])
    assert rc == 2 and "epochs must be a whole number >= 1, got 0" in capsys.readouterr().err
    rc = run_cli(main, ["--algo", "lstm", "--select-on", "mean", "--long-val-options", "length=100", "--out",
                        str(tmp_path / "t")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "algo lstm: long_val_options and select_on are for the RMN" in err[0]
    assert not (tmp_path / "t").exists()  # checked before anything was written


def test_cli_trains_into_out(tmp_path, capsys):
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"dataset_options": TINY, "n_slots": 4, "memory_dim": 8, "net_arch": [16, 16]}))
    rc = run_cli(main, ["--algo", "segment", "--epochs", "1", "--hidden", "8", "--encoder", "pooling", "--config",
                        str(config), "--out", str(tmp_path / "run"), "--no-progress", "--seed", "3"])
    assert rc == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["run"] == str(tmp_path / "run") and printed["model"] == "segment"
    assert TrainConfig.load(tmp_path / "run" / "config.json").run.seed == 3
