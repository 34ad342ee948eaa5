"""Property tests of the memory math (NumPy and torch give the same results)."""
import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import pytest

from affect_env.memory import (MemoryPredictor, WriteAction, action_dim, add_exploration_noise, decode_action,
                               encode_action, prediction_error, write)

N, D = 4, 3
finite = st.floats(-3.0, 3.0, allow_nan=False, width=32)
actions = arrays(np.float32, (action_dim(N, D),), elements=finite)
memories = arrays(np.float32, (N, D), elements=finite)


@settings(max_examples=200, deadline=None)
@given(actions)
def test_decoded_parts_stay_in_range_and_attention_sums_to_one(a):
    for x in (a, torch.as_tensor(a)[None]):
        att, erase, content, gate = (np.asarray(p).reshape(-1) for p in decode_action(x, N, D))
        assert abs(att.sum() - 1.0) < 1e-5 and (att >= 0).all()
        assert ((erase >= 0) & (erase <= 1)).all() and ((gate >= 0) & (gate <= 1)).all()
        assert ((content >= -1) & (content <= 1)).all()


@settings(max_examples=100, deadline=None)
@given(actions)
def test_encode_inverts_decode(a):
    parts = decode_action(a, N, D)
    again = decode_action(encode_action(parts), N, D)
    for p, q in zip(parts, again):
        np.testing.assert_allclose(p, q, atol=1e-5)


@settings(max_examples=100, deadline=None)
@given(memories, actions, st.integers(0, N - 1))
def test_zero_attention_leaves_a_slot_unchanged(m, a, slot):
    parts = decode_action(a, N, D)
    att = parts.attention.copy()
    att[slot] = 0.0
    out = write(m, parts._replace(attention=att))
    np.testing.assert_array_equal(out[slot], m[slot])


@settings(max_examples=100, deadline=None)
@given(memories, st.integers(0, N - 1), arrays(np.float32, (N, D), elements=st.floats(-1, 1, width=32)))
def test_full_erase_without_input_clears_the_slot(m, slot, content):
    att = np.zeros(N, np.float32)
    att[slot] = 1.0
    parts = WriteAction(att, np.ones((N, D), np.float32), content, np.zeros((N, D), np.float32))
    out = write(m, parts)
    np.testing.assert_array_equal(out[slot], 0.0)
    np.testing.assert_array_equal(np.delete(out, slot, 0), np.delete(m, slot, 0))


@settings(max_examples=50, deadline=None)
@given(arrays(np.float32, (5, N, D), elements=finite), arrays(np.float32, (5, action_dim(N, D)), elements=finite))
def test_batched_equals_one_by_one_and_numpy_equals_torch(ms, acts):
    batched = write(torch.as_tensor(ms), decode_action(torch.as_tensor(acts), N, D)).numpy()
    for b in range(5):
        single = write(ms[b], decode_action(acts[b], N, D))
        np.testing.assert_allclose(batched[b], single, rtol=1e-5, atol=1e-5)


def test_write_is_differentiable():
    m = torch.randn(2, N, D, requires_grad=True)
    a = torch.rand(2, action_dim(N, D), requires_grad=True)
    write(m, decode_action(a * 2 - 1, N, D)).sum().backward()
    assert m.grad is not None and a.grad is not None and torch.isfinite(a.grad).all()


@settings(max_examples=50, deadline=None)
@given(actions, st.integers(0, 2**31 - 1))
def test_exploration_noise_keeps_parts_in_range(a, seed):
    parts = decode_action(a, N, D)
    for noisy in (add_exploration_noise(parts, 0.05 ** 0.5, np.random.default_rng(seed)),
                  add_exploration_noise(WriteAction(*(torch.as_tensor(p) for p in parts)), [0.5, 0.1, 0.2, 0.1],
                                        torch.Generator().manual_seed(seed))):
        att, erase, content, gate = (np.asarray(p) for p in noisy)
        assert abs(att.sum() - 1) < 1e-5 and (att >= 0).all()
        assert erase.min() >= 0 and erase.max() <= 1 and gate.min() >= 0 and gate.max() <= 1
        assert content.min() >= -1 and content.max() <= 1


def test_exploration_noise_has_the_requested_spread():
    mid = WriteAction(np.full(N, 1 / N), np.full((200, N, D), 0.5), np.zeros((200, N, D)), np.full((200, N, D), 0.5))
    noisy = add_exploration_noise(mid, 0.05 ** 0.5, np.random.default_rng(0))
    assert abs(np.var(noisy.content) - 0.05) < 0.005  # the paper's variance, unclipped around 0
    assert abs(np.var(noisy.erase) - 0.05) < 0.005


@pytest.mark.parametrize("key_dim", [0, 4])
def test_predictor_numpy_path_equals_torch_and_follows_training(key_dim):
    torch.manual_seed(0)
    pred = MemoryPredictor(embed_dim=5, n_slots=N, memory_dim=D, n_targets=2, hidden=(8,), read_heads=2,
                           key_dim=key_dim)
    e, m = np.random.randn(5).astype(np.float32), np.random.randn(N, D).astype(np.float32)

    def torch_out():
        with torch.no_grad():
            return pred(torch.as_tensor(e)[None], torch.as_tensor(m)[None]).numpy()[0]

    np.testing.assert_allclose(pred.predict_numpy(e, m), torch_out(), rtol=1e-5, atol=1e-6)
    opt = torch.optim.SGD(pred.parameters(), lr=0.5)
    pred(torch.as_tensor(e)[None], torch.as_tensor(m)[None]).sum().backward()
    opt.step()  # in-place update: the NumPy path must see the new weights
    np.testing.assert_allclose(pred.predict_numpy(e, m), torch_out(), rtol=1e-5, atol=1e-6)


def test_attention_read_weights_sum_to_one():
    pred = MemoryPredictor(embed_dim=5, n_slots=N, memory_dim=D, read_heads=3)
    w = pred.attention(torch.randn(7, 5), torch.randn(7, N, D))
    assert w.shape == (7, 3, N)
    torch.testing.assert_close(w.sum(-1), torch.ones(7, 3))


def test_prediction_error_is_mae_or_mse_in_numpy_and_torch():
    pred, target = np.array([[0.2, -0.4], [1.0, 0.0]], np.float32), np.array([[0.0, 0.0], [0.5, 0.5]], np.float32)
    np.testing.assert_allclose(prediction_error(pred, target, "mae"), [0.3, 0.5], rtol=1e-6)
    np.testing.assert_allclose(prediction_error(pred, target, "mse"), [0.1, 0.25], rtol=1e-6)
    np.testing.assert_allclose(prediction_error(pred, target, "mae+mse"), [0.4, 0.75], rtol=1e-6)
    for kind in ("mae", "mse", "mae+mse"):
        torch.testing.assert_close(prediction_error(torch.as_tensor(pred), torch.as_tensor(target), kind),
                                   torch.as_tensor(prediction_error(pred, target, kind)))
    with pytest.raises(ValueError, match="mae"):
        prediction_error(pred, target, "rmse")


def test_only_the_squared_error_prefers_the_mean_of_a_bimodal_target():
    """A forgotten attitude: the target is +0.5 or -0.5 with equal odds, the prediction is one constant."""
    targets = np.array([[0.5], [-0.5]], np.float32)
    hedge, guess = np.zeros((2, 1), np.float32), np.full((2, 1), 0.3, np.float32)
    mae = [prediction_error(p, targets, "mae").mean() for p in (hedge, guess)]
    assert mae[0] == pytest.approx(mae[1])
    for kind in ("mse", "mae+mse"):
        assert prediction_error(hedge, targets, kind).mean() < prediction_error(guess, targets, kind).mean() - 0.05


def test_content_addressing_finds_the_slot_whose_key_matches_the_query():
    """With a query/key term, a slot holding the segment's own code gets the read whatever its position."""
    pred = MemoryPredictor(embed_dim=D, n_slots=N, memory_dim=D, hidden=(), key_dim=D)
    with torch.no_grad():
        for layer in (pred.score[-1], pred.query, pred.key):
            layer.weight.zero_()
        pred.score[-1].bias.zero_()
        pred.query.bias.zero_()
        pred.query.weight.copy_(torch.eye(D) * 8.0)
        pred.key.weight.copy_(torch.eye(D))
    codes = torch.tensor([[1.0, -1, 1], [-1, 1, 1], [1, 1, -1], [-1, -1, -1]])
    for slot in range(N):
        w = pred.attention(codes[slot][None], codes[None])[0, 0]
        assert int(w.argmax()) == slot and w[slot] > 0.9
    assert pred.config()["key_dim"] == D and MemoryPredictor(**pred.config()).key.weight.shape == (D, D)
