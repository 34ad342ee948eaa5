"""Supervised baselines for the RMN: per-segment MLP, LSTM (truncated BPTT), the RMN's memory trained by
(truncated) BPTT, and a windowed causal Transformer — all on the RMN's cached segment embeddings."""
from agents.baselines.models import (
    MODEL_NAMES, LSTMBaseline, MemoryTBPTT, SegmentRegressor, SequenceModel, WindowTransformer, build_model,
)
from agents.baselines.training import (
    load_baseline, predict_movies, predict_results, save_baseline, tbptt_losses, train_baseline,
)

__all__ = [
    "MODEL_NAMES", "LSTMBaseline", "MemoryTBPTT", "SegmentRegressor", "SequenceModel", "WindowTransformer",
    "build_model", "load_baseline", "predict_movies", "predict_results", "save_baseline", "tbptt_losses",
    "train_baseline",
]
