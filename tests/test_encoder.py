"""Segment encoders: the paper's LSTM (pretrained with early stopping) and the parameter-free pooling one."""
import numpy as np
import pytest
import torch

from affect_env.data import FeatureStats
from affect_env.encoder import LSTMSegmentEncoder, PoolingEncoder, SegmentEncoder, make_encoder, pretrain_encoder


def test_pooling_encoder_is_mean_and_std_of_standardised_frames(small_synthetic):
    train = small_synthetic["train"]
    stats = FeatureStats.fit(train)
    enc = PoolingEncoder(stats)
    x = train.movies[0].features
    e = enc.embed_movie(x)
    z = stats.transform(x)
    np.testing.assert_allclose(e[:, :enc.feature_dim], z.mean(axis=1), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(e[:, enc.feature_dim:], z.std(axis=1), rtol=1e-4, atol=1e-5)
    assert enc.embed_dim == 2 * train.feature_dim and enc.bounds == (-np.inf, np.inf)


def test_lstm_pretraining_learns_and_stops_early(small_synthetic, tmp_path):
    train, val = small_synthetic["train"], small_synthetic["val"]
    enc, history = pretrain_encoder(train, val, hidden_size=16, epochs=300, patience=1, learning_rate=3e-2,
                                    seed=0, progress=False)
    assert isinstance(enc, LSTMSegmentEncoder) and enc.embed_dim == 16
    assert len(history) < 300  # early stopping on the validation loss ended it
    assert min(h["val_mse"] for h in history) < history[0]["val_mse"]
    e = enc.embed_movie(val.movies[0].features)
    assert e.shape == (val.movies[0].n_segments, 16) and np.abs(e).max() < 1
    # the statistics it carries are the train split's
    np.testing.assert_allclose(enc.stats.mean, FeatureStats.fit(train).mean, rtol=1e-6)

    enc.save(tmp_path / "enc.pt")
    again = SegmentEncoder.load(tmp_path / "enc.pt")
    np.testing.assert_array_equal(again.embed_movie(val.movies[0].features), e)
    assert isinstance(make_encoder(str(tmp_path / "enc.pt"), train), LSTMSegmentEncoder)


def test_pretraining_is_reproducible(small_synthetic):
    train, val = small_synthetic["train"], small_synthetic["val"]
    a, _ = pretrain_encoder(train, val, hidden_size=8, epochs=2, seed=3, progress=False)
    b, _ = pretrain_encoder(train, val, hidden_size=8, epochs=2, seed=3, progress=False)
    for p, q in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(p, q)


def test_make_encoder_rejects_unknown_specs(small_synthetic):
    with pytest.raises(ValueError, match="pooling"):
        make_encoder("no/such/encoder.pt", small_synthetic["train"])
