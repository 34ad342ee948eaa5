"""Offline visual features with OpenCV: the ``scene`` (light, colour, motion, shot cuts) and ``faces`` (Haar
cascade) modalities. Neither needs downloaded weights.

Both consume the decoded frames one at a time (:meth:`update`) and give one row per grid interval at the end
(:meth:`finish`), so a movie of any length streams through them. Column meanings are in ``docs/video.md``.
"""
from __future__ import annotations

import functools
from pathlib import Path
from typing import List, Optional, Tuple

import numpy as np

from affect_env.data.types import DataError
from affect_env.features.grid import to_grid
from affect_env.features.media import import_optional

__all__ = ["FACE_COLUMNS", "SCENE_COLUMNS", "FaceFeatures", "SceneFeatures", "haar_cascade_path"]

#: per-frame scene values, averaged per grid row (``scene_cuts`` and ``scene_cut_rate`` are added on the grid)
_FRAME_COLUMNS = ("scene_luminance", "scene_contrast", "scene_hue_cos", "scene_hue_sin", "scene_saturation",
                  "scene_saturation_std", "scene_value", "scene_value_std", "scene_colourfulness", "scene_motion")
SCENE_COLUMNS = _FRAME_COLUMNS + ("scene_cuts", "scene_cut_rate")
FACE_COLUMNS = ("faces_count", "faces_area", "faces_largest_area", "faces_x", "faces_y")
_HUE_COS = np.cos(np.arange(180) * np.pi / 90.0)
_HUE_SIN = np.sin(np.arange(180) * np.pi / 90.0)


class SceneFeatures:
    """Per-frame light, colour and motion statistics and shot cuts, on every decoded frame.

    * light: mean and std of the grey level (Rec. 601 luma, 0-1);
    * colour: saturation-weighted mean direction of the hue (cos, sin), mean / std of saturation and value
      (HSV, 0-1), colourfulness of Hasler & Suesstrunk (2003) on 0-255 RGB, divided by 255;
    * motion: mean absolute grey-level difference to the previous frame (0-1);
    * cuts: a frame starts a new shot when the mean absolute HSV difference to the previous frame (the
      content score of PySceneDetect's ``ContentDetector``, 0-255) reaches ``cut_threshold`` and the shot so far
      lasts at least ``min_shot_seconds``. ``scene_cuts`` counts the cuts inside a grid row; ``scene_cut_rate``
      is cuts per second over a window of ``cut_window`` seconds centred on the row.

    Frames are analysed at half the decoding width (every second pixel), which leaves the statistics unchanged
    up to sampling and halves the cost.
    """

    def __init__(self, cut_threshold: float = 27.0, min_shot_seconds: float = 0.5, cut_window: float = 10.0) -> None:
        self.cv2 = import_optional("cv2")
        self.cut_threshold = float(cut_threshold)
        self.min_shot = float(min_shot_seconds)
        self.cut_window = float(cut_window)
        self.times: List[float] = []
        self.rows: List[Tuple[float, ...]] = []
        self.cuts: List[float] = []
        self._prev_gray: Optional[np.ndarray] = None
        self._prev_hsv: Optional[np.ndarray] = None
        self._shot_start = 0.0

    def update(self, t: float, frame: np.ndarray) -> None:
        """Analyse one BGR frame shown at ``t`` seconds."""
        cv2 = self.cv2
        small = np.ascontiguousarray(frame[::2, ::2]) if frame.shape[1] >= 64 else frame
        gray = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)
        hsv = cv2.cvtColor(small, cv2.COLOR_BGR2HSV)
        n = float(gray.size)
        g_mean, g_std = (float(x[0, 0]) for x in cv2.meanStdDev(gray))
        hsv_mean, hsv_std = cv2.meanStdDev(hsv)
        # saturation-weighted hue direction: a 180-bin histogram of the hue (OpenCV: degrees / 2) weighted by
        # the saturation, against cos / sin tables
        hue = np.bincount(hsv[..., 0].ravel(), weights=hsv[..., 1].ravel(), minlength=180)[:180] / (255.0 * n)
        bgr = small.astype(np.int16)
        rg = bgr[..., 2] - bgr[..., 1]
        yb = (bgr[..., 2] + bgr[..., 1]) * 0.5 - bgr[..., 0]
        colourful = np.sqrt(rg.var() + yb.var()) + 0.3 * np.sqrt(rg.mean() ** 2 + yb.mean() ** 2)
        motion = 0.0
        if self._prev_gray is not None:
            motion = cv2.mean(cv2.absdiff(gray, self._prev_gray))[0] / 255.0
            score = float(np.mean(cv2.mean(cv2.absdiff(hsv, self._prev_hsv))[:3]))
            if score >= self.cut_threshold and t - self._shot_start >= self.min_shot:
                self.cuts.append(float(t))
                self._shot_start = t
        else:
            self._shot_start = t
        self._prev_gray, self._prev_hsv = gray, hsv
        self.times.append(float(t))
        self.rows.append((g_mean / 255.0, g_std / 255.0, float(hue @ _HUE_COS), float(hue @ _HUE_SIN),
                          float(hsv_mean[1, 0]) / 255.0, float(hsv_std[1, 0]) / 255.0,
                          float(hsv_mean[2, 0]) / 255.0, float(hsv_std[2, 0]) / 255.0, float(colourful) / 255.0,
                          float(motion)))

    def finish(self, n_rows: int, rate: float) -> Tuple[Tuple[str, ...], np.ndarray]:
        """``(columns, (n_rows, 12) values)`` on the grid."""
        frames = to_grid(np.array(self.times), np.array(self.rows), n_rows, rate)
        rows = np.floor(np.array(self.cuts, dtype=np.float64) * rate + 1e-9).astype(np.int64)
        cuts = np.bincount(rows[(rows >= 0) & (rows < n_rows)], minlength=n_rows).astype(np.float64)
        half = max(1, int(round(self.cut_window * rate / 2)))
        csum = np.concatenate([[0.0], np.cumsum(cuts)])
        lo = np.clip(np.arange(n_rows) - half, 0, n_rows)
        hi = np.clip(np.arange(n_rows) + half + 1, 0, n_rows)
        rate_col = (csum[hi] - csum[lo]) / ((hi - lo) / rate)  # cuts per second in the window inside the movie
        return SCENE_COLUMNS, np.column_stack([frames, cuts, rate_col])


def haar_cascade_path(given: Optional[str] = None) -> Path:
    """The frontal-face Haar cascade: ``given``, else the one opencv-python(-headless) 4.x ships.

    :raises DataError: no cascade file (OpenCV 5.x wheels no longer ship them)
    """
    if given:
        path = Path(given)
        if not path.is_file():
            raise DataError(f"{path}: face cascade file not found")
        return path
    cv2 = import_optional("cv2")
    folder = getattr(getattr(cv2, "data", None), "haarcascades", None)
    path = Path(folder or "") / "haarcascade_frontalface_default.xml"
    if not folder or not path.is_file():
        raise DataError(f"OpenCV {cv2.__version__} ships no Haar cascade (cv2.data.haarcascades); install "
                        f"'opencv-python-headless<5' or give --face-cascade PATH")
    return path


@functools.lru_cache(maxsize=4)
def _cascade(path: str):
    """The Haar cascade of ``path``, loaded once per process (a tenth of a second or more each time)."""
    detector = import_optional("cv2").CascadeClassifier(path)
    if detector.empty():
        raise DataError(f"{path}: OpenCV cannot load this face cascade")
    return detector


class FaceFeatures:
    """Frontal faces found by OpenCV's Haar cascade (Viola & Jones) on frames sampled ``fps`` times a second,
    scaled to at most :attr:`DETECT_WIDTH` pixels wide and histogram-equalised; faces smaller than a sixth of the
    frame's height (background faces, which carry little of a scene's emotion) are not searched for, which keeps
    the search cheap.

    Per sampled frame: ``faces_count``; ``faces_area`` (the faces' total area as a fraction of the frame);
    ``faces_largest_area``; ``faces_x`` / ``faces_y``, the centre of the largest face (0-1, from the top left;
    0.5 / 0.5 when there is no face, with count 0). Each grid row averages the samples inside it and holds the
    last sample where none falls inside.
    """

    #: faces are searched on the frame scaled to at most this width (a larger ``--width`` does not slow them down)
    DETECT_WIDTH = 320

    def __init__(self, fps: float = 1.0, cascade: Optional[str] = None) -> None:
        self.cv2 = import_optional("cv2")
        self.detector = _cascade(str(haar_cascade_path(cascade)))
        self.period = 1.0 / float(fps)
        self._next = 0.0
        self.times: List[float] = []
        self.rows: List[Tuple[float, ...]] = []

    def due(self, t: float) -> bool:
        """Whether a sample is due at ``t`` (every ``1 / fps`` seconds); marks it taken."""
        if t + 1e-9 < self._next:
            return False
        self._next = t + self.period
        return True

    def detect(self, frame: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """``(grey image searched, (n, 4) faces x, y, w, h in its pixels)`` of one BGR frame."""
        cv2 = self.cv2
        gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        if gray.shape[1] > self.DETECT_WIDTH:
            size = (self.DETECT_WIDTH, max(1, round(gray.shape[0] * self.DETECT_WIDTH / gray.shape[1])))
            gray = cv2.resize(gray, size, interpolation=cv2.INTER_AREA)
        gray = cv2.equalizeHist(gray)
        side = max(24, min(gray.shape) // 6)
        faces = self.detector.detectMultiScale(gray, scaleFactor=1.2, minNeighbors=4, minSize=(side, side))
        return gray, np.asarray(faces, dtype=np.float64).reshape(-1, 4)

    def update(self, t: float, frame: np.ndarray) -> None:
        """Detect faces on this frame when a sample is due (every ``1 / fps`` seconds)."""
        if not self.due(t):
            return
        gray, faces = self.detect(frame)
        height, width = gray.shape
        areas = faces[:, 2] * faces[:, 3] / float(width * height)
        if len(faces):
            x, y, w, h = faces[int(np.argmax(areas))]
            row = (len(faces), float(areas.sum()), float(areas.max()), (x + w / 2) / width, (y + h / 2) / height)
        else:
            row = (0.0, 0.0, 0.0, 0.5, 0.5)
        self.times.append(float(t))
        self.rows.append(row)

    def finish(self, n_rows: int, rate: float) -> Tuple[Tuple[str, ...], np.ndarray]:
        """``(columns, (n_rows, 5) values)`` on the grid."""
        return FACE_COLUMNS, to_grid(np.array(self.times), np.array(self.rows).reshape(-1, 5), n_rows, rate)

