"""Optional deep extractors, as in the paper: ``vggish`` (VGGish audio embeddings) and ``places`` (a Places365
scene CNN). They need weights: a file the user gives, or the usual download of their authors' release
(``download``); an extractor without weights stops with one line saying so. Nothing here runs without them.

* ``vggish``: the VGGish network of Hershey et al. (2017), "CNN architectures for large-scale audio
  classification", in the PyTorch port of ``harritaylor/torchvggish`` (same layer names, so its release
  ``vggish-10086976.pth`` loads as is). Input: 0.96-s log-mel patches (64 mel bands 125-7500 Hz, 25-ms windows
  every 10 ms, ``log(mel + 0.01)``) of the 16-kHz mono audio, one every 0.96 s as in the original; output: the
  128-d embedding before the PCA / quantisation post-processing (``vggish_0`` .. ``vggish_127``).
* ``expression``: the FER+ facial-expression network (Barsoum et al. 2016, "Training deep networks for facial
  expression recognition with crowd-sourced label distribution"; the ONNX model zoo's ``emotion-ferplus-8.onnx``,
  run by OpenCV's DNN module) on the largest face the Haar cascade finds (``faces``' detector and sampling,
  ``face_fps``), cropped, grey, 64 x 64, pixel values 0-255; output: ``expression_face`` (1 when a face was
  found) and the softmax probabilities of the eight FER+ classes (``expression_neutral`` ..
  ``expression_contempt``), all 0 without a face.
* ``pose``: OpenPose's COCO body model (Cao et al. 2017, "Realtime multi-person 2D pose estimation using part
  affinity fields"; ``pose_iter_440000.caffemodel`` with ``pose_deploy_linevec.prototxt``, or the same network
  as ONNX), run by OpenCV's DNN module on frames sampled ``deep_fps`` times a second, resized to 368 x 368, pixel
  values / 255. Like OpenCV's ``openpose.py`` sample it reads one person: for each of the 18 keypoints, the
  maximum of its heatmap (``pose_<keypoint>_conf``) and where it lies (``pose_<keypoint>_x`` / ``_y``, 0-1 from
  the top left); the part affinity fields are not used. Slow on a CPU (about a second per frame).
* ``places``: a ResNet-18 trained on Places365 (Zhou et al. 2017, "Places: a 10 million image database for
  scene recognition"; CSAIL release ``resnet18_places365.pth.tar``, whose ``module.``-prefixed keys are
  accepted), on frames sampled ``deep_fps`` times a second, resized to 224 x 224 and ImageNet-normalised; output:
  the 512-d pooled feature before the classifier (``places_0`` .. ``places_511``).

The networks are written here in plain PyTorch (torch is a dependency of the package; torchvision is not needed).
Weights load with ``torch.load(..., weights_only=True)``: a file holding anything but tensors is refused. The
expression network is an ONNX file read by ``cv2.dnn.readNetFromONNX``.
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Tuple

import numpy as np
import torch
from torch import nn

from affect_env.data.types import DataError
from affect_env.features.grid import to_grid
from affect_env.features.media import import_optional
from affect_env.features.visual import FaceFeatures

__all__ = ["DEEP_MODALITIES", "EXPRESSIONS", "KEYPOINTS", "WEIGHT_URLS", "ExpressionFeatures", "PlacesFeatures",
           "PoseFeatures", "ResNet18", "VGGish", "VGGishFeatures", "check_weights_given", "load_state_dict"]

DEEP_MODALITIES = ("vggish", "places", "expression", "pose")
#: the authors' releases, fetched by ``--weights NAME=download`` (torch.hub's cache)
WEIGHT_URLS = {
    "vggish": "https://github.com/harritaylor/torchvggish/releases/download/v0.1/vggish-10086976.pth",
    "places": "http://places2.csail.mit.edu/models_places365/resnet18_places365.pth.tar",
    "expression": "https://github.com/onnx/models/raw/main/validated/vision/body_analysis/emotion_ferplus/model/"
                  "emotion-ferplus-8.onnx",
}
#: OpenPose's COCO model: the Caffe weights and the network description, from OpenPose's models/getModels.sh
OPENPOSE_URLS = {
    "caffemodel": "http://posefs1.perception.cs.cmu.edu/OpenPose/models/pose/coco/pose_iter_440000.caffemodel",
    "prototxt": "https://raw.githubusercontent.com/CMU-Perceptual-Computing-Lab/openpose/master/models/pose/coco/"
                "pose_deploy_linevec.prototxt",
}
WEIGHT_URLS["pose"] = OPENPOSE_URLS["caffemodel"]
#: the 18 COCO body keypoints of OpenPose, in the order of its heatmaps
KEYPOINTS = ("nose", "neck", "r_shoulder", "r_elbow", "r_wrist", "l_shoulder", "l_elbow", "l_wrist", "r_hip",
             "r_knee", "r_ankle", "l_hip", "l_knee", "l_ankle", "r_eye", "l_eye", "r_ear", "l_ear")
#: the eight FER+ classes, in the network's output order
EXPRESSIONS = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt")


def check_weights_given(name: str, spec: Optional[str]) -> None:
    """Raise one line when deep modality ``name`` has no weights, or a weights file that does not exist, before
    any movie is decoded.

    :raises DataError: saying how to give the weights
    """
    if not spec:
        kind = {"expression": "an ONNX file of this network",
                "pose": "OpenPose's COCO .caffemodel beside its .prototxt, or an ONNX file"}.get(
            name, "a state dict of this network")
        raise DataError(f"{name}: no weights: give --weights {name}=PATH ({kind}) or "
                        f"--weights {name}=download ({WEIGHT_URLS[name]})")
    if spec != "download" and not Path(spec).is_file():
        raise DataError(f"{spec}: {name} weights file not found")


def load_state_dict(name: str, spec: Optional[str], model: nn.Module) -> nn.Module:
    """Load the weights of the ``name`` extractor into ``model`` (eval mode, CPU).

    :param name: ``vggish`` or ``places``
    :param spec: a file path, or ``"download"`` for :data:`WEIGHT_URLS` ``[name]`` (torch.hub's cache)
    :raises DataError: no weights given, a missing or unreadable file, or keys / shapes that do not fit
    """
    check_weights_given(name, spec)
    try:
        if spec == "download":
            state = torch.hub.load_state_dict_from_url(WEIGHT_URLS[name], map_location="cpu", progress=False,
                                                       weights_only=True)
        else:
            state = torch.load(spec, map_location="cpu", weights_only=True)
    except Exception as exc:  # network, pickle and format errors alike
        raise DataError(f"{spec}: cannot load {name} weights: {type(exc).__name__}: {exc}") from None
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise DataError(f"{spec}: {name} weights must be a state dict, got {type(state).__name__}")
    state = {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()}
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or wrong:
        parts = [f"{len(v)} {what} (e.g. {v[0]!r})" for what, v in
                 (("missing key(s)", missing), ("unexpected key(s)", unexpected), ("wrong shape(s)", wrong)) if v]
        raise DataError(f"{spec}: not {name} weights: {', '.join(parts)}")
    model.load_state_dict(state)
    return model.eval()


# ============================================================================================== VGGish
class VGGish(nn.Module):
    """VGGish: four VGG blocks on a ``(N, 1, 96, 64)`` log-mel patch, then 4096-4096-128 fully connected
    (layer names as in ``harritaylor/torchvggish``)."""

    def __init__(self) -> None:
        super().__init__()
        layers: List[nn.Module] = []
        channels = 1
        for v in (64, "M", 128, "M", 256, 256, "M", 512, 512, "M"):
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(channels, int(v), 3, padding=1), nn.ReLU(inplace=True)]
                channels = int(v)
        self.features = nn.Sequential(*layers)
        self.embeddings = nn.Sequential(nn.Linear(512 * 4 * 6, 4096), nn.ReLU(True), nn.Linear(4096, 4096),
                                        nn.ReLU(True), nn.Linear(4096, 128), nn.ReLU(True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        x = x.permute(0, 2, 3, 1).contiguous()  # TensorFlow's channels-last order before flattening
        return self.embeddings(x.view(x.size(0), -1))


class VGGishFeatures:
    """VGGish embeddings of the audio, one per 0.96 s (see the module docstring); needs 16-kHz audio."""

    EXAMPLE_FRAMES, HOP, WINDOW, N_FFT = 96, 160, 400, 512

    def __init__(self, weights: Optional[str]) -> None:
        self.librosa = import_optional("librosa")
        self.model = load_state_dict("vggish", weights, VGGish())
        self.columns = tuple(f"vggish_{i}" for i in range(128))
        self.mel = self.librosa.filters.mel(sr=16000, n_fft=self.N_FFT, n_mels=64, fmin=125.0, fmax=7500.0,
                                            htk=True, norm=None)
        self.times: List[np.ndarray] = []
        self.values: List[np.ndarray] = []

    def update(self, t0: float, samples: np.ndarray, rate: int, keep_from: float, keep_to: float) -> None:
        """Embed the 0.96-s patches of one chunk that start in ``[keep_from, keep_to)`` (on a 0.96-s clock)."""
        if rate != 16000:
            raise DataError(f"vggish needs audio_rate=16000 (the network's), got {rate}")
        step = self.EXAMPLE_FRAMES * self.HOP / rate  # 0.96 s
        first = int(np.ceil((keep_from - 1e-9) / step))
        starts = [k * step for k in range(first, int(np.ceil((keep_to - 1e-9) / step)))]
        need = self.N_FFT + (self.EXAMPLE_FRAMES - 1) * self.HOP
        patches, times = [], []
        for s in starts:
            i = int(round((s - t0) * rate))
            if i < 0 or i + need > len(samples):
                continue
            spec = np.abs(self.librosa.stft(samples[i:i + need], n_fft=self.N_FFT, hop_length=self.HOP,
                                            win_length=self.WINDOW, window="hann", center=False))
            patches.append(np.log(self.mel @ spec + 0.01).T[: self.EXAMPLE_FRAMES])
            times.append(s + step / 2)
        if not patches:
            return
        with torch.inference_mode():
            emb = self.model(torch.from_numpy(np.stack(patches)[:, None].astype(np.float32))).numpy()
        self.times.append(np.array(times))
        self.values.append(emb.astype(np.float64))

    def finish(self, n_rows: int, rate: float) -> Tuple[Tuple[str, ...], np.ndarray]:
        """``(columns, (n_rows, 128))`` on the grid (each embedding held until the next)."""
        if not self.times:
            raise DataError("vggish: the audio is shorter than one 0.96-s patch")
        return self.columns, to_grid(np.concatenate(self.times), np.concatenate(self.values), n_rows, rate)


# ============================================================================================== Places
class _BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + (x if self.downsample is None else self.downsample(x)))


class ResNet18(nn.Module):
    """ResNet-18 (He et al. 2016) with torchvision's layer names, ``n_classes`` outputs; :meth:`embed` gives the
    512-d pooled feature."""

    def __init__(self, n_classes: int = 365) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        widths = (64, 128, 256, 512)
        cin = 64
        for i, w in enumerate(widths):
            setattr(self, f"layer{i + 1}", nn.Sequential(_BasicBlock(cin, w, 1 if i == 0 else 2),
                                                         _BasicBlock(w, w, 1)))
            cin = w
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512, n_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(self.avgpool(x), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.embed(x))


class PlacesFeatures:
    """Places365 ResNet-18 features of frames sampled ``fps`` times a second (see the module docstring)."""

    MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
    STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)

    def __init__(self, weights: Optional[str], fps: float = 1.0, batch: int = 16) -> None:
        self.cv2 = import_optional("cv2")
        self.model = load_state_dict("places", weights, ResNet18(365))
        self.period = 1.0 / float(fps)
        self.batch = int(batch)
        self._next = 0.0
        self._pending: List[np.ndarray] = []
        self._pending_t: List[float] = []
        self.times: List[float] = []
        self.values: List[np.ndarray] = []
        self.columns = tuple(f"places_{i}" for i in range(512))

    def update(self, t: float, frame: np.ndarray) -> None:
        """Queue this BGR frame when a sample is due; run the network on full batches."""
        if t + 1e-9 < self._next:
            return
        self._next = t + self.period
        rgb = self.cv2.cvtColor(self.cv2.resize(frame, (224, 224), interpolation=self.cv2.INTER_AREA),
                                self.cv2.COLOR_BGR2RGB)
        self._pending.append(((rgb.astype(np.float32) / 255.0 - self.MEAN) / self.STD).transpose(2, 0, 1))
        self._pending_t.append(float(t))
        if len(self._pending) >= self.batch:
            self._flush()

    def _flush(self) -> None:
        if not self._pending:
            return
        with torch.inference_mode():
            emb = self.model.embed(torch.from_numpy(np.stack(self._pending))).numpy()
        self.values.append(emb.astype(np.float64))
        self.times += self._pending_t
        self._pending, self._pending_t = [], []

    def finish(self, n_rows: int, rate: float) -> Tuple[Tuple[str, ...], np.ndarray]:
        """``(columns, (n_rows, 512))`` on the grid (each sample held until the next)."""
        self._flush()
        return self.columns, to_grid(np.array(self.times), np.concatenate(self.values), n_rows, rate)


# ========================================================================================== expression
def _cached_download(url: str, folder: str) -> Path:
    """``url`` saved in torch.hub's cache (``<hub>/checkpoints/<folder>/<file name>``), downloaded once."""
    path = Path(torch.hub.get_dir()) / "checkpoints" / folder / url.rsplit("/", 1)[1]
    if not path.is_file():
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            torch.hub.download_url_to_file(url, str(path), progress=False)
        except Exception as exc:
            raise DataError(f"{url}: cannot download: {type(exc).__name__}: {exc}") from None
    return path


def load_onnx(name: str, spec: Optional[str], in_shape: Tuple[int, ...], n_out: int):
    """An OpenCV DNN network from an ONNX file (or ``"download"``: :data:`WEIGHT_URLS` ``[name]`` into torch.hub's
    cache), checked on a zero input of ``in_shape`` to give ``n_out`` values.

    :raises DataError: no weights, a missing or unreadable file, or a network with other inputs / outputs
    """
    check_weights_given(name, spec)
    cv2 = import_optional("cv2")
    path = _cached_download(WEIGHT_URLS[name], name) if spec == "download" else Path(spec)
    try:
        net = cv2.dnn.readNetFromONNX(str(path))
        net.setInput(np.zeros(in_shape, dtype=np.float32))
        out = net.forward()
    except cv2.error as exc:
        raise DataError(f"{path}: not an ONNX {name} network OpenCV can run: {str(exc).strip().splitlines()[-1]}"
                        ) from None
    if out.size != n_out:
        raise DataError(f"{path}: not the {name} network: {out.size} outputs for one input, expected {n_out}")
    return net


class ExpressionFeatures:
    """FER+ expression probabilities of the largest face (see the module docstring)."""

    def __init__(self, weights: Optional[str], fps: float = 1.0, cascade: Optional[str] = None) -> None:
        self.cv2 = import_optional("cv2")
        self.net = load_onnx("expression", weights, (1, 1, 64, 64), len(EXPRESSIONS))
        self.faces = FaceFeatures(fps, cascade)
        self.columns = ("expression_face",) + tuple(f"expression_{e}" for e in EXPRESSIONS)
        self.times: List[float] = []
        self.rows: List[np.ndarray] = []

    def update(self, t: float, frame: np.ndarray) -> None:
        """Classify the largest face of this frame when a sample is due."""
        if not self.faces.due(t):
            return
        gray, faces = self.faces.detect(frame)
        row = np.zeros(len(self.columns))
        if len(faces):
            x, y, w, h = (int(v) for v in faces[int(np.argmax(faces[:, 2] * faces[:, 3]))])
            crop = self.cv2.resize(gray[y:y + h, x:x + w], (64, 64), interpolation=self.cv2.INTER_AREA)
            self.net.setInput(crop[None, None].astype(np.float32))
            scores = self.net.forward().reshape(-1).astype(np.float64)
            prob = np.exp(scores - scores.max())
            row[0], row[1:] = 1.0, prob / prob.sum()
        self.times.append(float(t))
        self.rows.append(row)

    def finish(self, n_rows: int, rate: float) -> Tuple[Tuple[str, ...], np.ndarray]:
        """``(columns, (n_rows, 9))`` on the grid (each sample held until the next)."""
        return self.columns, to_grid(np.array(self.times), np.array(self.rows).reshape(-1, 9), n_rows, rate)


# ================================================================================================ pose
def load_openpose(spec: Optional[str]):
    """OpenPose's COCO network in OpenCV's DNN module: ``spec`` is a ``.caffemodel`` (its ``.prototxt`` beside it,
    with the same stem or named ``pose_deploy_linevec.prototxt``), an ONNX file, or ``"download"``; checked to
    give at least 18 heatmaps for a 368 x 368 image.

    :raises DataError: no weights, missing or unreadable files, or a network with other outputs
    """
    check_weights_given("pose", spec)
    cv2 = import_optional("cv2")
    if spec == "download":
        model = _cached_download(OPENPOSE_URLS["caffemodel"], "openpose_coco")
        config = _cached_download(OPENPOSE_URLS["prototxt"], "openpose_coco")
    else:
        model, config = Path(spec), None
        if model.suffix.lower() != ".onnx":
            config = next((c for c in (model.with_suffix(".prototxt"), model.parent / "pose_deploy_linevec.prototxt")
                           if c.is_file()), None)
            if config is None:
                raise DataError(f"{model}: no .prototxt beside this Caffe model ({model.with_suffix('.prototxt')} or "
                                f"{model.parent / 'pose_deploy_linevec.prototxt'})")
    try:
        net = cv2.dnn.readNet(str(model), str(config) if config else "")
        net.setInput(np.zeros((1, 3, 368, 368), dtype=np.float32))
        out = net.forward()
    except cv2.error as exc:
        raise DataError(f"{model}: not a pose network OpenCV can run: {str(exc).strip().splitlines()[-1]}") from None
    if out.ndim != 4 or out.shape[1] < len(KEYPOINTS):
        raise DataError(f"{model}: not the pose network: output shape {tuple(out.shape)}, expected (1, >= 18 "
                        f"heatmaps, H, W)")
    return net


class PoseFeatures:
    """One person's body keypoints from OpenPose's heatmaps (see the module docstring)."""

    def __init__(self, weights: Optional[str], fps: float = 1.0) -> None:
        self.cv2 = import_optional("cv2")
        self.net = load_openpose(weights)
        self.period = 1.0 / float(fps)
        self._next = 0.0
        self.columns = tuple(f"pose_{k}_{v}" for k in KEYPOINTS for v in ("conf", "x", "y"))
        self.times: List[float] = []
        self.rows: List[np.ndarray] = []

    def update(self, t: float, frame: np.ndarray) -> None:
        """Run the network on this BGR frame when a sample is due."""
        if t + 1e-9 < self._next:
            return
        self._next = t + self.period
        blob = self.cv2.dnn.blobFromImage(frame, 1.0 / 255, (368, 368), (0, 0, 0), swapRB=False, crop=False)
        self.net.setInput(blob)
        heat = self.net.forward()[0, :len(KEYPOINTS)]
        h, w = heat.shape[1:]
        flat = heat.reshape(len(KEYPOINTS), -1)
        best = flat.argmax(axis=1)
        row = np.empty((len(KEYPOINTS), 3))
        row[:, 0] = flat[np.arange(len(KEYPOINTS)), best]
        row[:, 1] = (best % w + 0.5) / w
        row[:, 2] = (best // w + 0.5) / h
        self.times.append(float(t))
        self.rows.append(row.reshape(-1))

    def finish(self, n_rows: int, rate: float) -> Tuple[Tuple[str, ...], np.ndarray]:
        """``(columns, (n_rows, 54))`` on the grid (each sample held until the next)."""
        values = np.array(self.rows).reshape(-1, len(self.columns))
        return self.columns, to_grid(np.array(self.times), values, n_rows, rate)
