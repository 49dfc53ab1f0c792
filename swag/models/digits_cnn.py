"""A small CNN with BatchNorm for 8x8 digit images (sklearn ``load_digits``)."""

from torch import nn


def _block(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class DigitsCNN(nn.Module):
    """conv-bn-relu x3 (16, 32, 64 channels), one 2x2 max-pool, global average pool, linear head.

    Input (N, C, H, W) with any H, W >= 2; output logits (N, num_classes).
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 1, width: int = 16) -> None:
        super().__init__()
        self.features = nn.Sequential(
            *_block(in_channels, width),
            *_block(width, 2 * width),
            nn.MaxPool2d(2),
            *_block(2 * width, 4 * width),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.fc = nn.Linear(4 * width, num_classes)

    def forward(self, x):
        return self.fc(self.features(x))


def digits_cnn(num_classes: int = 10, in_channels: int = 1) -> DigitsCNN:
    return DigitsCNN(num_classes=num_classes, in_channels=in_channels)
