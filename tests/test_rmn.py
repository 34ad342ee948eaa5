"""The RMN agent: networks, afterstate targets, replay of labels, exploration, save/load, resume, CLI."""
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from affect_env import LiRISMemoryEnv
from affect_env.memory import decode_action, prediction_error, write
from agents import evaluate, train_ddpg
from agents.cli import Command, parse_command, run_cli
from agents.baselines import training as baseline_training
from agents.baselines.training import validation_row
from agents.config import TrainConfig, recipe
from agents.inputs import build_encoder, load_splits, make_env
from agents.rmn.factory import load_warm_start, make_rmn, predict_dataset, validation_metrics
from agents.runs import load_model_file as load_model
from agents.runs import train
from agents.runs.callbacks import CheckpointAndEval
from agents.runs import pipeline
from agents.runs.directory import RunDirectory
from agents.runs.pipeline import SHORT_MOVIES, pretrain_writer, pretrain_writer_options
from agents.rmn import RMN
from agents.rmn.buffers import LabelReplayBuffer, log_keep_step
from agents.rmn.networks import erase_biases
from agents.rmn.long_range import CreditLoss, JumpLoss
from agents.rmn.refresh import adjoint_horizons, reverse_adjoint
from conftest import SMALL_SYNTHETIC

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
TINY = dict(n_slots=4, memory_dim=8, net_arch=(32, 32), predictor_hidden=(16,), batch_size=32,
            learning_starts=100, encoder="pooling", eval_every=150, checkpoint_every=150, jump_distance=60,
            dataset_options=SMALL_SYNTHETIC, device="cpu", pretrain_writer_epochs=0)


def cfg_of(**flat) -> TrainConfig:
    """The default recipe with the given fields (bare names) replaced."""
    return TrainConfig().update(flat, "test")


def tiny_env(**kw):
    return LiRISMemoryEnv(dataset_options=SMALL_SYNTHETIC, n_slots=4, memory_dim=8, **kw)


#: the agent's settings in the unit tests: the paper's one-step recipe with a tiny read-out, on which each test
#: switches on the part it checks (``jump_weight``, ``refresh_every``...)
AGENT_BASE = dict(jump_mode="credit", jump_reads=1, adjoint_step=10.0, jump_positions="uniform", n_slots=4,
                  memory_dim=8, net_arch=(32, 32), predictor_hidden=(16,), readout="mlp")
SB3_ARGS = ("learning_rate", "buffer_size", "learning_starts", "batch_size", "tau", "gamma", "train_freq",
            "gradient_steps", "seed", "device")


def tiny_agent(env=None, **kw):
    """An RMN on the tiny env: SB3 arguments as given, every other keyword a config field of the recipe or memory."""
    params = dict(learning_starts=50, batch_size=16, seed=0, device="cpu", train_freq=1)
    params.update({k: kw.pop(k) for k in list(kw) if k in SB3_ARGS})
    cfg = recipe("paper").update({**AGENT_BASE, **kw}, "tiny_agent")
    return RMN("RMNPolicy", env or tiny_env(), recipe=cfg.rmn, policy_kwargs=dict(memory=cfg.memory, n_targets=2),
               **params)


def test_actor_outputs_valid_write_parts_and_actions():
    model = tiny_agent()
    obs = model.env.reset()
    tensor_obs, _ = model.policy.obs_to_tensor(obs)
    parts = model.policy.write_parts(tensor_obs)
    assert parts.attention.shape == (1, 4) and parts.erase.shape == (1, 4, 8)
    torch.testing.assert_close(parts.attention.sum(-1), torch.ones(1))
    action, _ = model.predict(obs, deterministic=True)
    assert action.shape == (1, 4 + 3 * 32) and np.abs(action).max() <= 1
    decoded = decode_action(action[0], 4, 8)
    np.testing.assert_allclose(decoded.attention, parts.attention[0].detach().numpy(), atol=1e-5)


def test_erase_biases_spread_over_dimensions_give_each_slot_several_time_scales():
    assert erase_biases(-4, 8) == -4.0
    spread = erase_biases([0, -6], 8)
    assert len(spread) == 8 and spread[0] == 0 and spread[-1] == -6 and np.all(np.diff(spread) < 0)
    with pytest.raises(ValueError, match="one number, \\[first, last\\] or 8 values"):
        erase_biases([0, -1, -2], 8)
    model = tiny_agent(erase_bias=[0, -6], coupled_gates=True)
    obs, _ = model.policy.obs_to_tensor(model.env.reset())
    erase = model.policy.write_parts(obs).erase[0]  # (N, d): fast dimensions first, slow ones last
    assert (erase[:, 0] > 0.3).all() and (erase[:, -1] < 0.02).all()


def test_top_k_write_leaves_the_other_slots_exactly_as_they_were_in_torch_and_numpy(tmp_path):
    model = tiny_agent(write_top_k=2)
    actor, mirror = model.actor, model._numpy_actor()
    e, m = torch.randn(5, actor.features.embed_in.in_features), torch.randn(5, 4, 8).clamp(-1, 1)
    with torch.no_grad():
        parts = actor(e, m)
        new = write(m, parts)
    assert ((parts.attention > 0).sum(-1) == 2).all()
    torch.testing.assert_close(parts.attention.sum(-1), torch.ones(5))
    untouched = parts.attention == 0
    assert torch.equal(new[untouched], m[untouched]) and not torch.equal(new[~untouched], m[~untouched])
    for b in range(5):
        np.testing.assert_allclose(mirror(e[b].numpy(), m[b].numpy()).attention, parts.attention[b].numpy(), atol=1e-6)
    # the choice of slots stays trainable through the kept weights; a saved model keeps k
    parts = actor(e, m)
    parts.attention[:, 0].sum().backward()
    assert actor.head.weight.grad.abs().sum() > 0
    model.save(tmp_path / "m.zip")
    assert RMN.load(tmp_path / "m.zip", device="cpu").actor.write_top_k == 2
    # k >= N writes every slot (a study over N keeps one k); a negative or fractional k is an error
    wide = tiny_agent(write_top_k=5)
    with torch.no_grad():
        assert wide.actor.write_top_k == 0 and (wide.actor(e, m).attention > 0).all()
    for k in (-1, 1.5):
        with pytest.raises(ValueError, match="write_top_k must be a whole number"):
            tiny_agent(write_top_k=k)


def test_top_k_weight_ramps_from_the_full_write_to_the_top_k_write_and_is_saved_as_it_stands(tmp_path):
    model = tiny_agent(write_top_k=2, write_top_k_weight=[0.0, 1.0, 0.5])
    actor, mirror = model.actor, model._numpy_actor()
    e, m = torch.randn(5, actor.features.embed_in.in_features), torch.randn(5, 4, 8).clamp(-1, 1)
    assert actor.top_k_weight == 0.0 and model.actor_target.top_k_weight == 0.0
    with torch.no_grad():
        full = actor(e, m).attention
        assert (full > 0).all()
        model.policy.set_write_top_k_weight(1.0)
        top_k = actor(e, m).attention
        model.policy.set_write_top_k_weight(0.25)
        mixed = actor(e, m).attention
    torch.testing.assert_close(mixed, 0.25 * top_k + 0.75 * full)
    torch.testing.assert_close(mixed.sum(-1), torch.ones(5))
    for b in range(5):
        np.testing.assert_allclose(mirror(e[b].numpy(), m[b].numpy()).attention, mixed[b].numpy(), atol=1e-6)
    # training moves the weight with the run's progress: 0 -> 1 over its first half, then 1
    model.learn(200)
    assert model.actor.top_k_weight == 1.0 and model.actor_target.top_k_weight == 1.0
    model._current_progress_remaining = 0.8
    model.train(gradient_steps=1, batch_size=16)
    assert model.actor.top_k_weight == pytest.approx(0.4) and model.actor_target.top_k_weight == pytest.approx(0.4)
    model.save(tmp_path / "m.zip")
    loaded = RMN.load(tmp_path / "m.zip", device="cpu")
    assert loaded.actor.top_k_weight == pytest.approx(0.4) and loaded.actor_target.top_k_weight == pytest.approx(0.4)
    with pytest.raises(ValueError, match="write_top_k_weight"):
        tiny_agent(write_top_k=2, write_top_k_weight=[0.0, 2.0, 0.5])


def test_env_uses_the_agents_predictor_and_m0():
    model = tiny_agent()
    env = model.env.envs[0].unwrapped
    assert env.predictor is model.policy.predictor and env.predictor_mode == "shared"
    obs = model.env.reset()
    np.testing.assert_allclose(obs["memory"][0], model.policy.predictor.m0.detach().numpy(), rtol=1e-6)


def test_replay_keeps_labels_and_order_and_the_critic_target_is_the_afterstate_one():
    model = tiny_agent()
    model.learn(200)
    buf = model.replay_buffer
    env = model.env.envs[0].unwrapped
    n = buf.size()
    # labels come from info["target"]: each stored step's target is that movie's target at t
    ids = [m.movie_id for m in env.dataset]
    assert buf.targets.shape == (buf.buffer_size, 2) and (buf.t[:n] >= 0).all()
    batch = buf.sample_windows(32, 3)
    assert batch.segments.shape == (32, 4, env.encoder.embed_dim) and batch.afterstates.shape == (32, 3, 4, 8)
    assert ids  # dataset present
    # consecutive steps: the afterstate at s-1 is the memory the step s started from
    starts = buf._valid_starts(1, 64)
    later = starts[buf.t[starts] > 0]
    for s in later[:10]:
        assert buf.episode[s - 1] == buf.episode[s] and buf.t[s - 1] == buf.t[s] - 1

    # afterstate critic target: r_t (recomputed now) + gamma Q'(e_{t+1}, T(m_t, mu'(e_{t+1}, m_t)))
    batch = buf.sample_windows(16, 1)
    loss, _, _ = model._critic_loss(batch)
    e, m, y, e1 = batch.segments[:, 0], batch.afterstates[:, 0], batch.targets[:, 0], batch.segments[:, 1]
    with torch.no_grad():
        r = -(model.predictor(e, m) - y).abs().mean(-1)
        q_next = model.critic_target(e1, write(m, model.actor_target(e1, m))).squeeze(-1)
        target = r + model.gamma * (1 - batch.dones[:, 0]) * q_next
        expected = ((model.critic(e, m).squeeze(-1) - target) ** 2).mean()
    torch.testing.assert_close(loss, expected)


@pytest.mark.parametrize("reward", ["mae", "mse"])
def test_rewards_are_recomputed_with_the_current_predictor(reward):
    model = tiny_agent(reward=reward)
    model.learn(120)
    batch = model.replay_buffer.sample_windows(8, 1)
    e, m, y = batch.segments[:, 0], batch.afterstates[:, 0], batch.targets[:, 0]
    before = model._reward(e, m, y).detach().clone()
    error = model.predictor(e, m) - y
    expected = error.abs().mean(-1) if reward == "mae" else (error ** 2).mean(-1)
    torch.testing.assert_close(before, -expected.detach())
    with torch.no_grad():
        model.predictor.out[-1].bias.add_(0.5)
    assert not torch.allclose(before, model._reward(e, m, y))


def test_training_moves_m0_and_the_jump_loss_reaches_the_write():
    model = tiny_agent(jump_weight=1.0, jump_distance=30)
    m0 = model.policy.predictor.m0.detach().clone()
    model.learn(400)
    assert not torch.equal(m0, model.policy.predictor.m0.detach())
    model.actor.optimizer.zero_grad()
    jump = JumpLoss(model.recipe.long_range)
    jump.loss(model, jump.sample(model.replay_buffer, 16)).backward()
    assert model.actor.head.weight.grad.abs().sum() > 0


def test_numpy_mirrors_used_while_collecting_follow_every_optimizer_step():
    """The env's NumPy predictor and the NumPy write policy re-export weights when the optimizers change them
    (the default Adam is fused, which writes parameters without bumping their version counters)."""
    model = tiny_agent()
    assert all(g["fused"] for g in model.actor.optimizer.param_groups + model.critic.optimizer.param_groups)
    e = np.random.default_rng(0).normal(size=model.policy.embed_dim).astype(np.float32)
    m = np.random.default_rng(1).uniform(-1, 1, size=(4, 8)).astype(np.float32)
    mirror, predictor = model._numpy_actor(), model.policy.predictor
    before = mirror(e, m).erase.copy(), predictor.predict_numpy(e, m).copy()
    model.learn(200)  # 150 updates after learning_starts
    torch_parts = model.actor(torch.as_tensor(e)[None], torch.as_tensor(m)[None])
    np.testing.assert_allclose(mirror(e, m).erase, torch_parts.erase[0].detach().numpy(), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(predictor.predict_numpy(e, m),
                               predictor(torch.as_tensor(e)[None], torch.as_tensor(m)[None])[0].detach().numpy(),
                               rtol=1e-4, atol=1e-6)
    assert not np.allclose(before[0], mirror(e, m).erase) and not np.allclose(before[1], predictor.predict_numpy(e, m))


def test_update_thread_splits_the_gradients_exactly_and_changes_no_result(tmp_path):
    agents = [tiny_agent(learning_starts=150, jump_weight=1.0, jump_distance=30, jump_reads=2, update_thread=t)
              for t in (False, True)]
    for model in agents:
        model.learn(150)  # fills the replay (no update yet): both agents hold the same data and weights
    model = agents[0]
    batch, pairs = model.replay_buffer.sample_windows(16, 1), model.long_range.sample(model.replay_buffer, 16)
    actor_params, critic_params = model._actor_parameters(), model._critic_parameters()
    model.actor.optimizer.zero_grad()  # each objective in one backward pass ...
    (model._actor_loss(batch)[0] + model.long_range.weight * model.long_range.loss(model, pairs)).backward()
    whole_actor = [p.grad.clone() for p in actor_params]
    model.critic.optimizer.zero_grad()
    model._critic_loss(batch)[0].backward()
    whole_critic = [p.grad.clone() for p in critic_params]
    # ... and as an update computes them: the critic's and the long-range gradients (worker), plus the actor's
    worker = model._critic_and_long_range_gradients(batch, pairs)
    critic_gradients, jump_gradients = worker.critic_gradients, worker.long_range_gradients
    actor_gradients = torch.autograd.grad(model._actor_loss(batch)[0], actor_params, allow_unused=True)
    model._set_gradients(actor_params, actor_gradients, jump_gradients)
    model._set_gradients(critic_params, critic_gradients)
    assert all(w.abs().sum() > 0 for w in whole_actor[:3] + whole_critic[-2:])  # (the critic's output
    # layer starts at zero: only it has a gradient at first)
    for w, p in zip(whole_actor + whole_critic, actor_params + critic_params):
        torch.testing.assert_close(p.grad, w, rtol=1e-4, atol=1e-7)
    after = []
    for model in agents:
        np.random.seed(0)  # the buffer draws with NumPy's global generator
        before = torch.cat([p.detach().flatten() for p in model.policy.parameters()])
        model.train(gradient_steps=3, batch_size=16)
        after.append(torch.cat([p.detach().flatten() for p in model.policy.parameters()]))
        assert not torch.equal(after[-1], before)
    assert agents[0]._worker is None and agents[1]._worker is not None  # the second ran its part in the thread
    torch.testing.assert_close(after[1], after[0], rtol=0, atol=0)  # the same computation either way
    agents[1].save(tmp_path / "threaded.zip")  # the worker is not saved; a loaded agent starts its own
    loaded = RMN.load(tmp_path / "threaded.zip", env=tiny_env())
    assert loaded._worker is None and loaded.recipe.update_thread


def test_exploration_noise_is_per_part_and_in_range():
    model = tiny_agent(learning_starts=0, exploration_std=0.05 ** 0.5)
    model._last_obs = model.env.reset()
    deterministic, _ = model.predict(model._last_obs, deterministic=True)
    actions = np.stack([model._sample_action(0)[0][0] for _ in range(50)])
    assert np.abs(actions).max() <= 1.0 + 1e-6
    assert not np.allclose(actions[0], deterministic[0])
    for a in actions[:5]:
        att = decode_action(a, 4, 8).attention
        assert abs(att.sum() - 1) < 1e-5 and att.min() >= 0
    # content noise has the paper's variance where it is not clipped
    content = actions[:, 4 + 32:4 + 64] - deterministic[0, 4 + 32:4 + 64]
    inside = np.abs(actions[:, 4 + 32:4 + 64]) < 0.999
    assert abs(content[inside].std() - 0.05 ** 0.5) < 0.05


def test_exploration_is_reproducible_from_the_seed_and_resumes_its_stream(tmp_path):
    first, again, other = (tiny_agent(learning_starts=0, seed=seed) for seed in (3, 3, 4))
    obs = first.env.reset()

    def noisy_actions(model, n=5):
        model._last_obs = obs
        return np.stack([model._sample_action(0)[0][0] for _ in range(n)])

    np.testing.assert_array_equal(noisy_actions(first), noisy_actions(again))
    assert not np.allclose(noisy_actions(other), noisy_actions(first))
    first.save(tmp_path / "m.zip")
    loaded = RMN.load(tmp_path / "m.zip", env=first.get_env())
    np.testing.assert_allclose(noisy_actions(loaded), noisy_actions(first), atol=1e-6)


def test_paper_recipe_is_the_paper_as_written_and_overrides_are_recorded():
    paper, default = recipe("paper").flat(), TrainConfig().flat()
    assert paper["window"] == 1 and paper["jump_weight"] == 0 and paper["exploration_std"] == pytest.approx(0.05 ** 0.5)
    assert paper["erase_bias"] == 0 and not paper["coupled_gates"] and paper["value_scale"] == 1
    assert paper["refresh_every"] == 0 and paper["train_freq"] == 1 and paper["encoder_reconstruction"] == 0
    assert paper["reward"] == "mae" and default["reward"] == "mae+mse"
    assert paper["write_top_k"] == 0 and default["write_top_k"] == 2  # the paper writes every slot
    assert paper["same_step_credit"] == 1 and default["same_step_credit"] == [1.0, 0.2, 0.3]
    assert paper["predictor_hidden"] == [] and paper["readout"] == "paper"  # y = FC(sum_n w(n) m(n))
    assert paper["pretrain_writer_epochs"] == 0
    # the default recipe's value scale follows the discount (1 - gamma), so tuning gamma keeps the critic's weight
    assert TrainConfig().rmn.critic_scale(0.99) == pytest.approx(0.01)
    assert TrainConfig().rmn.critic_scale(0.9) == pytest.approx(0.1)
    assert recipe("paper").rmn.critic_scale(0.9) == 1.0
    # --paper-faithful is --recipe paper; an override of the recipe is recorded as such
    cli = parse_command(Command, ["--paper-faithful", "--pretrain-writer-epochs", "5"], "t", "t").train
    assert cli.recipe == "paper" and cli.overrides() == {"pretrain_writer_epochs": 5}
    assert TrainConfig.from_dict({"paper_faithful": True, "n_slots": 4}).overrides() == {"n_slots": 4}


@pytest.mark.parametrize("batch_movies", [1, 64])
def test_refresh_recomputes_stored_memories_with_the_current_actor(batch_movies):
    """The refresh (NumPy on the CPU, a batch of movies of different lengths at once, or one movie per group in
    alternating threads) stores what the torch actor writes."""
    model = tiny_agent(learning_starts=20)
    model.learn(300)  # one full movie (240 steps) and the start of the next
    buf = model.replay_buffer
    episodes = buf.complete_episodes()
    assert [len(e) for e in episodes] == [240, 60]
    with torch.no_grad():  # change the actor: stored memories are now stale
        model.actor.head.bias.add_(0.3)
    assert model.refresh_memories(batch_movies=batch_movies) == 300
    for episode in episodes:
        seg = torch.as_tensor(buf.segments[episode])
        with torch.no_grad():
            m = model.predictor.m0.unsqueeze(0)
            for t in range(len(seg)):
                m = write(m, model.actor(seg[t:t + 1], m))
                np.testing.assert_allclose(buf.afterstates[episode[t]], m[0].numpy(), rtol=1e-5, atol=1e-6)


def test_refresh_lets_the_predictor_catch_up_with_the_writer_and_leaves_the_writer_alone():
    model = tiny_agent(learning_starts=20, refresh_every=10 ** 6, refresh_fit=0)
    model.learn(300)
    with torch.no_grad():  # a writer that changed since the memories were stored
        model.actor.head.bias.add_(0.3)
    model.refresh_memories()
    buf, episode = model.replay_buffer, model.replay_buffer.complete_episodes()[0]
    seg, mem, y = (torch.as_tensor(a[episode]) for a in (buf.segments, buf.afterstates, buf.targets))

    def error():
        with torch.no_grad():
            return prediction_error(model.predictor(seg, mem), y, model.reward_error).mean().item()

    before, writer = error(), [p.detach().clone() for p in model.actor.parameters()]
    info = model.refresh(fit_steps=200)
    assert info["refreshed_steps"] == sum(len(e) for e in buf.complete_episodes())
    assert error() < 0.9 * before  # the predictor fitted the memories its writer makes
    assert all(torch.equal(a, b) for a, b in zip(writer, model.actor.parameters()))  # the writer did not move
    assert model._last_refresh == model._n_updates  # periodic refreshes count from here
    assert "refresh_fit_loss" not in model.refresh(fit_steps=0)  # a refresh alone does not train
    assert TrainConfig().rmn.refresh.refresh_fit > 0 and recipe("paper").rmn.refresh.refresh_fit == 0


def test_a_partial_refresh_recomputes_only_its_drawn_movies_and_the_samplers_keep_to_them(tmp_path):
    model = tiny_agent(learning_starts=20, jump_weight=1.0, jump_mode="adjoint", jump_distance=60,
                       refresh_every=10 ** 6, refresh_movies=1)
    model.learn(800)  # three whole movies (240 steps each) and the start of a fourth
    buf = model.replay_buffer
    episodes = buf.complete_episodes()
    assert [len(e) for e in episodes] == [240, 240, 240, 80]
    stale = buf.afterstates.copy()
    with torch.no_grad():  # a writer that changed since the memories were stored
        model.actor.head.bias.add_(0.3)
    assert model.refresh_memories(movies=2) == 480
    changed = [not np.allclose(buf.afterstates[e], stale[e]) for e in episodes]
    assert sum(changed) == 2 and not changed[3]  # two whole movies drawn; the running one is never drawn
    drawn = np.concatenate([e for e, c in zip(episodes, changed) if c])
    assert set(model._refreshed_rows) == set(drawn) == set(np.flatnonzero(buf.adjoint_ready))  # adjoints: fresh only
    assert set(buf._valid_starts(1, 500, among=model._refreshed_rows)) <= set(drawn)  # the catch-up's windows
    assert model.refresh(fit_steps=5, movies=1)["refreshed_steps"] == 240
    assert model.refresh(fit_steps=0)["refreshed_steps"] == 800 and model._refreshed_rows is None  # all: validation
    assert buf.adjoint_ready[np.concatenate(episodes[:3])].all()

    calls = []  # the periodic refresh in training draws refresh_movies movies
    model.refresh_memories = lambda **kw: calls.append(kw) or RMN.refresh_memories(model, **kw)
    model.recipe.refresh.refresh_every = 2
    model.train(gradient_steps=4, batch_size=16)
    assert calls == [{"movies": 1}, {"movies": 1}]
    with pytest.raises(ValueError, match="refresh_movies"):
        tiny_agent(refresh_movies=-1)
    # and the config's field reaches the agent
    cfg = cfg_of(**{**TINY, "refresh_movies": 3, "out": str(tmp_path / "run")})
    data = load_splits(cfg)
    encoder = build_encoder(cfg, data, tmp_path, progress=False)
    assert make_rmn(cfg, make_env(cfg, data["train"], encoder), encoder).recipe.refresh.refresh_movies == 3


@pytest.mark.parametrize("tail", [True, False])
def test_a_windowed_refresh_recomputes_a_stretch_from_the_stored_memory_before_it(tmp_path, tail):
    """With ``refresh_window`` a partial refresh redoes one stretch per drawn movie (the opening for about half of
    them), starting from the memory stored before it; the rest of the movie keeps its memories and its per-step
    sensitivities, and the adjoints carry the stretch's reads and (``refresh_tail``) those after it, read by the
    current predictor from the stored memories."""
    model = tiny_agent(learning_starts=20, jump_weight=1.0, jump_mode="adjoint", jump_distance=60,
                       refresh_every=10 ** 6, refresh_movies=2, refresh_window=100, refresh_tail=tail)
    model.learn(800)  # three whole movies (240 steps each) and the start of a fourth
    buf = model.replay_buffer
    episodes = buf.complete_episodes()
    starts, tails = [], []
    for _ in range(3):
        with torch.no_grad():  # a writer that changed since the memories were stored
            model.actor.head.bias.add_(0.1)
        stale_after, stale_keep = buf.afterstates.copy(), buf.log_keep.copy()
        assert model.refresh_memories(movies=2) == 200
        refreshed = model._refreshed_rows
        assert set(np.flatnonzero(buf.adjoint_ready)) == set(refreshed)  # adjoints: the stretches only
        assert set(buf._valid_starts(1, 200, among=refreshed)) <= set(refreshed)  # the catch-up's windows
        for movie in episodes[:3]:
            stretch = movie[np.isin(movie, refreshed)]
            if not len(stretch):
                assert np.array_equal(buf.afterstates[movie], stale_after[movie])
                continue
            s = int(np.flatnonzero(movie == stretch[0])[0])
            starts.append(s)
            assert np.array_equal(stretch, movie[s:s + 100])  # consecutive steps
            seg = torch.as_tensor(buf.segments[stretch])
            with torch.no_grad():  # the current writer from the stored memory before the stretch (m0 at the opening)
                m = model.predictor.m0[None] if s == 0 else torch.as_tensor(stale_after[movie[s - 1]])[None]
                step_keep = []
                for t in range(len(stretch)):
                    parts = model.actor(seg[t:t + 1], m)
                    m = write(m, parts)
                    step_keep.append(log_keep_step(parts.attention[..., None] * parts.erase)[0].numpy())
                    np.testing.assert_allclose(buf.afterstates[stretch[t]], m[0].numpy(), rtol=1e-5, atol=1e-6)
            outside = np.concatenate([movie[:s], movie[s + 100:]])
            assert np.array_equal(buf.afterstates[outside], stale_after[outside])
            # the running sum of log-keeps: the stretch's new writes, and every other write's own term as it was
            keep = buf.log_keep[movie]
            per_step = np.diff(keep, axis=0, prepend=np.zeros_like(keep[:1]))
            old_per_step = np.diff(stale_keep[movie], axis=0, prepend=np.zeros_like(keep[:1]))
            np.testing.assert_allclose(per_step[s:s + 100], np.stack(step_keep), atol=1e-4)
            np.testing.assert_allclose(np.delete(per_step, np.s_[s:s + 100], axis=0),
                                       np.delete(old_per_step, np.s_[s:s + 100], axis=0), atol=1e-4)
            # adjoints: the current predictor's error gradients of the reads, carried back along the writes: the
            # stretch's own, or all from the stretch to the movie's end (the later ones from the stored memories)
            read = movie[s:] if tail else stretch
            with torch.enable_grad():
                mem = torch.as_tensor(buf.afterstates[read]).requires_grad_(True)
                err = prediction_error(model.predictor(torch.as_tensor(buf.segments[read]), mem),
                                       torch.as_tensor(buf.targets[read]), model.reward_error)
                grads, = torch.autograd.grad(err.sum(), mem)
            expected = reverse_adjoint(grads[None], torch.as_tensor(np.exp(per_step[s:s + len(read)]))[None],
                                       *adjoint_horizons(60, model.recipe.long_range.jump_spacing))[0, :100]
            np.testing.assert_allclose(buf.adjoint[stretch], expected.numpy(), rtol=1e-3, atol=1e-6)
            if tail and s + 100 < len(movie):  # the later reads do reach the stretch
                tails.append(np.abs(expected[-1].numpy()).max())
    assert 0 in starts and any(s > 0 for s in starts)  # the opening, and stretches elsewhere
    assert not tail or (tails and min(tails) > 1e-4)
    assert model.refresh_memories() == 800  # the refresh before a validation: every movie, whole
    assert model._refreshed_rows is None and buf.adjoint_ready[np.concatenate(episodes[:3])].all()
    for bad in (-1, 2.5, "long"):
        with pytest.raises(ValueError, match="refresh_window must be a whole number"):
            tiny_agent(refresh_window=bad)
    cfg = cfg_of(**{**TINY, "refresh_window": 50, "out": str(tmp_path / "run")})
    data = load_splits(cfg)
    encoder = build_encoder(cfg, data, tmp_path, progress=False)
    assert make_rmn(cfg, make_env(cfg, data["train"], encoder), encoder).recipe.refresh.refresh_window == 50


def test_every_validation_reads_with_a_predictor_in_step_with_its_writer(tmp_path):
    """The training loop refreshes (and fits) the RMN before each evaluation, and calls ``on_eval`` after it."""
    calls = []

    class Model:
        num_timesteps, refresh_every = 0, 1000
        logger = type("Logger", (), {"record": lambda *args, **kwargs: None, "name_to_value": {},
                                     "output_formats": []})()

        def refresh(self):
            calls.append(("refresh", self.num_timesteps))

        def save(self, path):  # the best model so far
            open(path, "w").close()

    model = Model()
    callback = CheckpointAndEval(RunDirectory(tmp_path),
                                 lambda m: calls.append(("evaluate", m.num_timesteps)) or {"mse": 1.0},
                                 eval_every=10, checkpoint_every=0, t0=0.0,
                                 on_eval=lambda row: calls.append(("on_eval", row["timesteps"])),
                                 before_eval=lambda m: m.refresh())
    callback.init_callback(model)
    for n in (5, 10):
        model.num_timesteps = n
        callback.on_step()
    assert calls == [("refresh", 10), ("evaluate", 10), ("on_eval", 10)]


def test_a_second_validation_set_selects_the_model_and_keeps_the_best_by_each_score(tmp_path):
    """With ``long_*`` columns in the validation rows, ``best_model.zip`` follows ``select_on`` and
    ``best/<score>.zip`` keeps the best model by each score; a resumed callback goes on from the saved bests."""
    class Model:
        num_timesteps = 0
        logger = type("Logger", (), {"record": lambda *args, **kwargs: None, "name_to_value": {},
                                     "output_formats": []})()

        def save(self, path):  # the step the model was saved at stands for the model
            Path(path).write_text(str(self.num_timesteps))

    scores = {10: (0.5, 0.0), 20: (0.4, 0.6), 30: (0.6, 0.1), 40: (0.55, 0.55)}  # (validation, second set)

    def score(m):
        val, long = scores[m.num_timesteps]
        return {"mse": 1.0 - val, "gap_closed": val, "long_mse": 1.0 - long, "long_gap_closed": long}

    def run(steps):
        model, callback = Model(), CheckpointAndEval(RunDirectory(tmp_path), score, eval_every=10,
                                                     checkpoint_every=0, t0=0.0, select_on="mean")
        callback.init_callback(model)
        for n in steps:
            model.num_timesteps = n
            callback.on_step()

    def saved(name):
        return int((tmp_path / name).read_text())

    run((10, 20, 30))
    assert saved("best_model.zip") == 20  # mean 0.25, 0.5, 0.35
    assert (saved("best/val.zip"), saved("best/long.zip"), saved("best/mean.zip")) == (30, 20, 20)
    assert json.loads((tmp_path / "best" / "val.json").read_text())["timesteps"] == 30
    run((40,))  # resumed: mean 0.55 beats 0.5, validation 0.55 does not beat 0.6
    assert saved("best_model.zip") == 40 and saved("best/mean.zip") == 40
    assert (saved("best/val.zip"), saved("best/long.zip")) == (30, 20)
    (tmp_path / "other").mkdir()
    callback = CheckpointAndEval(RunDirectory(tmp_path / "other"), lambda m: {"mse": 0.5}, eval_every=10,
                                 checkpoint_every=0, t0=0.0, select_on="long")
    callback.init_callback(Model())
    callback.model.num_timesteps = 10
    with pytest.raises(ValueError, match="select_on='long': the validation rows have no such score"):
        callback.on_step()


def test_training_with_a_second_validation_set_of_longer_movies(tiny_run, tmp_path):
    """``long_val_options`` (``--long-val-option``): every validation also scores the validation movies read with
    those options (here three times longer), and ``select_on`` picks the model kept; training itself is the
    same as without the second set."""
    cli = parse_command(Command, ["--long-val-options", "length=720", "dependency_distance=400", "--select-on",
                                  "long"], "t", "t").train
    assert cli.data.long_val_options == {"length": 720, "dependency_distance": 400} and cli.run.select_on == "long"
    out = tmp_path / "long_val"
    cfg = cfg_of(timesteps=300, out=str(out), **TINY).update(
        {"long_val_options": cli.data.long_val_options, "select_on": "long"})
    summary = train(cfg, progress=False)
    log = pd.read_csv(out / "eval_log.csv")
    assert list(log["timesteps"]) == [150, 300] and {"long_gap_closed", "long_mse"} <= set(log.columns)
    assert not np.allclose(log["long_mse"], log["mse"])  # other movies
    plain = pd.read_csv(tiny_run[0] / "eval_log.csv")  # the same config without the second set
    np.testing.assert_array_equal(log["mse"], plain["mse"])
    best = json.loads((out / "best_model.json").read_text())
    assert best == json.loads((out / "best" / "long.json").read_text())
    assert best["long_gap_closed"] == log["long_gap_closed"].max()
    assert summary["select_on"] == "long" and np.isfinite(summary["val_long_gap_closed"])
    for name in ("val", "mean"):
        assert (out / "best" / f"{name}.zip").exists()
    # a kept model evaluates on the run's own data (its config is one folder up)
    assert evaluate.main([str(out / "best" / "mean.zip"), "--out", str(tmp_path / "mean")]) == 0
    assert len(pd.read_csv(tmp_path / "mean" / "metrics.csv")) == 1 + len(load_splits(cfg)["test"])


def test_credit_pairs_carry_the_sensitivity_of_the_later_memory_to_the_earlier_one():
    """``keep`` of a pair (k, j) is dm_j/dm_k along the stored writes (autograd through the same writes)."""
    model = tiny_agent(jump_distance=60)
    model.learn(300)
    buf = model.replay_buffer
    model.refresh_memories()
    episode = buf.complete_episodes()[0]
    k, j = episode[10], episode[40]
    memory = torch.as_tensor(buf.afterstates[k]).unsqueeze(0).requires_grad_(True)
    m = memory
    for p in episode[11:41]:  # replay the writes k+1..j with their decisions held fixed
        with torch.no_grad():
            parts = model.actor(torch.as_tensor(buf.segments[p]).unsqueeze(0), m)
        m = write(m, parts)
    np.testing.assert_allclose(m[0].detach().numpy(), buf.afterstates[j], atol=1e-5)  # same chain
    grad, = torch.autograd.grad(m.sum(), memory)
    np.testing.assert_allclose(grad[0].numpy(), np.exp(buf.log_keep[j] - buf.log_keep[k]), rtol=1e-4, atol=1e-7)
    pairs = buf.sample_credit(64, 60, reads=3)
    assert pairs.keep.shape == (64, 3, *pairs.memory.shape[1:]) and (pairs.keep > 0).all() and (pairs.keep <= 1).all()
    assert pairs.valid.shape == (64, 3) and pairs.valid.sum() > 0
    far = buf.sample_credit(64, 1000, reads=4)  # reads past a movie's end (240 steps) are masked out
    assert 0 < far.valid.mean() < 1
    uniform, log, mixed = (buf.sample_credit(256, 60, reads=4, spacing=s) for s in ("uniform", "log", "mixed"))
    median = {}
    for name, pairs in (("uniform", uniform), ("log", log), ("mixed", mixed)):
        assert (pairs.distance >= 0).all() and (pairs.distance <= 60).all()
        median[name] = pairs.distance[pairs.valid > 0].float().median()
    assert median["log"] < median["mixed"] < median["uniform"]
    with pytest.raises(ValueError, match="spacing"):
        buf.sample_credit(8, 60, spacing="linear")
    # writes moved towards the opening: still stored steps with their own inputs, and many more early ones
    stored = buf.segments[:buf.size()]
    early = {}
    for positions in ("uniform", "mixed"):
        pairs = buf.sample_credit(300, 60, reads=2, positions=positions)
        k = np.array([np.flatnonzero((stored == e).all(-1))[0] for e in pairs.segment.numpy()])  # segments are unique
        np.testing.assert_array_equal(pairs.memory.numpy(), buf.afterstates[k])
        np.testing.assert_array_equal(pairs.starts_movie.numpy(), buf.t[k] == 0)
        early[positions] = (buf.t[k] < 5).mean()
    assert early["uniform"] < 0.06 and early["mixed"] > 0.12, early
    with pytest.raises(ValueError, match="positions"):
        buf.sample_credit(8, 60, positions="early")
    model.recipe.long_range.jump_reads = 4
    credit = CreditLoss(model.recipe.long_range)
    # the write's parameters get a gradient from a later step's loss
    loss = credit.loss(model, credit.sample(model.replay_buffer, 16))
    model.actor.zero_grad()
    loss.backward()
    assert all(p.grad is not None for p in model.actor.parameters())
    with pytest.raises(ValueError, match="jump_mode"):
        tiny_agent(jump_mode="bptt")


@pytest.mark.parametrize("spacing", ["uniform", "log", "mixed"])
def test_reverse_adjoint_sums_every_later_read_with_its_sensitivity_and_weight(spacing):
    """One backward scan gives ``sum_{j>k} w(j - k) prod_{k<s<=j} keep_s g_j`` (checked term by term)."""
    g = torch.randn(2, 9, 3, 2, generator=torch.Generator().manual_seed(0))
    keep = torch.rand(2, 9, 3, 2, generator=torch.Generator().manual_seed(1))
    horizons, weights = adjoint_horizons(6, spacing)
    assert weights.sum() == pytest.approx(1.0) and horizons.max() == 6
    w = lambda distance: sum(wh / h * (1 - 1 / h) ** (distance - 1) for h, wh in zip(horizons, weights))  # noqa: E731
    expected = torch.zeros_like(g)
    for k in range(9):
        for j in range(k + 1, 9):
            expected[:, k] += w(j - k) * keep[:, k + 1:j + 1].prod(dim=1) * g[:, j]
    torch.testing.assert_close(reverse_adjoint(g, keep, horizons, weights), expected)
    assert sum(w(d) for d in range(1, 2000)) == pytest.approx(1.0, abs=1e-6)  # a weighted mean over the reads
    if spacing != "uniform":
        assert w(1) > 5 * w(6)  # near reads weigh more, as with log-uniform distances


def test_stored_adjoint_is_the_gradient_of_every_later_reads_error_along_the_stored_writes(monkeypatch):
    monkeypatch.setattr("agents.rmn.refresh.ADJOINT_CHUNK", 50)  # the error gradients in chunks across the movie
    model = tiny_agent(learning_starts=20, jump_weight=1.0, jump_mode="adjoint", jump_distance=60,
                       jump_spacing="mixed", refresh_every=100)
    model.learn(300)  # one whole movie (240 steps) and the start of the next
    buf = model.replay_buffer
    model.refresh_memories()  # adjoints of the current predictor (training moved it since the last refresh)
    whole, running = buf.complete_episodes()
    assert buf.adjoint_ready[whole].all() and not buf.adjoint_ready[running].any()  # a running movie has no future
    k = whole[30]
    later = whole[31:]
    memory = torch.as_tensor(buf.afterstates[k]).requires_grad_(True)
    keep = torch.as_tensor(np.exp(buf.log_keep[later] - buf.log_keep[k]))
    m_j = torch.as_tensor(buf.afterstates[later]) + keep * (memory - memory.detach())
    error = prediction_error(model.predictor(torch.as_tensor(buf.segments[later]), m_j),
                             torch.as_tensor(buf.targets[later]), model.reward_error)
    horizons, weights = adjoint_horizons(60, "mixed")
    distance = torch.arange(1, len(later) + 1, dtype=torch.float32)[:, None]
    w = (torch.as_tensor(weights / horizons, dtype=torch.float32)
         * (1 - 1 / torch.as_tensor(horizons, dtype=torch.float32)) ** (distance - 1)).sum(-1)
    expected, = torch.autograd.grad((w * error).sum(), memory)
    np.testing.assert_allclose(buf.adjoint[k], expected.numpy(), rtol=1e-3, atol=1e-7)
    assert np.abs(buf.adjoint[k]).sum() > 0
    # the loss carries it into the write: its gradient is A_k dm_k/dtheta, and it samples only whole movies
    writes = model.long_range.sample(model.replay_buffer, 32)
    assert buf.adjoint_ready[[np.flatnonzero((buf.segments == e).all(-1))[0] for e in writes.segment.numpy()]].all()
    def write_gradient(loss_of_write):
        model.actor.zero_grad()
        m = model._start_memory(writes.prev_memory, writes.starts_movie)
        loss_of_write(write(m, model.actor(writes.segment, m))).backward()
        return torch.cat([p.grad.flatten() for p in model.actor.parameters()])

    def adjoint_loss_gradient(samples):
        model.actor.zero_grad()
        model.long_range.loss(model, samples).backward()
        return torch.cat([p.grad.flatten() for p in model.actor.parameters()])

    # the stored memories are the current writes (just refreshed, in NumPy: equal up to float32 rounding): the
    # gradient is exactly A_k dm_k/dtheta
    linear = write_gradient(lambda m_k: (writes.adjoint * m_k).sum(dim=(-2, -1)).mean())
    assert linear.abs().sum() > 0
    torch.testing.assert_close(adjoint_loss_gradient(writes), linear, rtol=1e-3, atol=1e-5 * linear.abs().max().item())
    # and the trust region stops pulling once a write has moved adjoint_step * A_k
    moved_far = writes._replace(memory=writes.memory + model.recipe.long_range.adjoint_step * writes.adjoint)
    assert adjoint_loss_gradient(moved_far).abs().max() < 1e-4 * linear.abs().max()
    with pytest.raises(ValueError, match="refresh_every"):
        tiny_agent(jump_weight=1.0, jump_mode="adjoint", refresh_every=0)
    with pytest.raises(ValueError, match="adjoint_step"):
        tiny_agent(jump_weight=1.0, jump_mode="adjoint", refresh_every=100, adjoint_step=0)


def test_a_replay_saved_before_the_adjoint_loss_still_loads_and_resumes(tmp_path):
    """Checkpoints written by earlier versions (no adjoint store in the pickled buffer) load, train and refresh."""
    import pickle

    model = tiny_agent(learning_starts=20, jump_weight=1.0, jump_mode="adjoint", jump_distance=60, refresh_every=50)
    model.learn(260)
    old = model.replay_buffer
    del old.adjoint, old.adjoint_ready  # what an earlier version pickled
    (tmp_path / "replay.pkl").write_bytes(pickle.dumps(old))
    model.load_replay_buffer(tmp_path / "replay.pkl")
    buf = model.replay_buffer
    assert buf.adjoint is None and not buf.adjoint_ready.any() and buf.size() == 260
    model.learn(100, reset_num_timesteps=False)  # stores adjoints again at its first update
    whole = buf.complete_episodes()[0]
    assert buf.adjoint_ready[whole].all() and np.abs(buf.adjoint[whole]).sum() > 0


def test_same_step_credit_scales_what_the_immediate_reward_teaches_the_write():
    model = tiny_agent(jump_distance=60)
    model.learn(300)
    with torch.no_grad():  # a critic that values nothing: only the immediate reward is left in the actor loss
        model.critic.value[-1].weight.zero_()
        model.critic.value[-1].bias.zero_()
    batch = model.replay_buffer.sample_windows(32, 1)
    actor_grad, predictor_grad, losses = {}, {}, {}
    for weight in (1.0, 0.25, 0.0):
        model._same_step_weight = weight
        model.actor.optimizer.zero_grad()
        loss = model._actor_loss(batch)[0]
        loss.backward()
        losses[weight] = loss.item()
        actor_grad[weight] = torch.cat([p.grad.flatten() for p in model.actor.parameters()])
        predictor_grad[weight] = torch.cat([p.grad.flatten() for p in model.predictor.parameters()])
    assert actor_grad[1.0].abs().sum() > 0 and actor_grad[0.0].abs().sum() == 0
    torch.testing.assert_close(actor_grad[0.25], 0.25 * actor_grad[1.0], rtol=1e-4, atol=1e-8)
    for weight in (0.25, 0.0):  # the loss itself and what it teaches the predictor do not change
        assert losses[weight] == pytest.approx(losses[1.0], rel=1e-6)
        torch.testing.assert_close(predictor_grad[weight], predictor_grad[1.0], rtol=1e-4, atol=1e-8)
    for spacing in ("uniform", "log", "mixed"):  # the credit loss then reads only later steps
        pairs = model.replay_buffer.sample_credit(256, 60, reads=4, spacing=spacing, min_distance=1)
        distance = pairs.distance[pairs.valid > 0]
        assert (distance >= 1).all() and (distance == 1).any()
    with pytest.raises(ValueError, match="min_distance"):
        model.replay_buffer.sample_credit(8, 60, min_distance=61)
    for bad in (1.5, [1.0, 0.2], [1.0, 0.2, 0.0]):
        with pytest.raises(ValueError, match="same_step_credit"):
            tiny_agent(same_step_credit=bad)
    annealed = tiny_agent(same_step_credit=[1.0, 0.2, 0.5])  # 1 at the start, 0.2 from half the run on
    annealed.learn(400)
    assert annealed._same_step_weight == pytest.approx(0.2)


def test_stored_sensitivity_follows_the_actions_taken():
    """Before any refresh, ``log_keep`` accumulates ``log(1 - att * erase)`` of the actions actually written."""
    env = tiny_env()
    buf = LabelReplayBuffer(50, env.observation_space, env.action_space, device="cpu")
    obs, info = env.reset(seed=0)
    total = np.zeros((4, 8))
    rng = np.random.default_rng(0)
    for t in range(5):
        action = rng.uniform(-1, 1, env.action_space.shape).astype(np.float32)
        parts = decode_action(action, 4, 8)
        total += np.log1p(-parts.attention[:, None] * parts.erase)
        nxt, _, term, trunc, info = env.step(action)
        batched = lambda o: {k: v[None] for k, v in o.items()}  # noqa: E731
        buf.add(batched(obs), batched(nxt), action[None], np.zeros(1), np.array([term or trunc]), [info])
        np.testing.assert_allclose(buf.log_keep[t], total, rtol=1e-5, atol=1e-6)
        obs = nxt


def test_a_movie_whose_start_was_overwritten_is_not_refreshed():
    model = tiny_agent(learning_starts=20, buffer_size=300)
    model.learn(560)  # wraps: the first movie's start is overwritten
    episodes = model.replay_buffer.complete_episodes()
    assert all(model.replay_buffer.t[e[0]] == 0 for e in episodes)
    assert sum(len(e) for e in episodes) < 300


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "tiny"
    cfg = cfg_of(timesteps=300, out=str(out), **TINY)
    summary = train(cfg, progress=False)
    return out, summary, cfg


def test_end_to_end_run_writes_every_output(tiny_run):
    out, summary, cfg = tiny_run
    for name in ("config.json", "encoder.pt", "model.zip", "metrics.csv", "eval_log.csv", "summary.json",
                 "figures/predictions.png", "figures/memory_attention.png", "figures/training_curves.png",
                 "checkpoint/model.zip", "checkpoint/replay.pkl", "best_model.zip", "best_model.json"):
        assert (out / name).exists(), name
    metrics = pd.read_csv(out / "metrics.csv")
    assert metrics.iloc[0]["scope"] == "global" and "gap_closed" in metrics.columns
    test = load_splits(cfg)["test"]
    assert len(metrics) == 1 + len(test)
    pred = pd.read_csv(out / "predictions" / f"{test.movies[0].movie_id}.csv")
    assert list(pred.columns) == ["time", "valence_pred", "valence_true", "arousal_pred", "arousal_true"]
    assert len(pred) == test.movies[0].n_segments
    log = pd.read_csv(out / "eval_log.csv")
    assert list(log["timesteps"]) == [150, 300]
    assert any((out / "tb").rglob("events.out.tfevents*"))
    # the writer's gradient share by source (the diagnostic of where its learning signal comes from), logged with
    # each validation and drawn in the training curves
    shares = log[[f"train_writer_share_{s}" for s in ("critic", "reward", "long_range")]].dropna()
    assert len(shares) >= 1 and np.allclose(shares.sum(axis=1), 1.0) and (shares.to_numpy() >= 0).all()
    assert summary["timesteps"] == 300 and np.isfinite(summary["test_mse"])


def test_saved_model_reproduces_predictions(tiny_run):
    out, _, cfg = tiny_run
    test = load_splits(cfg)["test"]
    model = load_model(out, device="cpu")
    again = load_model(out / "model.zip", device="cpu")
    p1 = predict_dataset(model, test)[0]["prediction"]
    p2 = predict_dataset(again, test)[0]["prediction"]
    np.testing.assert_array_equal(p1, p2)
    saved = pd.read_csv(out / "predictions" / f"{test.movies[0].movie_id}.csv")
    np.testing.assert_allclose(saved["valence_pred"], p1[:, 0], rtol=1e-5, atol=1e-6)
    # the encoder and its normalisation statistics travel in the zip
    assert model.policy.encoder is not None and model.policy.encoder.stats.dim == test.feature_dim
    assert model.recipe.reward == cfg.rmn.reward == "mae+mse"  # the default recipe's reward is saved with the agent
    assert model.policy.memory.erase_biases() == pytest.approx(list(np.linspace(0, -9, cfg.memory.memory_dim)))
    assert model.actor.write_top_k == 2 and model.recipe.long_range.jump_positions == "mixed"  # saved too


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cpu_and_gpu_agree_on_predictions_and_training_losses(tiny_run, tmp_path):
    out, _, cfg = tiny_run
    test = load_splits(cfg)["test"]
    cpu, gpu = load_model(out, device="cpu"), load_model(out, device="cuda")
    assert gpu.device.type == "cuda"
    np.testing.assert_allclose(predict_dataset(gpu, test)[0]["prediction"],
                               predict_dataset(cpu, test)[0]["prediction"], rtol=1e-4, atol=1e-5)
    # one replayed batch through the update's losses (critic, actor + predictor, credit) on both devices
    agent = tiny_agent(jump_weight=1.0, jump_distance=30, jump_reads=2)
    agent.learn(200)
    agent.save(tmp_path / "agent.zip")
    agent.save_replay_buffer(tmp_path / "replay.pkl")
    on_gpu = RMN.load(tmp_path / "agent.zip", device="cuda")
    on_gpu.load_replay_buffer(tmp_path / "replay.pkl")
    losses = []
    for model in (agent, on_gpu):
        np.random.seed(0)
        batch = model.replay_buffer.sample_windows(16, 1)
        losses.append([model._critic_loss(batch)[0].item(), model._actor_loss(batch)[0].item(),
                       model.long_range.loss(model, model.long_range.sample(model.replay_buffer, 16)).item()])
    np.testing.assert_allclose(losses[1], losses[0], rtol=1e-4, atol=1e-6)


def interrupted_at_call(n: int, fn):
    """``fn``, but its ``n``-th call raises ``KeyboardInterrupt`` (Ctrl-C or SIGTERM during that call)."""
    calls = []

    def wrapped(*args, **kwargs):
        calls.append(1)
        if len(calls) == n:
            raise KeyboardInterrupt
        return fn(*args, **kwargs)

    return wrapped


def test_resume_continues_an_interrupted_run(tmp_path, monkeypatch):
    """An interrupted run (Ctrl-C, SIGTERM) writes a checkpoint where it stopped and continues from there; a run
    stopped without one (killed) continues from its last periodic checkpoint, the validations after it redone,
    not repeated, and the model kept is the best of the validations in the log, not one of the abandoned part's;
    one stopped during a validation makes that validation when it resumes."""
    out = tmp_path / "resumable"
    cfg = cfg_of(timesteps=300, out=str(out), **{**TINY, "eval_every": 75})
    with pytest.raises(KeyboardInterrupt):  # after the validation of step 225, past the checkpoint of step 150
        train(cfg, progress=False, on_eval=lambda row: (_ for _ in ()).throw(KeyboardInterrupt())
              if row["timesteps"] >= 225 else None)
    state = json.loads((out / "checkpoint" / "state.json").read_text())
    assert state["num_timesteps"] == 225 and not (out / "model.zip").exists()  # nothing lost
    assert list(pd.read_csv(out / "eval_log.csv")["timesteps"]) == [75, 150, 225]
    train(cfg_of(out=str(out)), resume=True, progress=False)
    # from step 225 on, not from the start; (the last update's 4 steps may end past 300: validated there too)
    assert list(pd.read_csv(out / "eval_log.csv")["timesteps"])[:4] == [75, 150, 225, 300]

    # killed after step 225 (no checkpoint written then): back to the periodic checkpoint of step 150
    out = tmp_path / "killed"
    cfg = cfg.update({"out": str(out)})
    with pytest.raises(RuntimeError):
        train(cfg, progress=False, on_eval=lambda row: (_ for _ in ()).throw(RuntimeError("killed"))
              if row["timesteps"] >= 225 else None)
    state = json.loads((out / "checkpoint" / "state.json").read_text())
    assert state["num_timesteps"] == 150 and list(pd.read_csv(out / "eval_log.csv")["timesteps"]) == [75, 150, 225]
    # make the abandoned validation of step 225 the best so far by far
    abandoned = {**json.loads((out / "best_model.json").read_text()), "timesteps": 225, "gap_closed": 99.0}
    (out / "best_model.json").write_text(json.dumps(abandoned))
    summary = train(cfg_of(out=str(out)), resume=True, progress=False)
    log = pd.read_csv(out / "eval_log.csv")
    assert list(log["timesteps"])[:4] == [75, 150, 225, 300]
    best = json.loads((out / "best_model.json").read_text())
    assert best["timesteps"] == int(log.loc[log["gap_closed"].idxmax(), "timesteps"])
    assert best["gap_closed"] == pytest.approx(log["gap_closed"].max())
    assert summary["selected"].startswith(f"the model of step {best['timesteps']}")
    state = json.loads((out / "checkpoint" / "state.json").read_text())  # one copy of the bests: the latest
    assert [p.name for p in (out / "checkpoint").glob("best_*")] == [state["best"]]
    with pytest.raises(ValueError, match="--resume"):
        train(cfg, progress=False)  # refuses to overwrite a run

    # stopped (SIGTERM) during the validation of step 150: the checkpoint is of step 150, without its validation;
    # the resumed run makes that validation first
    out = tmp_path / "during_validation"
    monkeypatch.setattr(pipeline, "validation_metrics", interrupted_at_call(2, validation_metrics))
    with pytest.raises(KeyboardInterrupt):
        train(cfg.update({"out": str(out)}), progress=False)
    monkeypatch.undo()
    assert json.loads((out / "checkpoint" / "state.json").read_text())["num_timesteps"] == 150
    assert list(pd.read_csv(out / "eval_log.csv")["timesteps"]) == [75]
    train(cfg_of(out=str(out)), resume=True, progress=False)
    assert list(pd.read_csv(out / "eval_log.csv")["timesteps"])[:4] == [75, 150, 225, 300]


def test_ctrl_c_names_the_run_and_a_run_of_any_budget_is_validated_at_its_end(tmp_path, capsys, monkeypatch):
    out = tmp_path / "short"
    calls = []
    monkeypatch.setattr(RMN, "learn",
                        lambda self, *a, **k: calls.append(1) or (_ for _ in ()).throw(KeyboardInterrupt()))
    args = ["--config", str(_tiny_file(tmp_path)), "--timesteps", "128", "--out", str(out), "--no-progress"]
    assert run_cli(train_ddpg.main, args) == 130 and calls
    err = capsys.readouterr().err
    assert f"--resume {out}" in err and "RUN_DIR" not in err
    monkeypatch.undo()
    summary = train(cfg_of(out=str(out)), resume=True, progress=False)  # 128 steps: no periodic validation (150)
    assert list(pd.read_csv(out / "eval_log.csv")["timesteps"]) == [128]  # but one at the end
    assert summary["selected"] == "the model of step 128, the best validation gap_closed " \
        f"({json.loads((out / 'best_model.json').read_text())['gap_closed']:.4g}) of 1 validation(s)"


def _tiny_file(tmp_path):
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps({k: list(v) if isinstance(v, tuple) else v for k, v in TINY.items()}))
    return path


def test_warm_start_from_a_bptt_run_starts_from_its_networks_and_encoder(tmp_path):
    """``init_from`` a ``memory_tbptt`` run: the agent predicts as that model did before any update (same write
    network, predictor, m0 and encoder), trains on from there, and a mismatched run is refused by name."""
    bptt = tmp_path / "bptt"
    start = train(cfg_of(**{**TINY, "out": str(bptt), "algo": "memory_tbptt", "bptt_window": 0, "epochs": 2}),
                  progress=False)
    cfg = cfg_of(**{**TINY, "encoder": "lstm", "init_from": str(bptt), "timesteps": 150,
                    "out": str(tmp_path / "rmn")})
    warm, warm_encoder = load_warm_start(cfg)
    data = load_splits(cfg)
    encoder = build_encoder(cfg, data, tmp_path, given=warm_encoder)
    model = make_rmn(cfg, make_env(cfg, data["train"], encoder), encoder, warm=warm)
    assert validation_metrics(model, data["val"], encoder.embed_dataset(data["val"]))["mse"] == \
        pytest.approx(start["val_mse"], rel=1e-5)
    for a, b in zip(model.actor.parameters(), model.actor_target.parameters()):
        torch.testing.assert_close(a, b)
    summary = train(cfg, progress=False)
    assert summary["trained_timesteps"] == 150 and np.isfinite(summary["test_mse"])
    assert TrainConfig.load(tmp_path / "rmn" / "config.json").warm_start.init_from == str(bptt)
    for change, message in [({"n_slots": 5}, "n_slots 4 \\(config: 5\\)"),
                            ({"net_arch": (16,)}, "net_arch \\[32, 32\\]"),
                            ({"targets": ("valence",)}, "n_targets 2"),
                            ({"init_from": str(tmp_path / "missing")}, "no baseline model found")]:
        with pytest.raises(ValueError, match=f"init_from .*{message}"):
            load_warm_start(cfg.update(change))
    segment = tmp_path / "segment"
    train(cfg_of(**{**TINY, "out": str(segment), "algo": "segment", "epochs": 1, "hidden": 8}), progress=False)
    with pytest.raises(ValueError, match="a 'segment' model; a warm start needs a memory_tbptt run"):
        load_warm_start(cfg.update({"init_from": str(segment)}))
    with pytest.raises(ValueError, match="init_from is for the RMN agent"):
        cfg.update({"out": str(tmp_path / "other"), "algo": "segment"})
    shutil.rmtree(bptt)  # a run continued from its checkpoint no longer needs the run it started from
    assert train(cfg_of(out=str(tmp_path / "rmn")), resume=True, progress=False)["test_mse"] == \
        pytest.approx(summary["test_mse"])


def test_writer_pretraining_starts_the_agent_from_bptt_on_short_movies_and_is_reused(tmp_path, capsys, monkeypatch):
    """By default the writer is pretrained by full BPTT on short synthetic movies (``writer_pretrain/``) and the
    agent starts from it: before any RMN update it scores exactly what the pretrained model scored. A finished
    pretraining is reused by a rerun after an interruption; an unfinished one goes on from its last epoch to the
    same end; one with other settings is redone."""
    import os

    out = tmp_path / "run"
    cfg = cfg_of(**{**TINY, "pretrain_writer_epochs": 2, "timesteps": 150, "out": str(out)})
    summary = train(cfg, progress=False)
    before = json.loads((out / "writer_pretrain" / "summary.json").read_text())
    assert before["model"] == "memory_tbptt" and before["window"] == 0 and before["epochs"] == 2
    assert summary["pretrain_writer"]["epochs"] == 2
    log = pd.read_csv(out / "eval_log.csv")  # the agent is validated before its first update, then as usual
    assert log["timesteps"].tolist() == [0, 150, 152]  # and at the end (the last update collected 4 steps)
    assert log["mse"].iloc[0] == pytest.approx(before["val_mse"], rel=1e-5)
    used = TrainConfig.load(out / "writer_pretrain" / "config.json")
    assert used.data.train_dataset_options == SHORT_MOVIES
    assert used.data.dataset_options == TrainConfig.load(out / "config.json").data.dataset_options
    assert used.encoding.encoder == str(out / "encoder.pt")  # the agent's own encoder, pretrained once
    assert pretrain_writer_options(TrainConfig()) == SHORT_MOVIES
    assert pretrain_writer_options(cfg_of(dataset="data/ceap")) == {}  # real movies as they are
    assert pretrain_writer_options(cfg_of(pretrain_writer_options={"length": 60})) == {"length": 60}
    model_pt = out / "writer_pretrain" / "model.pt"
    stamp = os.stat(model_pt).st_mtime_ns
    shutil.rmtree(out / "checkpoint")  # as if killed before the RMN's first checkpoint: the rerun says so, reuses
    train(cfg_of(out=str(out)), resume=True, progress=False)  # the finished pretraining and validates it once
    assert "has no checkpoint yet: its training starts again from step 0" in capsys.readouterr().err
    assert os.stat(model_pt).st_mtime_ns == stamp
    assert pd.read_csv(out / "eval_log.csv")["timesteps"].tolist() == [0, 150, 152]
    shutil.rmtree(out / "writer_pretrain")  # killed in its second epoch: goes on from the first, to the same end
    monkeypatch.setattr(baseline_training, "validation_row", interrupted_at_call(2, validation_row))
    with pytest.raises(KeyboardInterrupt):
        pretrain_writer(cfg, out, progress=False)
    monkeypatch.undo()
    assert RunDirectory(out / "writer_pretrain").has_checkpoint()
    assert not (out / "writer_pretrain" / "summary.json").exists()
    pretrain_writer(cfg, out, progress=False)
    assert pd.read_csv(out / "writer_pretrain" / "eval_log.csv")["epoch"].tolist() == [1, 2]
    after = json.loads((out / "writer_pretrain" / "summary.json").read_text())
    assert (after["val_mse"], after["test_mse"]) == (before["val_mse"], before["test_mse"])
    stamp = os.stat(model_pt).st_mtime_ns
    pretrain_writer(cfg, out, progress=False)  # finished with these settings: reused
    assert os.stat(model_pt).st_mtime_ns == stamp
    pretrain_writer(cfg.update({"pretrain_writer_epochs": 3}), out, progress=False)  # other settings: redone
    assert len(pd.read_csv(out / "writer_pretrain" / "eval_log.csv")) == 3
    other_movies = {"length": 100, "dependency_distance": 30}
    pretrain_writer(cfg.update({"pretrain_writer_options": other_movies}), out, progress=False)
    assert TrainConfig.load(out / "writer_pretrain" / "config.json").data.train_dataset_options == other_movies
    for change, message in [({"pretrain_writer_epochs": -1}, "pretrain_writer_epochs must be a whole number"),
                            ({"pretrain_writer_options": "short"}, "pretrain_writer_options must be a mapping")]:
        with pytest.raises(ValueError, match=message):
            cfg.update(change)
    # a baseline run (here the pretraining) is evaluated as an RMN run is

    for given in (out / "writer_pretrain", model_pt):
        assert evaluate.main([str(given), "--out", str(tmp_path / "again")]) == 0
        again = pd.read_csv(tmp_path / "again" / "metrics.csv").iloc[0]
        redone = json.loads((out / "writer_pretrain" / "summary.json").read_text())
        assert again["mse"] == pytest.approx(redone["test_mse"], rel=1e-5)
        assert (tmp_path / "again" / "figures" / "memory_attention.png").exists()


def test_cli_reports_bad_input_in_one_line(tmp_path, capsys):
    code = run_cli(train_ddpg.main, ["--dataset", str(tmp_path / "missing"), "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "not found" in err[0]
    bad = tmp_path / "bad.json"
    bad.write_text('{"n_slots": 4, "learning_rat": 0.1}')
    code = run_cli(train_ddpg.main, ["--config", str(bad), "--out", str(tmp_path / "r2")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "learning_rat" in err[0] and "bad.json" in err[0]
    # the agent's settings are checked before the data is loaded and the encoder pretrained
    for fields, message in [({"write_top_k": -1}, "write_top_k must be a whole number >= 0"),
                            ({"write_top_k_weight": [0, 1.5, 0.3]}, "write_top_k_weight: give a number"),
                            ({"same_step_credit": 2}, "same_step_credit: give a number"),
                            ({"jump_spacing": "linear"}, "jump_spacing must be one of"),
                            ({"erase_bias": [0, -1, -2]}, "erase_bias: give one number"),
                            ({"adjoint_step": 0}, "adjoint_step must be a number > 0"),
                            ({"jump_mode": "adjoint", "refresh_every": 0}, "jump_mode='adjoint' stores"),
                            ({"select_on": "long"}, "select_on='long' scores a second validation set"),
                            ({"select_on": "best"}, "select_on must be one of")]:
        bad.write_text(json.dumps(fields))
        code = run_cli(train_ddpg.main, ["--config", str(bad), "--dataset", str(tmp_path / "missing"),
                                         "--out", str(tmp_path / "r3")])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1 and message in err[0] and str(bad) in err[0], err  # not "not found"
        assert not (tmp_path / "r3").exists()
    code = run_cli(train_ddpg.main, ["--init-from", str(tmp_path / "no_run"), "--out", str(tmp_path / "r4")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith(f"error: init_from {tmp_path / 'no_run'}: "), err


def test_evaluate_on_longer_movies_with_dataset_options(tiny_run, tmp_path, capsys):
    """``--dataset-option`` re-evaluates a trained model on other synthetic movies (here: longer, with
    dependencies 400 segments apart), reporting gap_closed per cause."""
    out, _, _ = tiny_run
    code = evaluate.main([str(out), "--out", str(tmp_path / "long"), "--dataset-options", "length=480",
                          "dependency_distance=400"])
    shown = json.loads(capsys.readouterr().out)
    assert code == 0 and shown["segments"] == 2 * 480
    assert {"gap_closed_valence_genre", "gap_closed_valence_characters", "gap_closed_arousal_genre_arc"} <= set(shown)
    assert len(pd.read_csv(tmp_path / "long" / "predictions" / "synthetic-test-0000.csv")) == 480
    along = pd.read_csv(tmp_path / "long" / "error_by_position.csv")  # a tenth of the movie per row by default
    assert along["start"].tolist() == list(range(0, 480, 48)) and (along["movies"] == 2).all()
    assert (tmp_path / "long" / "figures" / "error_by_position.png").stat().st_size > 0
    assert evaluate.main([str(out), "--out", str(tmp_path / "by100"), "--position-stretch", "100"]) == 0
    assert pd.read_csv(tmp_path / "by100" / "error_by_position.csv")["end"].tolist() == [100, 200, 240]
    with pytest.raises(ValueError, match="KEY=VALUE"):
        evaluate.main([str(out), "--out", str(tmp_path / "x"), "--dataset-options", "length"])
    with pytest.raises(ValueError, match="--position-stretch must be a whole number"):
        evaluate.main([str(out), "--out", str(tmp_path / "x"), "--position-stretch", "-5"])
    assert not (tmp_path / "x").exists()


def test_train_only_dataset_options_change_the_training_movies_and_nothing_else():
    """``--train-dataset-option`` (``train_dataset_options``) trains on other movies, e.g. of several lengths,
    while validation and test keep the dataset's own."""
    cfg = parse_command(Command, ["--dataset-options", "n_movies=[6,2,2]", "length=240", "dependency_distance=200",
                                  "intro_span=10", "--train-dataset-options", "length=[240,480]"], "t", "t").train
    assert cfg.data.train_dataset_options == {"length": [240, 480]}
    data = load_splits(cfg)
    assert len({len(m.targets) for m in data["train"]}) > 1
    assert all(240 <= len(m.targets) <= 480 for m in data["train"])
    assert all(len(m.targets) == 240 for s in ("val", "test") for m in data[s])
    saved = TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert load_splits(saved)["train"].movies[3].targets.shape == data["train"].movies[3].targets.shape


@pytest.mark.parametrize("coupled,arch", [(True, (32, 32)), (False, (16,)), (False, (16, 16, 16))])
def test_numpy_streaming_equals_batched_torch_rollout(coupled, arch):
    from agents.rmn.networks import SlotActor
    from affect_env.memory import MemoryPredictor
    from agents.rollout import rollout

    torch.manual_seed(0)
    actor = SlotActor(6, 4, 8, arch, erase_bias=-4.0, coupled_gates=coupled)
    predictor = MemoryPredictor(6, 4, 8, 2, hidden=(16,), read_heads=2)
    e = np.random.default_rng(0).normal(size=(120, 6)).astype(np.float32) * 3
    fast = rollout(actor, predictor, [e])[0]  # one movie on the CPU: the NumPy path
    slow = rollout(actor, predictor, [e, e[:50]])[0]  # batched torch path
    np.testing.assert_allclose(fast["prediction"], slow["prediction"], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(fast["attention"], slow["attention"], rtol=1e-4, atol=1e-6)


def test_the_rl_recipe_has_no_bptt_signal_and_the_critic_weight_switches_the_critic_off():
    """``--recipe rl``: no writer pretraining by BPTT and no long-range loss, so the writer learns from the
    immediate reward and the critic only; ``critic_weight=0`` (the control run) takes the critic out of what the
    writer learns from, and only that."""
    rl = recipe("rl")
    assert rl.rmn.long_range.jump_weight == 0 and not rl.warm_start.pretrains and rl.rmn.window == 1
    assert rl.rmn.critic == "gradient" and rl.rmn.refresh.refresh_window > 0  # flat in the movies' length
    assert rl.rmn.critic_weight == 1.0 and rl.overrides() == {}
    shares = {}
    for weight in (1.0, 0.0):
        model = tiny_agent(learning_starts=20, critic_weight=weight, critic="gradient", history_decay=0.9)
        model.learn(120)
        batch = model.replay_buffer.sample_windows(16, 1)
        loss, _, terms = model._actor_loss(batch)
        shares[weight] = model._writer_shares(model._writer_gradient_norms(terms), None)
    assert 0 < shares[1.0]["critic"] < 1 and shares[0.0]["critic"] == 0 and shares[0.0]["reward"] == 1


def test_critic_warmup_keeps_the_critic_out_of_the_writers_objective_until_it_has_learned():
    """``critic_warmup``: for its first updates the writer learns from the reward alone while the critic trains
    (its parameters move); from the next update on the critic's term is back in the actor objective."""
    model = tiny_agent(learning_starts=20, critic="gradient", history_decay=0.9, critic_warmup=1000)
    before = [p.detach().clone() for p in model.critic.parameters()]
    model.learn(120)
    assert model._n_updates <= 1000
    assert any(not torch.equal(a, b) for a, b in zip(before, model.critic.parameters()))  # the critic learned
    batch = model.replay_buffer.sample_windows(16, 1)
    _, _, terms = model._actor_loss(batch)
    assert model._writer_shares(model._writer_gradient_norms(terms), None)["critic"] == 0
    model.recipe.critic_warmup = model._n_updates - 1  # warm-up over: the critic's term is back
    _, _, terms = model._actor_loss(batch)
    assert model._writer_shares(model._writer_gradient_norms(terms), None)["critic"] > 0


def test_the_critic_can_see_the_movie_so_far_as_a_running_mean_restarted_at_each_movie():
    """``history_decay``: the replay keeps ``h_t``, the decay-weighted mean of ``e_0 .. e_t`` of the movie (the
    opening weighs fully from ``t = 0``), and the critic's context is ``[e_t, h_t]``."""
    decay = 0.9
    model = tiny_agent(learning_starts=20, critic="gradient", history_decay=decay)
    model.learn(150)
    buf = model.replay_buffer
    assert model.policy.history and model.critic.features.embed_in.in_features == 2 * buf.segments.shape[1]
    for run in buf.complete_episodes()[:2]:
        e = buf.segments[run].astype(np.float64)
        for t in (0, 1, len(run) - 1):
            w = decay ** np.arange(t, -1, -1)
            np.testing.assert_allclose(buf.history[run[t]], (w[:, None] * e[:t + 1]).sum(0) / w.sum(), rtol=1e-5)
    batch = buf.sample_windows(8, 1)
    torch.testing.assert_close(model._context(batch, 1), torch.cat([batch.segments[:, 1], batch.history[:, 1]], -1))


def test_the_gradient_critic_learns_the_value_gradient_bootstrapped_through_one_write(tmp_path):
    """``critic="gradient"``: ``G(c_t, m_{t-1})`` is trained towards ``J^T [s dr_t/dm_t + gamma G'(c_{t+1}, m_t)]``
    with ``J = dm_t/dm_{t-1}`` the Jacobian of one write of the target writer (its decision included); the writer
    follows ``gamma G / s`` at its afterstate; the critic's scale tracks its targets and keeps its outputs."""
    model = tiny_agent(learning_starts=20, critic="gradient", history_decay=0.5, gamma=0.9, value_scale=0.1)
    model.learn(200)
    assert float(model.critic.scale) != 1.0 and float(model.critic.scale) == float(model.critic_target.scale)
    batch = model.replay_buffer.sample_windows(4, 1)
    loss, g_mean, target_ms = model._critic_loss(batch)

    # the target, sample by sample, from the write's full Jacobian
    s, gamma = model.value_scale, model.gamma
    m_prev = model._start_memory(batch.prev_memory, batch.starts_movie).detach()
    targets = []
    for b in range(4):
        e, y, c1 = batch.segments[b:b + 1, 0], batch.targets[b:b + 1, 0], model._context(batch, 1)[b:b + 1]

        def step(m):
            return write(m, model.actor_target(e, m))

        m = step(m_prev[b:b + 1]).detach().requires_grad_(True)
        dr = torch.autograd.grad(model._reward(e, m, y).sum(), m)[0]
        g_next = (1 - batch.dones[b, 0]) * model.critic_target(c1, m.detach())
        jacobian = torch.autograd.functional.jacobian(step, m_prev[b:b + 1]).reshape(m.numel(), m.numel())
        targets.append((jacobian.T @ (s * dr + gamma * g_next).reshape(-1)).reshape(m.shape))
    target = torch.cat(targets)
    with torch.no_grad():
        g = model.critic(model._context(batch, 0), m_prev)
    torch.testing.assert_close(loss, ((g - target) ** 2).mean() / model.critic.scale ** 2)
    assert target_ms == pytest.approx(float((target ** 2).mean()), rel=1e-4)

    # the writer's objective: its gradient in the afterstate is critic_weight * gamma / s * G
    m = batch.afterstates[:, 0].clone().requires_grad_(True)
    grad = torch.autograd.grad(model._future(batch, m).sum(), m)[0]
    with torch.no_grad():
        torch.testing.assert_close(grad, model.critic(model._context(batch, 1), m) / s)

    # rescaling keeps the outputs; save and load keep the critic's kind, scale and context
    with torch.no_grad():
        before = model.critic(model._context(batch, 0), m_prev)
        model.critic.rescale(3.0)
        torch.testing.assert_close(model.critic(model._context(batch, 0), m_prev), before)
    model.save(tmp_path / "g.zip")
    loaded = RMN.load(tmp_path / "g.zip", device="cpu")
    assert loaded.policy.critic_kind == "gradient" and loaded.policy.history and float(loaded.critic.scale) == 3.0


def test_the_gradient_critics_n_step_target_is_the_adjoint_recursion_through_n_writes_then_the_bootstrap():
    """``critic_steps=n``: the target runs the target writer ``n`` writes from ``m_{t-1}`` and carries the scaled
    rewards and then ``gamma^n G'`` back through each write's full Jacobian, with nothing after the movie's end."""
    n = 3
    env = LiRISMemoryEnv(dataset_options={**SMALL_SYNTHETIC, "length": 40, "dependency_distance": 20}, n_slots=4,
                         memory_dim=8)
    model = tiny_agent(env, learning_starts=20, critic="gradient", history_decay=0.5, gamma=0.9, value_scale=0.1,
                       critic_steps=n)
    model.learn(150)
    s, gamma = model.value_scale, model.gamma
    for batch in (model.replay_buffer.sample_windows(4, n), ends_within(model.replay_buffer, n)):
        _, _, target_ms = model._critic_loss(batch)
        m_prev = model._start_memory(batch.prev_memory, batch.starts_movie).detach()
        targets = []
        for b in range(len(m_prev)):
            ms, jacobians = [m_prev[b:b + 1]], []
            for i in range(n):
                e = batch.segments[b:b + 1, i]

                def step(m, e=e):
                    return write(m, model.actor_target(e, m))

                jacobians.append(torch.autograd.functional.jacobian(step, ms[-1]).reshape(ms[-1].numel(), -1))
                ms.append(step(ms[-1]).detach())
            last = n - 1
            carried = (batch.alive[b, last] * (1 - batch.dones[b, last])) * \
                model.critic_target(model._context(batch, n)[b:b + 1], ms[-1]).reshape(-1)
            for i in reversed(range(n)):  # the adjoint recursion, from the bootstrap back to m_{t-1}
                m = ms[i + 1].clone().requires_grad_(True)
                dr = torch.autograd.grad(model._reward(batch.segments[b:b + 1, i], m,
                                                       batch.targets[b:b + 1, i]).sum(), m)[0]
                carried = jacobians[i].T @ (batch.alive[b, i] * s * dr.reshape(-1) + gamma * carried)
            targets.append(carried)
        assert target_ms == pytest.approx(float(torch.stack(targets).square().mean()), rel=1e-4)
    with pytest.raises(ValueError, match="critic_steps"):
        tiny_agent(critic="value", critic_steps=2)


def ends_within(buffer, n):
    """Windows of ``n`` steps in which a movie ends before the last step (rewards after it must not count)."""
    for _ in range(50):
        batch = buffer.sample_windows(64, n)
        cut = (batch.alive[:, -1] == 0).nonzero().flatten()
        if len(cut):
            return batch._replace(**{k: None if v is None else v[cut[:2]]
                                     for k, v in batch._asdict().items()})
    raise AssertionError("no window crosses a movie's end")


def test_an_ensemble_of_gradient_critics_trains_every_member_on_the_same_target_and_follows_their_mean(
        tmp_path, monkeypatch):
    """``critic_ensemble``: networks initialised apart, each regressing the one bootstrapped target; ``G``, which
    the writer and the bootstrap follow, is the scale times their mean; rescaling keeps every member's outputs;
    saving keeps the ensemble; a value critic refuses it."""
    model = tiny_agent(learning_starts=20, critic="gradient", history_decay=0.5, gamma=0.9, value_scale=0.1,
                       critic_ensemble=3)
    model.learn(200)
    critic = model.critic
    assert critic.members == model.critic_target.members == 3
    batch = model.replay_buffer.sample_windows(4, 1)
    c, m = model._context(batch, 0), model._start_memory(batch.prev_memory, batch.starts_movie).detach()
    with torch.no_grad():
        members = critic.member_outputs(c, m)
        assert members.shape == (3, *m.shape) and not torch.allclose(members[0], members[1])  # learned apart
        torch.testing.assert_close(critic(c, m), critic.scale * members.mean(dim=0))

    # the loss is the mean of every member's own loss towards the same target
    full = model._critic_loss(batch)[0]
    alone = []
    for k in range(3):
        monkeypatch.setattr(critic, "member_outputs", lambda context, memory, k=k: members[k:k + 1])
        alone.append(model._critic_loss(batch)[0])
    monkeypatch.undo()
    torch.testing.assert_close(full, torch.stack(alone).mean())

    with torch.no_grad():
        before = critic.member_outputs(c, m) * critic.scale
        critic.rescale(2.0)
        torch.testing.assert_close(critic.member_outputs(c, m) * critic.scale, before)
    model.save(tmp_path / "e.zip")
    assert RMN.load(tmp_path / "e.zip", device="cpu").critic.members == 3
    with pytest.raises(ValueError, match="critic_ensemble"):
        tiny_agent(critic="value", critic_ensemble=2)
