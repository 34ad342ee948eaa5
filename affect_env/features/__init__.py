"""From movie files to feature tables: decode video and audio, extract per-modality features, align them on one
time grid and write one table per movie in the generic table format, so the table reader, the encoder and the
agents take extracted movies as they are.

    python -m affect_env.features extract PATH... --out DIR [--modalities scene,faces,audio,music]
        [--annotations DIR] [--rate 5] [--jobs N] [--force]

Modules: :mod:`~affect_env.features.media` (PyAV decoding), :mod:`~affect_env.features.visual` (``scene``,
``faces``: OpenCV), :mod:`~affect_env.features.acoustic` (``audio``: openSMILE eGeMAPS; ``music``: librosa),
:mod:`~affect_env.features.deep` (``vggish``, ``places``, ``expression``: networks that need weights),
:mod:`~affect_env.features.grid` (the time grid), :mod:`~affect_env.features.annotations` (targets from
annotation files), :mod:`~affect_env.features.extract` (one movie, many movies, the manifest). The libraries
are the ``video`` extra (``pip install 'affect-rmn[video]'``); this package imports them only when it extracts.
See ``docs/video.md``.
"""
from affect_env.features.extract import (
    AUDIO_MODALITIES, MANIFEST, MODALITIES, OFFLINE_MODALITIES, VIDEO_MODALITIES, ExtractionReport,
    ExtractionSettings, extract_movie, extract_videos, list_videos, movie_id, read_manifest,
)
from affect_env.features.media import VIDEO_SUFFIXES, probe

__all__ = [
    "AUDIO_MODALITIES", "MANIFEST", "MODALITIES", "OFFLINE_MODALITIES", "VIDEO_MODALITIES", "VIDEO_SUFFIXES",
    "ExtractionReport", "ExtractionSettings", "extract_movie", "extract_videos", "list_videos", "movie_id",
    "probe", "read_manifest",
]
