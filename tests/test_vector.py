"""The batched env (``gym.make_vec(..., vectorization_mode="vector_entry_point")``) and its SB3 adapter: it computes
what the single env computes, autoresets by Gymnasium's conventions, reports episode ends, and SB3 trains on it."""
import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.vector import AutoresetMode
from stable_baselines3 import DDPG, PPO
from stable_baselines3.common.vec_env import VecMonitor

import affect_env
from affect_env import EPISODE_KEYS, LiRISMemoryEnv, LiRISMemoryVectorEnv, MemoryPredictor
from affect_env.sb3 import LiRISMemorySB3VecEnv, make_sb3_vec_env
from conftest import SMALL_SYNTHETIC

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
SMALL = dict(dataset_options=SMALL_SYNTHETIC, n_slots=3, memory_dim=4)


def make_vec(num_envs, **kw):
    return gym.make_vec("LiRISMemory-v0", num_envs=num_envs, vectorization_mode="vector_entry_point", **{**SMALL, **kw})


@pytest.mark.parametrize("mode", ["online", "frozen"])
def test_one_batched_env_reproduces_the_single_env_exactly(mode):
    """Same seed, same actions: identical observations, rewards and infos over several episodes (the batched env
    takes one extra, ignored action to start each next movie)."""
    kw = dict(max_segments=7, online_update_every=4, online_batch_size=8)

    def build(factory):
        torch.manual_seed(0)
        predictor = MemoryPredictor(LiRISMemoryEnv(**SMALL).encoder.embed_dim, 3, 4, 2)
        return factory(**kw, predictor_mode=mode, predictor=predictor if mode == "frozen" else None)

    single = build(lambda **k: LiRISMemoryEnv(**SMALL, **k))
    batched = build(lambda **k: make_vec(1, **k))
    assert isinstance(batched.unwrapped, LiRISMemoryVectorEnv)
    actions = np.random.default_rng(0).uniform(-1, 1, (24,) + single.action_space.shape).astype(np.float32)
    obs1, info1 = single.reset(seed=5)
    obs, info = batched.reset(seed=5)
    for key in obs1:
        np.testing.assert_array_equal(obs[key][0], obs1[key])
    assert info["movie_id"][0] == info1["movie_id"]
    for a in actions:
        obs1, r1, term1, _, info1 = single.step(a)
        obs, r, term, trunc, info = batched.step(a[None])
        assert r[0] == r1 and term[0] == term1 and not trunc[0]
        for key in obs1:
            np.testing.assert_array_equal(obs[key][0], obs1[key])
        for key, value in info1.items():
            assert info[f"_{key}"][0]
            np.testing.assert_array_equal(info[key][0], value)
        if term1:
            obs1, info1 = single.reset()
            obs, r, term, _, info = batched.step(a[None])  # NextStep autoreset: the action is ignored
            assert r[0] == 0 and not term[0] and info["movie_id"][0] == info1["movie_id"] and info["t"][0] == 0
            for key in obs1:
                np.testing.assert_array_equal(obs[key][0], obs1[key])


def test_next_step_autoreset_starts_the_next_movie_on_the_following_step():
    envs = make_vec(2, max_segments=3, predictor_mode="frozen",
                    predictor=MemoryPredictor(LiRISMemoryEnv(**SMALL).encoder.embed_dim, 3, 4, 2))
    assert envs.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP
    envs.reset(seed=0)
    a = envs.action_space.sample()
    for _ in range(2):
        _, _, term, _, _ = envs.step(a)
        assert not term.any()
    obs, _, term, _, info = envs.step(a)
    assert term.all() and info["_episode_mse"].all()
    obs, rewards, term, _, info = envs.step(a)
    assert not term.any() and (rewards == 0).all() and (info["t"] == 0).all() and "target" not in info
    np.testing.assert_array_equal(obs["memory"], np.broadcast_to(envs.unwrapped.core.initial_memory(), (2, 3, 4)))
    starts = envs.unwrapped.table.starts[envs.unwrapped.movie_indices]
    np.testing.assert_array_equal(obs["segment"], envs.unwrapped.table.embeddings[starts])


def test_same_step_autoreset_returns_the_new_movie_and_keeps_the_last_observation_aside():
    envs = make_vec(2, max_segments=3, autoreset_mode="SameStep")
    assert envs.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP
    envs.reset(seed=0)
    a = envs.action_space.sample()
    for _ in range(2):
        last_obs, *_ = envs.step(a)
    obs, _, term, _, info = envs.step(a)
    assert term.all() and info["_final_obs"].all() and info["_final_info"].all()
    assert (info["t"] == 0).all() and (info["final_info"]["t"] == 2).all()
    assert info["final_info"]["_episode_gap_closed"].all() and "episode_mse" not in info
    np.testing.assert_array_equal(info["final_obs"][0]["segment"], last_obs["segment"][0])  # last segment again
    np.testing.assert_array_equal(obs["memory"][1], envs.unwrapped.core.initial_memory())
    _, rewards, term, _, info = envs.step(a)
    assert not term.any() and (rewards != 0).all() and (info["t"] == 0).all()  # its first segment


def test_disabled_autoreset_needs_a_masked_reset():
    envs = make_vec(3, autoreset_mode="Disabled", dataset_options={**SMALL_SYNTHETIC, "length": (230, 240)})
    envs.reset(seed=0)
    a = envs.action_space.sample()
    lengths = envs.unwrapped.table.lengths[envs.unwrapped.movie_indices]
    for _ in range(lengths.min()):
        _, _, term, _, _ = envs.step(a)
    with pytest.raises(gym.error.ResetNeeded, match="reset_mask"):
        envs.step(a)
    before = envs.unwrapped.core.t.copy()
    obs, info = envs.reset(options={"reset_mask": term})
    assert (envs.unwrapped.core.t[term] == 0).all() and (envs.unwrapped.core.t[~term] == before[~term]).all()
    assert (info["_movie_id"] == term).all()


def test_episode_infos_of_each_sub_env_equal_a_direct_computation():
    """Movies of different lengths end at different steps; each end reports that movie's own MSEs."""
    envs = make_vec(3, dataset_options={**SMALL_SYNTHETIC, "length": (221, 240)}, reward="mse")
    envs.reset(seed=1)
    rng = np.random.default_rng(0)
    history = [[] for _ in range(3)]
    checked = 0
    for _ in range(260):
        _, rewards, term, _, info = envs.step(rng.uniform(-1, 1, envs.action_space.shape))
        for i in np.flatnonzero(info["_target"]):
            history[i].append((info["prediction"][i], info["target"][i], info["oracle"][i], info["no_memory"][i]))
            assert rewards[i] == pytest.approx(-((info["prediction"][i] - info["target"][i]) ** 2).mean(), rel=1e-6)
        for i in np.flatnonzero(term):
            pred, target, oracle, no_memory = (np.array(x, np.float64) for x in zip(*history[i]))
            mse, o, n = (((x - target) ** 2).mean() for x in (pred, oracle, no_memory))
            assert info["episode_mse"][i] == pytest.approx(mse, rel=1e-6)
            assert info["episode_oracle_mse"][i] == pytest.approx(o, rel=1e-6)
            assert info["episode_no_memory_mse"][i] == pytest.approx(n, rel=1e-6)
            assert info["episode_gap_closed"][i] == pytest.approx((n - mse) / (n - o), rel=1e-5)
            assert not info["_episode_mse"][np.flatnonzero(~term)].any()
            history[i], checked = [], checked + 1
    assert checked == 3 and len(set(len(h) for h in history)) > 1


def test_online_predictor_is_shared_and_updated_once_per_online_update_every_sub_env_steps():
    envs = make_vec(4, online_update_every=6, online_batch_size=8).unwrapped
    before = [p.detach().clone() for p in envs.predictor.parameters()]
    envs.reset(seed=0)
    for _ in range(9):
        envs.step(envs.action_space.sample())
    core = envs.core
    assert core.buf_n == 36
    steps = [int(s["step"]) for s in core.optimizer.state.values()]
    assert steps and set(steps) == {36 // 6}
    assert any(not torch.equal(a, b) for a, b in zip(before, envs.predictor.parameters()))


@pytest.mark.parametrize("env_id", list(affect_env.PRESETS))
def test_make_vec_works_for_every_preset(env_id):
    envs = gym.make_vec(env_id, num_envs=2, vectorization_mode="vector_entry_point",
                        dataset_options={"n_movies": (2, 1, 1)}, n_slots=2, memory_dim=2)
    obs, _ = envs.reset(seed=0)
    assert envs.observation_space.contains(obs)
    obs, rewards, *_ = envs.step(envs.action_space.sample())
    assert envs.observation_space.contains(obs) and rewards.shape == (2,) and np.isfinite(rewards).all()
    length = affect_env.PRESETS[env_id]["length"]
    assert (envs.unwrapped.table.lengths == length).all()


def test_bad_arguments_are_reported():
    with pytest.raises(ValueError, match="num_envs must be"):
        make_vec(0)
    with pytest.raises(ValueError, match="autoreset_mode must be one of"):
        make_vec(2, autoreset_mode="EveryStep")
    envs = make_vec(2)
    with pytest.raises(gym.error.ResetNeeded):
        envs.step(envs.action_space.sample())
    with pytest.raises(ValueError, match="seed must be one int"):
        envs.reset(seed=[1, 2])
    envs.reset(seed=0)
    with pytest.raises(ValueError, match="actions must have shape"):
        envs.step(np.zeros(envs.single_action_space.shape))
    with pytest.raises(ValueError, match="movie_index must be in"):
        envs.reset(options={"movie_index": 99})
    with pytest.raises(ValueError, match="one per sub-env"):
        envs.reset(options={"movie_index": [0, 1, 2]})
    with pytest.raises(ValueError, match="blas_threads"):
        make_vec(2, blas_threads=0)


def test_seeded_batches_are_reproducible_and_movies_can_be_chosen_per_sub_env():
    def run(**reset):
        torch.manual_seed(0)
        envs = make_vec(3)
        envs.reset(**reset)
        envs.action_space.seed(0)
        rewards = [envs.step(envs.action_space.sample())[1] for _ in range(40)]
        return envs.unwrapped.movie_indices, np.array(rewards)

    (movies, rewards), (movies2, rewards2) = run(seed=4), run(seed=4)
    np.testing.assert_array_equal(movies, movies2)
    np.testing.assert_array_equal(rewards, rewards2)
    chosen, _ = run(seed=4, options={"movie_index": [5, 0, 5]})
    np.testing.assert_array_equal(chosen, [5, 0, 5])


def test_sb3_adapter_trains_ppo_and_ddpg_and_reports_gap_closed_through_vec_monitor():
    venv = VecMonitor(make_sb3_vec_env(num_envs=4, max_segments=8, **SMALL), info_keywords=EPISODE_KEYS)
    model = PPO("MultiInputPolicy", venv, n_steps=16, batch_size=32, n_epochs=1, seed=0, device="cpu").learn(64)
    episodes = list(model.ep_info_buffer)
    assert len(episodes) == 8 and all(e["l"] == 8 and np.isfinite(e["episode_gap_closed"]) for e in episodes)
    DDPG("MultiInputPolicy", venv, learning_starts=8, buffer_size=100, seed=0, device="cpu").learn(32)

    venv = make_sb3_vec_env(num_envs=2, max_segments=2, **SMALL)
    venv.seed(3)
    obs = venv.reset()
    assert obs["memory"].shape == (2, 3, 4)
    venv.step(np.zeros((2,) + venv.action_space.shape, np.float32))
    _, rewards, dones, infos = venv.step(np.zeros((2,) + venv.action_space.shape, np.float32))
    assert dones.all() and rewards.dtype == np.float32
    assert all(info["t"] == 1 and "terminal_observation" in info and "episode_mse" in info for info in infos)
    assert all(info["t"] == 0 for info in venv.reset_infos)
    assert venv.get_attr("n_slots") == [3, 3]
    with pytest.raises(ValueError, match="SameStep"):
        LiRISMemorySB3VecEnv(make_vec(2))
    with pytest.raises(TypeError, match="LiRISMemoryVectorEnv"):
        LiRISMemorySB3VecEnv(gym.make("LiRISMemory-v0", **SMALL))
