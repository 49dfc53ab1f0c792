"""Models whose BatchNorm layers change what the BatchNorm pass means (issue 22, item 8): each factory takes
(num_classes, in_channels) like the built-in ones."""

from torch import nn


def _head(channels: int, num_classes: int) -> list[nn.Module]:
    return [nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, num_classes)]


def no_batchnorm(num_classes: int, in_channels: int) -> nn.Module:
    return nn.Sequential(nn.Conv2d(in_channels, 8, 3, padding=1), *_head(8, num_classes))


def untracked_batchnorm(num_classes: int, in_channels: int) -> nn.Module:
    """One BatchNorm that keeps no running statistics (it normalises every batch by itself) beside an ordinary one."""
    return nn.Sequential(
        nn.Conv2d(in_channels, 8, 3, padding=1),
        nn.BatchNorm2d(8, track_running_stats=False),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        *_head(8, num_classes),
    )


def dropout_before_batchnorm(num_classes: int, in_channels: int) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(in_channels, 8, 3, padding=1), nn.Dropout(0.2), nn.BatchNorm2d(8), *_head(8, num_classes)
    )
