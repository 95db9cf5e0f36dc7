"""Models built in code on which plain int8 misses its budget (tests/test_int8_auto*.py)."""
from __future__ import annotations


def outlier_net(width: int = 8):
    """A conv net whose first conv has one outlier channel (x100 weights, bias 300: its range takes
    the whole per-tensor int8 scale of the activation and crushes the other `width` - 1 channels);
    the next conv reads that channel with 1/100 weights, so the float network is well behaved.
    width=32 makes the weights (~20k) outweigh an .ort's graph overhead (size ratios)."""
    import torch
    from torch import nn

    torch.manual_seed(0)

    class OutlierNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(3, width, 3, padding=1)
            self.conv2 = nn.Conv2d(width, width, 3, padding=1)
            self.conv3 = nn.Conv2d(width, width, 3, padding=1)
            self.fc = nn.Linear(width, 10, bias=False)
            with torch.no_grad():
                self.conv1.weight[0] *= 100.0
                self.conv1.bias[0] = 300.0
                self.conv2.weight[:, 0] /= 100.0

        def forward(self, image):
            x = torch.relu(self.conv1(image))
            x = torch.relu(self.conv2(x))
            x = torch.relu(self.conv3(x))
            return self.fc(x.mean(dim=(2, 3)))

    return OutlierNet().eval()


DETECTOR_BOXES = 4
DETECTOR_CLASSES = 16
DETECTOR_STRIDE = 40.0
BOX_GAIN, SCORE_GAIN = 3.0, 12.0
# The budget a user of such a detector declares (README, int8_auto): edgepack's checks see the
# whole (1, 64, 20) tensor, so the default min_cosine (0.99) only sees the boxes (0..320 outweighs
# 0..1: plain int8 keeps cosine 0.99997 with every score crushed); max_abs bounds the box error in
# pixels, and mean_abs, which the 16 score columns (80% of the values) dominate, the scores.
DETECTOR_TOLERANCES = {"max_abs": 2.0, "mean_abs": 0.08}


def detector_tolerances_toml(precision: str, output: str = "det") -> str:
    """The profile table that declares DETECTOR_TOLERANCES for `precision`'s output `output`."""
    return f"[tolerances.{precision}.outputs.{output}]\n" + "".join(f"{k} = {v}\n" for k, v in DETECTOR_TOLERANCES.items())  # an 8x8 grid over a 320-pixel frame


def detector_head():
    """A small detector: a conv backbone (32-64 channels, so weights dominate the file) and a
    YOLO-style head whose ONE output "det" (1, 64, 4 + 16) concatenates decoded boxes in pixels of a
    320-pixel frame (centres (grid + sigmoid) * 40 in 0..320, sizes sigmoid * 80 in 0..80)
    and 16 class scores (sigmoid, 0..1). One int8 scale over the whole output (0..320: steps of
    1.25) leaves the scores at 0 or 1.25."""
    import torch
    from torch import nn

    torch.manual_seed(0)

    class DetectorHead(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 32, 3, stride=2, padding=1)
            self.conv2 = nn.Conv2d(32, 64, 3, stride=2, padding=1)
            self.conv3 = nn.Conv2d(64, 64, 3, padding=1)
            self.head = nn.Conv2d(64, DETECTOR_BOXES + DETECTOR_CLASSES, 1)
            ys, xs = torch.meshgrid(torch.arange(8.0), torch.arange(8.0), indexing="ij")
            self.register_buffer("grid", torch.stack([xs, ys], -1).reshape(1, 64, 2))
            with torch.no_grad():  # logits of a trained head: scores spread over 0..1, not all near 0.5
                self.head.weight[:DETECTOR_BOXES] *= BOX_GAIN
                self.head.weight[DETECTOR_BOXES:] *= SCORE_GAIN

        def forward(self, image):
            x = torch.relu(self.conv1(image))
            x = torch.relu(self.conv2(x))
            x = torch.relu(self.conv3(x))
            p = self.head(x).flatten(2).transpose(1, 2)  # (1, 64, 12)
            xy = (torch.sigmoid(p[..., 0:2]) + self.grid) * DETECTOR_STRIDE
            wh = torch.sigmoid(p[..., 2:4]) * (2 * DETECTOR_STRIDE)
            scores = torch.sigmoid(p[..., 4:])
            return torch.cat([xy, wh, scores], dim=-1)

    return DetectorHead().eval()


def outlier_split_net():
    """The conv net with an outlier channel that the issue's size bound is measured on: conv1 (3->8)
    has one outlier channel (x100 weights, bias 300) whose range takes the whole per-tensor int8 scale
    of its activation and crushes the other seven; those seven feed a wide body (7->64->64 convs,
    ~41k weights, so weights decide every format's file size), the outlier channel only a side
    branch (its spatial mean, scaled by 1/1000, added to the logits). Plain int8 loses the body's
    input; int16 (or float) activations at conv1 alone repair it, with every weight still int8."""
    import torch
    from torch import nn

    torch.manual_seed(0)

    class OutlierSplitNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
            self.conv2 = nn.Conv2d(7, 64, 3, padding=1)
            self.conv3 = nn.Conv2d(64, 64, 3, padding=1)
            self.fc = nn.Linear(64, 10)
            with torch.no_grad():
                self.conv1.weight[0] *= 100.0
                self.conv1.bias[0] = 300.0
                self.fc.weight *= 10.0  # logits apart by more than the int8 noise of a sound body

        def forward(self, image):
            x = torch.relu(self.conv1(image))
            body = torch.relu(self.conv2(x[:, 1:]))
            body = torch.relu(self.conv3(body))
            side = x[:, :1].mean(dim=(2, 3)) * 0.001
            return self.fc(body.mean(dim=(2, 3))) + side

    return OutlierSplitNet().eval()
