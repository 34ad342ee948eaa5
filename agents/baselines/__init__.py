"""Supervised baselines for the RMN: per-segment MLP, LSTM (truncated BPTT), the RMN's memory trained by
(truncated) BPTT, and a windowed causal Transformer — all on the RMN's cached segment embeddings."""
from agents.baselines.models import (
    MODEL_NAMES, LSTMBaseline, MemoryTBPTT, SegmentRegressor, SequenceModel, WindowTransformer, build_model,
    load_baseline, save_baseline,
)
from agents.baselines.training import evaluate_baseline, fit_baseline, predict_movies, predict_results, tbptt_losses

__all__ = [
    "MODEL_NAMES", "LSTMBaseline", "MemoryTBPTT", "SegmentRegressor", "SequenceModel", "WindowTransformer",
    "build_model", "evaluate_baseline", "fit_baseline", "load_baseline", "predict_movies", "predict_results",
    "save_baseline", "tbptt_losses",
]
