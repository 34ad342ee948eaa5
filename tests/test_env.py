"""The LiRISMemory-v0 environment: registration, presets, API checks, rewards, episodes and their end infos, and
predictor modes."""
import copy

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import affect_env
from affect_env import LiRISMemoryEnv, MemoryPredictor
from affect_env.data import FeatureStats
from affect_env.data.synthetic import SyntheticConfig
from affect_env.encoder import LSTMSegmentEncoder
from conftest import CEAP_SUBSET, SMALL_SYNTHETIC

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def make(**kw):
    return LiRISMemoryEnv(dataset_options=SMALL_SYNTHETIC, n_slots=4, memory_dim=8, **kw)


def test_registered_under_both_ids():
    env = gym.make("LiRISMemory-v0", dataset_options=SMALL_SYNTHETIC, n_slots=3, memory_dim=5)
    assert isinstance(env.unwrapped, LiRISMemoryEnv)
    env2 = gym.make("affect_env:LiRISMemory-v0", dataset_options=SMALL_SYNTHETIC)
    assert env2.action_space.shape == (10 + 3 * 10 * 16,)  # defaults: N = 10, d = 16 (the agents' too)


def test_passes_gymnasium_and_sb3_checks():
    env = make()
    check_env(env, skip_render_check=True)
    sb3_check_env(make(), warn=False)


def test_spaces_and_observation_types():
    env = make()
    obs, info = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    assert obs["segment"].dtype == np.float32 and obs["memory"].shape == (4, 8)
    np.testing.assert_allclose(obs["memory"], env.predictor.m0.detach().numpy(), rtol=1e-6)
    assert env.action_space.shape == (4 + 3 * 4 * 8,) and env.action_space.dtype == np.float32


def test_reward_is_minus_mae_of_the_afterstate_prediction_and_episode_is_one_movie():
    env = make(predictor_mode="online")
    env.reset(seed=1, options={"movie_index": 0})
    movie = env.movie
    steps, rng = 0, np.random.default_rng(0)
    while True:
        obs, reward, terminated, truncated, info = env.step(rng.uniform(-1, 1, env.action_space.shape))
        assert isinstance(reward, float) and not truncated
        assert reward == pytest.approx(-np.abs(info["prediction"] - info["target"]).mean(), rel=1e-6)
        np.testing.assert_array_equal(info["target"], movie.targets[steps])
        assert info["t"] == steps and info["movie_id"] == movie.movie_id
        np.testing.assert_array_equal(info["oracle"], movie.oracle[steps])
        steps += 1
        if terminated:
            break
    assert steps == movie.n_segments


def test_squared_error_reward():
    env = make(reward="mse")
    env.reset(seed=0)
    _, reward, *_, info = env.step(np.zeros(env.action_space.shape, np.float32))
    assert reward == pytest.approx(-((info["prediction"] - info["target"]) ** 2).mean(), rel=1e-6)


def test_write_reaches_the_observation():
    env = make(predictor_mode="online")
    obs, _ = env.reset(seed=0)
    a = -np.ones(env.action_space.shape, np.float32)
    a[0] = 1.0  # all attention on slot 0
    a[4:4 + 32] = 1.0  # erase everything
    a[4 + 32:4 + 64] = 0.5  # content 0.5
    a[4 + 64:4 + 96] = 1.0  # input gate open
    obs2, *_ = env.step(a)
    np.testing.assert_allclose(obs2["memory"][0], 0.5)
    np.testing.assert_allclose(obs2["memory"][1:], obs["memory"][1:])


def test_predictor_modes():
    online = make(predictor_mode="online", online_update_every=4, online_batch_size=8)
    before = [p.detach().clone() for p in online.predictor.parameters()]
    online.reset(seed=0)
    for _ in range(20):
        online.step(online.action_space.sample())
    assert any(not torch.equal(a, b) for a, b in zip(before, online.predictor.parameters()))

    shared = MemoryPredictor(online.encoder.embed_dim, 4, 8, 2)
    frozen_env = make(predictor_mode="frozen", predictor=shared)
    before = [p.detach().clone() for p in shared.parameters()]
    frozen_env.reset(seed=0)
    for _ in range(20):
        frozen_env.step(frozen_env.action_space.sample())
    assert all(torch.equal(a, b) for a, b in zip(before, shared.parameters()))

    # shared: the agent trains the module, the env sees the new weights at once
    env = make(predictor_mode="shared", predictor=shared)
    env.reset(seed=0, options={"movie_index": 0})
    a = env.action_space.sample()
    _, r1, *_ = env.step(a)
    with torch.no_grad():
        for p in shared.out.parameters():
            p.add_(1.0)
    env.reset(seed=0, options={"movie_index": 0})
    _, r2, *_ = env.step(a)
    assert r1 != r2

    with pytest.raises(ValueError, match="needs a MemoryPredictor"):
        make(predictor_mode="shared")
    with pytest.raises(ValueError, match="does not match"):
        make(predictor_mode="frozen", predictor=MemoryPredictor(7, 4, 8, 2))


def test_seeded_resets_are_reproducible():
    def run():
        env = make(predictor_mode="frozen", predictor=MemoryPredictor(make().encoder.embed_dim, 4, 8, 2))
        torch.manual_seed(0)
        env.reset(seed=3)
        return env.movie.movie_id

    assert run() == run()


def test_lstm_encoder_gives_bounded_observations(small_synthetic):
    enc = LSTMSegmentEncoder(FeatureStats.fit(small_synthetic["train"]), hidden_size=6)
    env = make(encoder=enc)
    assert env.observation_space["segment"].shape == (6,)
    assert env.observation_space["segment"].low.min() == -1 and env.observation_space["segment"].high.max() == 1
    obs, _ = env.reset(seed=0)
    assert np.abs(obs["segment"]).max() < 1


def test_real_table_dataset_with_max_segments():
    env = LiRISMemoryEnv(dataset=str(CEAP_SUBSET), split="test", n_slots=3, memory_dim=4, max_segments=7,
                         dataset_options={"manifest": "ceap360vr"})
    env.reset(seed=0)
    n, terminated = 0, False
    while not terminated:
        _, reward, terminated, _, info = env.step(env.action_space.sample())
        n += 1
    assert n == 7 and np.isfinite(reward) and info["movie_id"].startswith("P27")
    assert "oracle" not in info


def test_bad_arguments_are_reported():
    with pytest.raises(ValueError, match="predictor_mode"):
        make(predictor_mode="learned")
    with pytest.raises(ValueError, match="reward must be one of"):
        make(reward="rmse")
    with pytest.raises(ValueError, match="movie_order must be one of"):
        make(movie_order="shuffled")
    with pytest.raises(affect_env.DataError, match="not found"):
        LiRISMemoryEnv(dataset="/no/such/dir")
    with pytest.raises(affect_env.DataError, match="unknown target"):
        make(targets=("valence", "dominance"))


def test_last_step_reports_the_episode_mse_of_the_env_the_oracle_and_the_memoryless_predictions():
    env = make(predictor_mode="online", max_segments=30)
    env.reset(seed=2)
    rows, rng, terminated = [], np.random.default_rng(1), False
    while not terminated:
        _, _, terminated, _, info = env.step(rng.uniform(-1, 1, env.action_space.shape))
        rows.append(info)
        assert terminated or not set(affect_env.EPISODE_KEYS) & set(info)  # only the episode's last step has them
    target = np.array([r["target"] for r in rows], np.float64)
    mse = {name: ((np.array([r[key] for r in rows], np.float64) - target) ** 2).mean()
           for name, key in (("model", "prediction"), ("oracle", "oracle"), ("no_memory", "no_memory"))}
    last = rows[-1]
    assert last["episode_mse"] == pytest.approx(mse["model"], rel=1e-6)
    assert last["episode_oracle_mse"] == pytest.approx(mse["oracle"], rel=1e-6)
    assert last["episode_no_memory_mse"] == pytest.approx(mse["no_memory"], rel=1e-6)
    gap = (mse["no_memory"] - mse["model"]) / (mse["no_memory"] - mse["oracle"])
    assert last["episode_gap_closed"] == pytest.approx(gap, rel=1e-5)


def test_episode_keys_on_a_dataset_without_references_are_the_mse_only():
    env = LiRISMemoryEnv(dataset=str(CEAP_SUBSET), split="test", n_slots=3, memory_dim=4, max_segments=5,
                         dataset_options={"manifest": "ceap360vr"})
    env.reset(seed=0)
    preds, targets, terminated = [], [], False
    while not terminated:
        _, _, terminated, _, info = env.step(env.action_space.sample())
        preds.append(info["prediction"])
        targets.append(info["target"])
    assert info["episode_mse"] == pytest.approx(((np.array(preds) - np.array(targets)) ** 2).mean(), rel=1e-6)
    assert "episode_gap_closed" not in info


def test_presets_are_registered_with_their_movie_lengths_and_references():
    assert set(affect_env.PRESETS) == {"LiRISMemory-Short-v0", "LiRISMemory-v0", "LiRISMemory-Long-v0",
                                       "LiRISMemory-Marathon-v0"}
    defaults = SyntheticConfig()
    default = affect_env.PRESETS["LiRISMemory-v0"]  # the default id is the generator's defaults
    assert all(getattr(defaults, key) == value for key, value in default.items())
    for env_id, options in affect_env.PRESETS.items():
        env = gym.make(env_id, dataset_options={"n_movies": (2, 1, 1)}, n_slots=2, memory_dim=2).unwrapped
        assert len(env.dataset) == 2 and all(m.n_segments == options["length"] for m in env.dataset)
        assert options["dependency_distance"] < options["length"] and env.table.has_oracle
        assert affect_env.preset_options(env_id) == dict(options)
    with pytest.raises(ValueError, match="env_id must be one of the presets"):
        affect_env.preset_options("LiRISMemory-Huge-v0")
    with pytest.raises(ValueError, match="preset must be one of"):
        make(preset="Short")
    with pytest.raises(ValueError, match="needs dataset='synthetic'"):
        LiRISMemoryEnv(dataset=str(CEAP_SUBSET), preset="LiRISMemory-Short-v0")


def test_shallow_copies_step_their_own_movie_and_memory():
    """Evaluation steps one shallow copy per movie in lockstep: copies share the data and predictor only."""
    env = make(predictor_mode="frozen", predictor=MemoryPredictor(make().encoder.embed_dim, 4, 8, 2), max_segments=5)
    a = np.random.default_rng(0).uniform(-1, 1, (5,) + env.action_space.shape).astype(np.float32)
    alone = []
    for i in (0, 1):
        env.reset(options={"movie_index": i})
        alone.append([env.step(x)[1] for x in a])
    copies = [copy.copy(env) for _ in range(2)]
    assert all(c.predictor is env.predictor and c.table is env.table for c in copies)
    for c, i in zip(copies, (0, 1)):
        c.reset(options={"movie_index": i})
    lockstep = [[c.step(x)[1] for c in copies] for x in a]
    assert [list(r) for r in zip(*lockstep)] == alone
