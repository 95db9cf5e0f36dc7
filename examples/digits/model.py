"""DigitsCNN: a small CNN classifying 8x8 handwritten digits (0-9).

Input  ``image``:  float32 (N, 1, 8, 8), ink in [0, 1] (0 = background).
Output ``logits``: float32 (N, 10), one score per class 0..9.

``entry_point()`` is edgepack's Python entry-point source form::

    edgepack build examples.digits.model:entry_point ...
"""

from pathlib import Path

import torch
from torch import nn

STATE_PATH = Path(__file__).resolve().parent / "digits_cnn_state.pt"


class DigitsCNN(nn.Module):
    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, kernel_size=3, padding=1, bias=False),   # 16x8x8
            nn.BatchNorm2d(16),
            nn.ReLU(),
            nn.Conv2d(16, 32, kernel_size=3, padding=1, bias=False),  # 32x8x8
            nn.BatchNorm2d(32),
            nn.ReLU(),
            nn.MaxPool2d(2),                                          # 32x4x4
            nn.Conv2d(32, 32, kernel_size=3, padding=1),              # 32x4x4
            nn.ReLU(),
        )
        self.classifier = nn.Linear(32 * 4 * 4, num_classes)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = self.features(image)
        x = torch.flatten(x, 1)
        return self.classifier(x)


def example_input() -> torch.Tensor:
    """A fixed (1, 1, 8, 8) float32 input in the model's [0, 1] range."""
    gen = torch.Generator().manual_seed(0)
    return torch.rand(1, 1, 8, 8, generator=gen, dtype=torch.float32)


def load_model(state_path=STATE_PATH) -> DigitsCNN:
    """DigitsCNN with the committed trained weights, in eval mode."""
    model = DigitsCNN()
    state = torch.load(state_path, map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    return model.eval()


def entry_point():
    """Return ``(model, (example_input,))`` for edgepack: the trained model in
    eval mode and a batch-1 example input of shape (1, 1, 8, 8)."""
    return load_model(), (example_input(),)
