"""Models built in code on which plain int8 misses its budget (tests/test_int8_auto*.py)."""
from __future__ import annotations


def outlier_net():
    """A conv net whose first conv has one outlier channel (x100 weights, bias 300: its range takes
    the whole per-tensor int8 scale of the activation and crushes the other seven channels); the
    next conv reads that channel with 1/100 weights, so the float network is well behaved."""
    import torch
    from torch import nn

    torch.manual_seed(0)

    class OutlierNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
            self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
            self.conv3 = nn.Conv2d(8, 8, 3, padding=1)
            self.fc = nn.Linear(8, 10, bias=False)
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
