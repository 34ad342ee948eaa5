"""Offline audio features: the ``audio`` modality (openSMILE eGeMAPS low-level descriptors) and the ``music``
modality (librosa: chroma, onset strength, tempo, beat strength, spectral contrast, key and mode strength).

The ``opensmile`` wheel ships its binary and the eGeMAPS configuration, and librosa computes everything from
the signal, so neither needs a download. Both consume the mono chunks of
:func:`affect_env.features.media.audio_chunks` (:meth:`update`) and give one row per grid interval at the end
(:meth:`finish`).
"""
from __future__ import annotations

import functools
import re
from typing import List, Tuple

import numpy as np

from affect_env.data.types import DataError
from affect_env.features.grid import to_grid
from affect_env.features.media import import_optional

__all__ = ["MUSIC_COLUMNS", "PITCH_CLASSES", "AudioFeatures", "MusicFeatures", "key_mode_strength"]

PITCH_CLASSES = ("C", "Cs", "D", "Ds", "E", "F", "Fs", "G", "Gs", "A", "As", "B")
MUSIC_COLUMNS = tuple(f"music_chroma_{p}" for p in PITCH_CLASSES) + (
    "music_onset_strength", "music_tempo", "music_beat_strength") + tuple(
    f"music_contrast_{i}" for i in range(1, 8)) + ("music_key_strength", "music_mode")
#: Krumhansl & Kessler (1982) key profiles, C major / C minor.
_MAJOR = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
_MINOR = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])


def _keep(times: np.ndarray, keep_from: float, keep_to: float) -> np.ndarray:
    return (times >= keep_from - 1e-9) & (times < keep_to - 1e-9)


@functools.lru_cache(maxsize=1)
def _egemaps():
    """The eGeMAPS low-level-descriptor extractor, built once per process (half a second each time)."""
    opensmile = import_optional("opensmile")
    return opensmile.Smile(feature_set=opensmile.FeatureSet.eGeMAPSv02,
                           feature_level=opensmile.FeatureLevel.LowLevelDescriptors)


class AudioFeatures:
    """openSMILE's eGeMAPS v02 low-level descriptors (Eyben et al. 2016): 25 values every 10 ms (loudness,
    spectral slopes and flux, MFCC 1-4, F0, jitter, shimmer, HNR, formants), averaged per grid row. Columns are
    ``audio_`` + the descriptor name with non-alphanumerics as ``_`` (``audio_Loudness_sma3``)."""

    def __init__(self) -> None:
        self.smile = _egemaps()
        self.columns = tuple("audio_" + re.sub(r"[^0-9A-Za-z]+", "_", n).strip("_") for n in self.smile.feature_names)
        self.times: List[np.ndarray] = []
        self.values: List[np.ndarray] = []

    def update(self, t0: float, samples: np.ndarray, rate: int, keep_from: float, keep_to: float) -> None:
        """Analyse one chunk starting at ``t0``; keep the frames centred in ``[keep_from, keep_to)``."""
        if len(samples) < rate // 10:  # openSMILE needs a few frames; a tail this short adds nothing
            return
        df = self.smile.process_signal(samples, rate)
        start = df.index.get_level_values("start").total_seconds().to_numpy()
        end = df.index.get_level_values("end").total_seconds().to_numpy()
        times = t0 + (start + end) / 2
        keep = _keep(times, keep_from, keep_to)
        self.times.append(times[keep])
        self.values.append(df.to_numpy(dtype=np.float64)[keep])

    def finish(self, n_rows: int, rate: float) -> Tuple[Tuple[str, ...], np.ndarray]:
        """``(columns, (n_rows, 25) values)`` on the grid."""
        times = np.concatenate(self.times) if self.times else np.zeros(0)
        values = np.concatenate(self.values) if self.values else np.zeros((0, len(self.columns)))
        return self.columns, to_grid(times, values, n_rows, rate)


def key_mode_strength(chroma: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Key and mode strength of chroma vectors by the Krumhansl-Schmuckler method.

    :param chroma: ``(12, n)`` chroma (rows C .. B)
    :return: ``(key_strength, mode)``: the largest Pearson correlation with the 24 rotated key profiles, and
        the best major correlation minus the best minor one (> 0: major); 0 where the chroma is flat (silence)
    """
    def z(a: np.ndarray, axis: int) -> Tuple[np.ndarray, np.ndarray]:
        centred = a - a.mean(axis=axis, keepdims=True)
        std = centred.std(axis=axis, keepdims=True)
        return centred / np.maximum(std, 1e-12), std
    profiles = np.stack([np.roll(p, k) for p in (_MAJOR, _MINOR) for k in range(12)])  # (24, 12)
    pz, _ = z(profiles, 1)
    cz, std = z(np.asarray(chroma, dtype=np.float64), 0)
    corr = pz @ cz / 12.0  # (24, n)
    flat = std[0] < 1e-8
    strength = np.where(flat, 0.0, corr.max(axis=0))
    mode = np.where(flat, 0.0, corr[:12].max(axis=0) - corr[12:].max(axis=0))
    return strength, mode


class MusicFeatures:
    """Musical descriptors with librosa (McFee et al. 2015), every ``hop`` samples (32 ms at 16 kHz):

    * ``music_chroma_C`` .. ``music_chroma_B``: STFT chroma (each frame scaled to max 1);
    * ``music_onset_strength``: spectral-flux onset strength on the log-mel spectrogram;
    * ``music_tempo``: local tempo in BPM (``librosa.feature.tempo`` with ``aggregate=None``, ~8-s window);
    * ``music_beat_strength``: the onset autocorrelation (tempogram, 0-1) at the local tempo's lag: how clear
      the pulse is;
    * ``music_contrast_1`` .. ``_7``: spectral contrast in 6 octave bands from 100 Hz plus the rest;
    * ``music_key_strength`` / ``music_mode``: Krumhansl-Schmuckler correlation of the chroma averaged over
      ``key_window`` seconds with the best key, and best-major minus best-minor correlation
      (:func:`key_mode_strength`).
    """

    def __init__(self, key_window: float = 5.0, hop: int = 512, n_fft: int = 2048) -> None:
        self.librosa = import_optional("librosa")
        self.key_window = float(key_window)
        self.hop, self.n_fft = int(hop), int(n_fft)
        self.times: List[np.ndarray] = []
        self.values: List[np.ndarray] = []

    def update(self, t0: float, samples: np.ndarray, rate: int, keep_from: float, keep_to: float) -> None:
        """Analyse one chunk starting at ``t0``; keep the frames centred in ``[keep_from, keep_to)``."""
        if len(samples) < self.n_fft:
            return
        lr = self.librosa
        from scipy.ndimage import uniform_filter1d  # scipy comes with librosa

        power = np.abs(lr.stft(samples, n_fft=self.n_fft, hop_length=self.hop)) ** 2
        chroma = lr.feature.chroma_stft(S=power, sr=rate, n_fft=self.n_fft, hop_length=self.hop)
        mel = lr.feature.melspectrogram(S=power, sr=rate, n_mels=64)
        onset = lr.onset.onset_strength(S=lr.power_to_db(mel), sr=rate, hop_length=self.hop)
        tempo = lr.feature.tempo(onset_envelope=onset, sr=rate, hop_length=self.hop, aggregate=None)
        tempogram = lr.feature.tempogram(onset_envelope=onset, sr=rate, hop_length=self.hop)
        lags = np.arange(tempogram.shape[0]) * self.hop / rate  # seconds per lag
        want = 60.0 / np.maximum(tempo, 1e-6)
        lag = np.clip(np.rint(want * rate / self.hop).astype(np.int64), 1, len(lags) - 1)
        n = min(power.shape[1], tempogram.shape[1], len(tempo))
        beat = tempogram[lag[:n], np.arange(n)]
        contrast = lr.feature.spectral_contrast(S=np.sqrt(power), sr=rate, n_fft=self.n_fft, hop_length=self.hop,
                                                fmin=100.0, n_bands=6)
        width = max(1, int(round(self.key_window * rate / self.hop)))
        strength, mode = key_mode_strength(uniform_filter1d(chroma, size=width, axis=1, mode="nearest"))
        values = np.vstack([chroma[:, :n], onset[None, :n], tempo[None, :n], beat[None, :n], contrast[:, :n],
                            strength[None, :n], mode[None, :n]]).T
        times = t0 + np.arange(n) * self.hop / rate
        keep = _keep(times, keep_from, keep_to)
        self.times.append(times[keep])
        self.values.append(values[keep])

    def finish(self, n_rows: int, rate: float) -> Tuple[Tuple[str, ...], np.ndarray]:
        """``(columns, (n_rows, 24) values)`` on the grid."""
        times = np.concatenate(self.times) if self.times else np.zeros(0)
        values = np.concatenate(self.values) if self.values else np.zeros((0, len(MUSIC_COLUMNS)))
        if not np.isfinite(values).all():
            raise DataError("librosa gave non-finite music features")
        return MUSIC_COLUMNS, to_grid(times, values, n_rows, rate)
