"""Decoding a movie file with PyAV: what it holds (:func:`probe`), its video frames (:func:`video_frames`) and
its audio as mono chunks (:func:`audio_chunks`), with one :class:`~affect_env.data.types.DataError` line naming
the file for every input that cannot be decoded.

Times are seconds from the container's start (``container.start_time``), the same origin for both streams, so a
feature computed on the audio and one computed on the frames land on the same grid row. PyAV (FFmpeg) is an
optional dependency (the ``video`` extra); it is imported when a file is first opened.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional, Tuple

import numpy as np

from affect_env.data.types import DataError, PathLike

__all__ = ["VIDEO_SUFFIXES", "MediaInfo", "audio_chunks", "import_optional", "probe", "video_frames"]

#: File suffixes taken as movies when a folder is given (case-insensitive).
VIDEO_SUFFIXES = (".mp4", ".m4v", ".mkv", ".webm", ".avi", ".mov", ".mpg", ".mpeg", ".ts", ".wmv", ".flv",
                  ".ogv")


def import_optional(name: str, extra: str = "video"):
    """Import the optional third-party module ``name``, or raise one line naming the extra that installs it.

    :param name: module name (``"av"``, ``"cv2"``, ``"opensmile"``, ``"librosa"``, ``"torchvision"``)
    :param extra: the ``pip install 'affect-rmn[extra]'`` extra that provides it
    :raises DataError: the module is not installed
    """
    try:
        return __import__(name)
    except ImportError as exc:
        raise DataError(f"{name} is not installed ({exc}): pip install 'affect-rmn[{extra}]'") from None


@dataclass(frozen=True)
class MediaInfo:
    """What one movie file holds.

    :param path: the file
    :param duration: seconds of the longest stream (container duration when the streams do not say)
    :param fps: average video frame rate
    :param width: video width in pixels
    :param height: video height in pixels
    :param video_codec: FFmpeg decoder name of the video stream
    :param audio_codec: decoder name of the first audio stream, ``None`` without audio
    :param start: the container's start time in seconds (the origin of every time)
    """

    path: Path
    duration: float
    fps: float
    width: int
    height: int
    video_codec: str
    audio_codec: Optional[str]
    start: float

    @property
    def has_audio(self) -> bool:
        return self.audio_codec is not None


def _open(path: Path):
    """``av.open`` with every failure turned into one line naming the file."""
    av = import_optional("av")
    if not path.exists():
        raise DataError(f"{path}: file not found")
    if path.is_file() and path.stat().st_size == 0:
        raise DataError(f"{path}: empty file (0 bytes), not a movie")
    try:
        return av.open(str(path))
    except av.error.FFmpegError as exc:
        raise DataError(f"{path}: cannot open as a movie (corrupt, truncated or not a video file): "
                        f"{_ffmpeg_message(exc)}") from None


def _ffmpeg_message(exc: Exception) -> str:
    """FFmpeg's own message without PyAV's errno prefix and file name."""
    return str(getattr(exc, "strerror", None) or exc).strip()


def _decoder_name(stream) -> Optional[str]:
    """The decoder FFmpeg would use, or ``None`` when it has none for this codec."""
    try:
        ctx = stream.codec_context
    except Exception:  # pragma: no cover - PyAV raises on some broken streams
        return None
    return None if ctx is None else ctx.name


def _stream_seconds(stream) -> Optional[float]:
    if stream.duration is None or stream.time_base is None:
        return None
    return float(stream.duration * stream.time_base)


def probe(path: PathLike) -> MediaInfo:
    """Open ``path`` and describe its first video stream and first audio stream.

    :raises DataError: missing, empty, unreadable (corrupt or truncated) file, no video stream, or a video
        codec this FFmpeg build cannot decode; one line naming the file
    """
    path = Path(path)
    container = _open(path)
    try:
        if not container.streams.video:
            kinds = sorted({s.type for s in container.streams}) or ["none"]
            raise DataError(f"{path}: no video stream (streams: {', '.join(kinds)})")
        video = container.streams.video[0]
        codec = _decoder_name(video)
        if codec is None:
            tag = getattr(video, "codec_tag", "") or "unknown"
            raise DataError(f"{path}: unsupported video codec (tag {tag!r}): this FFmpeg build has no decoder for "
                            f"it; re-encode the file, e.g. ffmpeg -i IN -c:v libx264 -c:a aac OUT.mp4")
        audio = container.streams.audio[0] if container.streams.audio else None
        audio_codec = _decoder_name(audio) if audio is not None else None
        start = container.start_time / 1e6 if container.start_time is not None else 0.0
        spans = [s for s in (_stream_seconds(video), _stream_seconds(audio) if audio is not None else None) if s]
        duration = max(spans) if spans else (container.duration / 1e6 if container.duration else 0.0)
        fps = float(video.average_rate) if video.average_rate else 0.0
        return MediaInfo(path, float(duration), fps, int(video.codec_context.width),
                         int(video.codec_context.height), codec, audio_codec, float(start))
    finally:
        container.close()


def video_frames(info: MediaInfo, width: int, threads: int = 1) -> Iterator[Tuple[float, np.ndarray]]:
    """``(time, BGR uint8 frame)`` of every decoded frame, scaled to ``width`` pixels wide (aspect kept, even
    height) by FFmpeg's scaler.

    :param info: the file, from :func:`probe`
    :param width: analysis width in pixels (no upscaling: a narrower video keeps its width)
    :param threads: decoder threads (1 when files are extracted in parallel processes)
    :raises DataError: a decoding error part-way (truncated or corrupt data), or no frame at all
    """
    av = import_optional("av")
    w = min(int(width), info.width) // 2 * 2
    h = max(2, int(round(info.height * w / max(info.width, 1) / 2)) * 2)
    container = _open(info.path)
    scaler = av.video.reformatter.VideoReformatter()  # one scaler for the whole file: 3x faster than per frame
    n = 0
    try:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO" if threads > 1 else "SLICE"
        stream.codec_context.thread_count = max(1, int(threads))
        for frame in container.decode(stream):
            if frame.pts is None:
                continue
            n += 1
            yield float(frame.time) - info.start, scaler.reformat(frame, width=w, height=h, format="bgr24").to_ndarray()
    except av.error.FFmpegError as exc:
        raise DataError(f"{info.path}: video decoding failed after {n} frame(s) (corrupt or truncated file): "
                        f"{_ffmpeg_message(exc)}") from None
    finally:
        container.close()
    if n == 0:
        raise DataError(f"{info.path}: the video stream holds no decodable frame (corrupt or truncated file)")


def audio_chunks(info: MediaInfo, rate: int, chunk_seconds: float,
                 context_seconds: float) -> Iterator[Tuple[float, np.ndarray, float, float]]:
    """The first audio stream as mono float32 at ``rate`` Hz, in overlapping chunks, so a movie of any length
    is analysed in bounded memory.

    Chunk ``k`` keeps the seconds ``[k*C, (k+1)*C)`` (``C = chunk_seconds``) and carries ``context_seconds`` of
    audio on either side (where there is some), so windowed analyses (tempo, key) see the same audio whether
    a second lies in the middle of a chunk or at its edge.

    :return: iterator of ``(t0, samples, keep_from, keep_to)``: ``samples[0]`` is at time ``t0``; the caller
        keeps the features whose time is in ``[keep_from, keep_to)``
    :raises DataError: a decoding error part-way, or no audio sample at all
    """
    av = import_optional("av")
    container = _open(info.path)
    resampler = av.AudioResampler(format="flt", layout="mono", rate=int(rate))
    parts: list = []
    have = 0
    buf_t0: Optional[float] = None   # time of parts' first sample
    keep_from = 0.0
    chunk = float(chunk_seconds)
    ctx = float(context_seconds)

    def take(upto: Optional[float]):
        """The chunk ending at ``upto`` (``None``: the rest); trims the buffer to the next chunk's context."""
        nonlocal parts, have, buf_t0, keep_from
        samples = np.concatenate(parts) if len(parts) > 1 else parts[0]
        keep_to = upto if upto is not None else buf_t0 + len(samples) / rate
        out = (buf_t0, samples, keep_from, keep_to)
        drop = max(0, int(round((keep_to - ctx - buf_t0) * rate)))
        parts, have = [samples[drop:]], len(samples) - drop
        buf_t0 += drop / rate
        keep_from = keep_to
        return out

    n = 0
    try:
        stream = container.streams.audio[0]
        for frame in container.decode(stream):
            for out in resampler.resample(frame):
                n += 1
                if buf_t0 is None:
                    buf_t0 = max(0.0, float(out.time or 0.0) - info.start) if out.pts is not None else 0.0
                parts.append(out.to_ndarray().reshape(-1).astype(np.float32, copy=False))
                have += out.samples
                while buf_t0 + have / rate >= keep_from + chunk + ctx:
                    yield take(keep_from + chunk)
        for out in resampler.resample(None):
            parts.append(out.to_ndarray().reshape(-1).astype(np.float32, copy=False))
            have += out.samples
    except av.error.FFmpegError as exc:
        raise DataError(f"{info.path}: audio decoding failed after {n} frame(s) (corrupt or truncated file): "
                        f"{_ffmpeg_message(exc)}") from None
    finally:
        container.close()
    if buf_t0 is None or have == 0 and keep_from == 0.0:
        raise DataError(f"{info.path}: the audio stream holds no decodable sample (corrupt or truncated file)")
    if have > 0:
        yield take(None)
