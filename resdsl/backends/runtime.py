"""The run-time pieces both back ends share: shortcut modules, written once.

``build_model`` imports these; the code generator copies this file's definitions into every
generated module that needs them (so a generated file still imports only torch). Edit here
and both back ends change together. Nothing in this file may import resdsl.
"""

from __future__ import annotations

from collections.abc import Callable

import torch.nn.functional as F
from torch import Tensor, nn

SHORTCUT_KINDS = ("identity", "zero_pad", "projection", "projection_all", "avgpool_projection", "none")


class ZeroPadShortcut(nn.Module):
    """Option A shortcut: subsample by striding and append zero channels; no parameters."""

    def __init__(self, stride: int, extra_channels: int) -> None:
        super().__init__()
        self.stride = stride
        self.extra_channels = extra_channels

    def forward(self, x: Tensor) -> Tensor:
        if self.stride > 1:
            x = x[:, :, :: self.stride, :: self.stride]
        if self.extra_channels > 0:
            x = F.pad(x, (0, 0, 0, 0, 0, self.extra_channels))
        return x

    def extra_repr(self) -> str:
        return f"stride={self.stride}, extra_channels={self.extra_channels}"


class FlattenLinear(nn.Linear):
    """A linear layer that flattens a C x H x W input first; its state_dict is nn.Linear's."""

    def forward(self, input: Tensor) -> Tensor:
        return super().forward(input.flatten(1))


def make_shortcut(
    kind: str,
    in_channels: int,
    out_channels: int,
    stride: int,
    changes: bool,
    norm: bool | Callable[[int], nn.Module] = True,
) -> nn.Module | None:
    """The module that maps a block's input (or its ``project_from`` tap) onto the main branch.

    ``changes`` says whether the block changes the shape of its input; where it does not,
    option A and B shortcuts are the identity (None). ``projection_all`` (option C) always
    projects. ``none`` and ``identity`` never have a module. ``norm``: batchnorm after the
    projection (True), none (False), or a function making the norm for a channel count.
    """
    if kind not in SHORTCUT_KINDS:
        raise ValueError(f"unknown shortcut kind {kind!r}; expected one of {SHORTCUT_KINDS}")
    if kind == "zero_pad" and changes:
        if out_channels < in_channels:
            raise ValueError(f"zero_pad cannot reduce channels from {in_channels} to {out_channels}")
        return ZeroPadShortcut(stride, out_channels - in_channels)
    if kind == "projection_all" or (kind in ("projection", "avgpool_projection") and changes):
        layers: list[nn.Module] = []
        if kind == "avgpool_projection":
            # ResNet-D: pool first, so that the 1x1 conv sees every input position
            pool = nn.AvgPool2d(stride, stride, ceil_mode=True, count_include_pad=False)
            layers.append(pool if stride > 1 else nn.Identity())
            stride = 1
        layers.append(nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False))
        if norm is True:
            layers.append(nn.BatchNorm2d(out_channels))
        elif norm:
            layers.append(norm(out_channels))
        return nn.Sequential(*layers)
    return None
