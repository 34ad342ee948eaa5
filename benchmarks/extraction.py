"""Extraction speed: seconds of movie turned into feature tables per second of wall time, per modality.

    python -m benchmarks.extraction [--quick] [--seconds 60] [--heights 360 720] [--jobs 2] [--deep]
        [--out benchmarks/results]

For each height (360p = 640 x 360, 720p = 1280 x 720) the benchmark writes a test movie with PyAV: H.264 video
at 25 fps (moving shapes over a noise texture, a cut every 4 s) and AAC audio at 44.1 kHz (chords, beats and
noise), ``--seconds`` long. It then extracts it with the offline default settings
(:class:`affect_env.features.ExtractionSettings`) and reports:

* per modality (``scene``, ``faces``, ``audio``, ``music``): movie seconds / (the modality's own time + the
  decoding of its stream), from the per-stage timings of one single-process extraction of every modality;
* ``decode video`` / ``decode audio``: decoding (and scaling / resampling) alone;
* with ``--deep``, ``vggish (deep)`` and ``places (deep)`` the same way, on randomly initialised weights (one
  torch thread; ``places`` at the default 1 frame per second);
* ``all, 1 process, 1 thread``: the whole extraction of one movie in one process, one stage after the other;
* ``all, 1 process, 2 threads``: the same with the audio pass in a thread beside the video pass (what one movie
  gets from ``python -m affect_env.features extract`` on 2 cores);
* ``all, N processes``: ``N`` copies of the movie extracted by ``python -m affect_env.features extract --jobs N``'s
  function, total movie seconds / wall time (files in parallel, the way a folder is extracted). It includes
  starting the worker processes (a few seconds, once per command), which hour-long movies make negligible; its
  ``cpu_s`` is the CPU time of the extraction stages in the workers (process start not included).

``x_real_time`` is the speed in movie seconds per wall second. Stages are timed in CPU seconds of the thread that
ran them (one OpenCV and one torch thread), and every row also gives ``cpu_s`` and ``x_idle_cores``, movie
seconds per CPU second times the processes of the row: the speed the same work reaches on cores of its own,
since the cores may be shared with other jobs (the header gives the load average). The goal is >= 20 for ``all``
at 360p on 2 cores.
"""
from __future__ import annotations

import shutil
import tempfile
import time
from fractions import Fraction
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import pandas as pd
import torch

from affect_env.data.types import DataError
from affect_env.features import ExtractionSettings, extract_movie, extract_videos, read_manifest
from affect_env.features.deep import ResNet18, VGGish
from affect_env.features.media import import_optional
from benchmarks.common import benchmark_parser, parse_benchmark_args, report

SIZES = {360: (640, 360), 720: (1280, 720)}
FPS = 25
AUDIO_RATE = 44100


def mux_audio(container, stream, wave: np.ndarray, rate: int, layout: str) -> None:
    """Encode ``wave`` ``(channels, samples)`` float32 into the PyAV audio ``stream`` of ``container`` in frames
    of 1,024 samples, then flush the encoder."""
    av = import_optional("av")
    for k in range(0, wave.shape[1], 1024):
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(wave[:, k:k + 1024]), format="fltp", layout=layout)
        frame.sample_rate, frame.pts, frame.time_base = rate, k, Fraction(1, rate)
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)


def write_benchmark_movie(path: Path, seconds: float, size: tuple, seed: int = 0) -> Path:
    """An H.264 / AAC movie with some of everything: texture, moving shapes, cuts, chords, beats and noise."""
    av = import_optional("av")
    rng = np.random.default_rng(seed)
    w, h = size
    container = av.open(str(path), "w")
    video = container.add_stream("libx264", rate=FPS)
    video.width, video.height, video.pix_fmt = w, h, "yuv420p"
    video.options = {"preset": "veryfast", "crf": "23"}
    audio = container.add_stream("aac", rate=AUDIO_RATE)
    audio.layout = "stereo"
    texture = rng.integers(0, 60, size=(h, w, 3), dtype=np.uint8)
    for i in range(int(seconds * FPS)):
        t = i / FPS
        shot = int(t // 4)
        base = np.array([(37 * shot) % 200, (91 * shot) % 200, (53 * shot) % 200], dtype=np.uint8)
        img = texture + base
        for k in range(3):
            x = int((w - 80) * (0.5 + 0.5 * np.sin(0.7 * t + k)))
            y = int((h - 80) * (0.5 + 0.5 * np.cos(0.5 * t + 2 * k)))
            img[y:y + 80, x:x + 80] = (255 - 60 * k, 80 * k, 200)
        for packet in video.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
            container.mux(packet)
    for packet in video.encode():
        container.mux(packet)
    tt = np.arange(int(seconds * AUDIO_RATE)) / AUDIO_RATE
    chord = sum(np.sin(2 * np.pi * f * tt) for f in (261.6, 329.6, 392.0)) / 6
    beats = np.exp(-40 * ((tt * 2) % 1.0)) * rng.normal(0, 0.3, len(tt))
    wave = (chord + beats + rng.normal(0, 0.02, len(tt))).astype(np.float32)
    mux_audio(container, audio, np.stack([wave, wave]), AUDIO_RATE, "stereo")
    container.close()
    return path


def random_weights(workdir: Path) -> dict:
    """``{modality: file}`` of randomly initialised deep networks (their speed does not depend on the values)."""
    torch.manual_seed(0)
    paths = {"vggish": workdir / "vggish.pth", "places": workdir / "places.pth"}
    torch.save(VGGish().state_dict(), paths["vggish"])
    torch.save(ResNet18(365).state_dict(), paths["places"])
    return {k: str(v) for k, v in paths.items()}


def measure(height: int, seconds: float, jobs: int, workdir: Path, settings: ExtractionSettings,
            deep: bool = False) -> list:
    """The rows of one height: per stage, per modality, all in one process, all in ``jobs`` processes, and (with
    ``deep``) the deep extractors on random weights."""
    movie = write_benchmark_movie(workdir / f"movie_{height}p.mp4", seconds, SIZES[height])
    extract_movie(movie, ExtractionSettings(modalities=("music",), rate=settings.rate), threads=1)  # warm librosa
    wall, cpu = time.perf_counter(), time.process_time()
    _, entry = extract_movie(movie, settings, threads=1)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    wall_2, cpu_2 = time.perf_counter(), time.process_time()
    extract_movie(movie, settings, threads=2)
    wall_2, cpu_2 = time.perf_counter() - wall_2, time.process_time() - cpu_2
    duration = entry["duration"]
    tm = entry["timings"]  # CPU seconds of each stage's thread
    stages = {"decode video": (None, tm["decode_video"]), "decode audio": (None, tm["decode_audio"]),
              "scene": (None, tm["scene"] + tm["decode_video"]), "faces": (None, tm["faces"] + tm["decode_video"]),
              "audio": (None, tm["audio"] + tm["decode_audio"]), "music": (None, tm["music"] + tm["decode_audio"]),
              "all, 1 process, 1 thread": (wall, cpu), "all, 1 process, 2 threads": (wall_2, cpu_2)}
    if deep:
        deep_settings = ExtractionSettings(modalities=("vggish", "places"), weights=random_weights(workdir))
        tm = extract_movie(movie, deep_settings, threads=1)[1]["timings"]
        stages.update({"vggish (deep)": (None, tm["vggish"] + tm["decode_audio"]),
                       "places (deep)": (None, tm["places"] + tm["decode_video"])})
    rows = [_row(height, k, duration, w, c) for k, (w, c) in stages.items()]
    copies = workdir / f"copies_{height}"
    copies.mkdir()
    for j in range(jobs):
        shutil.copy(movie, copies / f"copy{j}.mp4")
    report_ = extract_videos([copies], workdir / f"tables_{height}", settings, jobs=jobs, progress=False)
    if report_.failed:
        raise DataError("; ".join(report_.failed.values()))
    # the workers are not our children (a fork server starts them): their CPU time is the stages' own
    movies = read_manifest(workdir / f"tables_{height}")["movies"].values()
    cpu_work = sum(sum(m["timings"].values()) for m in movies)
    what = f"all, {jobs} process{'es' if jobs > 1 else ''}"
    rows.append(_row(height, what, jobs * duration, report_.wall_s, cpu_work, jobs))
    return rows


def _row(height: int, what: str, movie_s: float, wall_s: Optional[float], cpu_s: float, cores: int = 1) -> dict:
    """One table row: speed on the wall clock (``None`` for stages, which are timed in CPU seconds only) and per
    CPU second (what idle cores give: ``cores`` x movie_s / cpu_s for ``cores`` processes)."""
    return {"height": f"{height}p", "what": what, "movie_s": movie_s,
            "wall_s": float("nan") if wall_s is None else wall_s, "cpu_s": cpu_s,
            "x_real_time": float("nan") if wall_s is None else movie_s / wall_s,
            "x_idle_cores": cores * movie_s / cpu_s}


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = benchmark_parser("extraction", __doc__, "20-s movies instead of 60-s ones")
    parser.add_argument("--seconds", type=float, default=None, help="length of the test movies (default 60)")
    parser.add_argument("--heights", type=int, nargs="+", default=[360, 720], choices=sorted(SIZES))
    parser.add_argument("--jobs", type=int, default=2, help="processes (and movies) of the parallel row")
    parser.add_argument("--deep", action="store_true", help="also time vggish and places (random weights)")
    args = parse_benchmark_args(parser, argv)
    import_optional("cv2").setNumThreads(1)  # stages are timed in their thread's CPU time: no OpenCV thread pool
    seconds = args.seconds or (20.0 if args.quick else 60.0)
    settings = ExtractionSettings()
    rows = []
    with tempfile.TemporaryDirectory(prefix="extraction_bench_") as tmp:
        for height in args.heights:
            rows += measure(height, seconds, args.jobs, Path(tmp), settings, args.deep)
    table = pd.DataFrame(rows)
    return report(table, args, "extraction", "Extraction speed",
                  f"{seconds:g}-s H.264/AAC movies at {FPS} fps, offline default modalities "
                  f"{', '.join(settings.modalities)}, grid {settings.rate:g} Hz, frames decoded at width "
                  f"{settings.width}; x_real_time = movie seconds per wall second")


if __name__ == "__main__":
    raise SystemExit(main())
