"""The calibration networks, built in code, and the published latencies they are fitted to.

The architectures are public; the weights here are random (seeded), which does not change the
instruction count of a dense inference (no kernel here skips zeros). Each net is built into fp32
and int8 .tflite by edgepack's own pipeline (`build_calibration_artifacts`), as the published
figures are TFLite CPU figures.

Published points (as quoted in issue #12; the source of each is cited at its entry below). Device
facts: the Pixel 4 has a Snapdragon 855, one Cortex-A76 at 2.84 GHz and three at 2.42 GHz
(Qualcomm's Snapdragon 855 product brief); with four threads the slowest of the four big cores
sets the pace, so 2.42 GHz is used. The Pixel 3 has a Snapdragon 845 whose four big cores are
Cortex-A75-based at 2.5 GHz (Google's Pixel 3 specifications). The fit uses the points measured on
the core that QEMU emulates (cortex-a76: the Pixel 4 ones); the Pixel 3 points are predicted and
reported as held out (edgepack/estimate/fit.py says why).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

# Input of every calibration net: one 224x224 RGB picture.
INPUT_SHAPE = (1, 3, 224, 224)


@dataclass(frozen=True)
class PublishedPoint:
    net: str  # a key of NETS
    precision: str  # fp32 | int8 (edgepack's precision names)
    ms: float
    device: str
    core: str
    clock_ghz: float  # of the slowest big core the threads run on
    threads: int
    runtime: str
    source: str  # citation

    @property
    def key(self) -> str:
        return f"{self.net}/{self.precision}"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


_HOSTED = (
    "TensorFlow Lite hosted models table (tensorflow.org/lite/guide/hosted_models, 2019-2020; "
    "Pixel 3, Android 10, CPU 4 threads)"
)
_PERF = "TensorFlow Lite performance page (tensorflow.org/lite/performance; MobileNetV1 1.0/224 on Pixel 4, CPU 4 threads)"
_EFFLITE = (
    "EfficientNet-Lite README (github.com/tensorflow/tpu/tree/master/models/official/efficientnet/lite, "
    "Pixel 4 CPU, 4 threads)"
)
_P3 = dict(device="Pixel 3", core="cortex-a75", clock_ghz=2.5, threads=4, runtime="TFLite CPU")
_P4 = dict(device="Pixel 4", core="cortex-a76", clock_ghz=2.42, threads=4, runtime="TFLite CPU")

PUBLISHED: tuple[PublishedPoint, ...] = (
    PublishedPoint("mobilenet_v2", "fp32", 17.5, source=_HOSTED, **_P3),
    PublishedPoint("mobilenet_v2", "int8", 12.0, source=_HOSTED, **_P3),
    PublishedPoint("mobilenet_v1", "fp32", 14.0, source=_PERF, **_P4),
    PublishedPoint("mobilenet_v1", "int8", 5.0, source=_PERF, **_P4),
    PublishedPoint("efficientnet_lite0", "fp32", 12.0, source=_EFFLITE, **_P4),
    PublishedPoint("efficientnet_lite0", "int8", 6.5, source=_EFFLITE, **_P4),
)


def _modules():
    import torch
    from torch import nn

    def conv_bn(cin, cout, k, stride, groups=1, act=True):
        layers = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
        if act:
            layers.append(nn.ReLU6())
        return nn.Sequential(*layers)

    class Classifier(nn.Module):
        def __init__(self, features, width, classes=1000):
            super().__init__()
            self.features = features
            self.fc = nn.Linear(width, classes)

        def forward(self, image):
            x = self.features(image)
            return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))

    class InvertedResidual(nn.Module):
        """MobileNetV2's block, also EfficientNet-Lite's MBConv (no squeeze-excite, ReLU6)."""

        def __init__(self, cin, cout, stride, expand, k=3):
            super().__init__()
            mid = cin * expand
            layers = [conv_bn(cin, mid, 1, 1)] if expand != 1 else []
            layers += [conv_bn(mid, mid, k, stride, groups=mid), conv_bn(mid, cout, 1, 1, act=False)]
            self.body = nn.Sequential(*layers)
            self.residual = stride == 1 and cin == cout

        def forward(self, x):
            y = self.body(x)
            return x + y if self.residual else y

    def mobilenet_v1():
        # Howard et al. 2017, Table 1: 3x3 conv 32 /2, then 13 depthwise-separable layers, width 1.0.
        plan = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2)] + [(512, 1)] * 5 + [(1024, 2), (1024, 1)]
        layers, cin = [conv_bn(3, 32, 3, 2)], 32
        for cout, s in plan:
            layers += [conv_bn(cin, cin, 3, s, groups=cin), conv_bn(cin, cout, 1, 1)]
            cin = cout
        return Classifier(nn.Sequential(*layers), 1024)

    def mobilenet_v2():
        # Sandler et al. 2018, Table 2: (expansion t, channels c, repeats n, stride s).
        plan = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]
        layers, cin = [conv_bn(3, 32, 3, 2)], 32
        for t, c, n, s in plan:
            for i in range(n):
                layers.append(InvertedResidual(cin, c, s if i == 0 else 1, t))
                cin = c
        layers.append(conv_bn(cin, 1280, 1, 1))
        return Classifier(nn.Sequential(*layers), 1280)

    def efficientnet_lite0():
        # EfficientNet-B0's stages (Tan & Le 2019, Table 1) with the Lite changes: no squeeze-excite,
        # ReLU6, fixed stem (32) and head (1280); Lite0 is width 1.0, depth 1.0, 224x224.
        plan = [(1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3), (6, 5, 1, 112, 3), (6, 5, 2, 192, 4), (6, 3, 1, 320, 1)]
        layers, cin = [conv_bn(3, 32, 3, 2)], 32
        for t, k, s, c, n in plan:
            for i in range(n):
                layers.append(InvertedResidual(cin, c, s if i == 0 else 1, t, k))
                cin = c
        layers.append(conv_bn(cin, 1280, 1, 1))
        return Classifier(nn.Sequential(*layers), 1280)

    return {"mobilenet_v1": mobilenet_v1, "mobilenet_v2": mobilenet_v2, "efficientnet_lite0": efficientnet_lite0}


NETS = ("mobilenet_v1", "mobilenet_v2", "efficientnet_lite0")


def build_net(name: str, seed: int = 0):
    """The torch module of a calibration net, in eval mode, with seeded random weights (and
    BatchNorm statistics away from their defaults, so no layer folds to an identity)."""
    import torch

    makers = _modules()
    if name not in makers:
        raise KeyError(f"unknown calibration net {name!r}; choose from: {', '.join(NETS)}")
    torch.manual_seed(seed)
    m = makers[name]()
    for mod in m.modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.running_mean.uniform_(-0.1, 0.1)
            mod.running_var.uniform_(0.5, 1.5)
    return m.eval()


def macs(name: str) -> int:
    """Multiply-accumulates of one inference (conv and linear layers), counted from the module."""
    import torch

    m = build_net(name)
    total = 0

    def hook(mod, inp, out):
        nonlocal total
        if isinstance(mod, torch.nn.Conv2d):
            total += out.numel() * (mod.in_channels // mod.groups) * mod.kernel_size[0] * mod.kernel_size[1]
        elif isinstance(mod, torch.nn.Linear):
            total += out.numel() * mod.in_features

    for mod in m.modules():
        if isinstance(mod, (torch.nn.Conv2d, torch.nn.Linear)):
            mod.register_forward_hook(hook)
    with torch.no_grad():
        m(torch.zeros(INPUT_SHAPE))
    return total


_PROFILE = """\
name = "calibration-{net}"
description = "edgepack device-model calibration net (fp32 and int8 .tflite, NHWC as on a phone)"
device = "Pixel-4-class phone"
threads = 1
[formats.tflite]
precisions = {precisions}
layout = "nhwc"
[quantization]
method = "minmax"
per_channel = true
calibration_samples = {samples}
[validation]
split = 0.5
max_samples = 8
[latency]
runs = 0
[tolerances.fp32]
min_cosine = 0.999
[tolerances.int8]
min_cosine = 0.5
"""


def build_calibration_artifacts(name: str, out: Path, *, precisions=("fp32", "int8"), samples: int = 8) -> dict[str, Path]:
    """Build one calibration net into .tflite files with edgepack.build; returns {precision: path}.
    Random weights make int8 parity loose, so the tolerances are wide: these files exist to be
    counted, not shipped."""
    import json

    import numpy as np
    import torch

    from ..api import build

    out = Path(out)
    work = out / f"{name}.src"
    work.mkdir(parents=True, exist_ok=True)
    model = build_net(name)
    pt2 = work / f"{name}.pt2"
    torch.export.save(torch.export.export(model, (torch.zeros(INPUT_SHAPE),)), str(pt2))
    calib = work / "calib"
    calib.mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    np.savez(calib / "samples.npz", image=rng.uniform(-1, 1, (samples + 16, *INPUT_SHAPE[1:])).astype(np.float32))  # 8+ held out
    profile = work / "profile.toml"
    profile.write_text(_PROFILE.format(net=name, precisions=json.dumps(list(precisions)), samples=samples))
    report = build(pt2, calib, profile, out / name, latency=False, force=True)
    return {r.precision: r.path for r in report.artifacts}
