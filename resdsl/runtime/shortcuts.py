"""Shortcut modules at run time: option A's ``ZeroPadShortcut``, and the helpers generated
files carry.

``build_model`` does not call ``make_shortcut``: it builds a shortcut from the steps of its
realised description (:meth:`resdsl.ops.shortcut.Shortcut.steps`) through the op table;
``ZeroPadShortcut`` is the ``pad_channels`` op's module there (named in
:mod:`resdsl.runtime.layers`). The code generator copies the parts after the markers below into
the generated modules that use them (so a generated file still imports only torch and typing):
``ZeroPadShortcut`` where a network pads, ``make_shortcut`` (with ``ZeroPadShortcut``) only where
a shortcut kind is chosen at run time, ``with_bias`` for inference modules that make a
projection with ``make_shortcut``. tests/backends/torch/test_backend_torch.py holds that
``make_shortcut`` builds what the description says, for every kind, shape change, tap and
norm. Nothing here may import resdsl.

The kinds a generated class may choose at run time leave out identity_if_same, which the
checker decides block by block (generated code tests ``has_skip``; codegen refuses it as a
parameter whose value varies, E507).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn


# --- copied into generated inference modules from here ---
def with_bias(shortcut: nn.Module | None) -> nn.Module | None:
    """Give a projection shortcut's 1x1 conv a bias: inference builds fold its batchnorm into
    the conv (parameter-free shortcuts pass through)."""
    if isinstance(shortcut, nn.Sequential):
        conv = shortcut[-1]
        assert isinstance(conv, nn.Conv2d) and conv.bias is None, "the projection ends in its conv"
        conv.bias = nn.Parameter(torch.zeros(conv.out_channels))
    return shortcut


# --- copied into generated modules that zero-pad, from here ---
class ZeroPadShortcut(nn.Module):
    """Option A shortcut: subsample by striding and append zero channels; no parameters."""

    def __init__(self, stride: int, extra_channels: int) -> None:
        super().__init__()
        self.stride = stride
        self.extra_channels = extra_channels

    def forward(self, x: Tensor) -> Tensor:
        if self.stride > 1:
            x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, 0, self.extra_channels))

    def extra_repr(self) -> str:
        return f"stride={self.stride}, extra_channels={self.extra_channels}"


# --- copied into generated modules that choose a shortcut at run time, from here ---
SHORTCUT_KINDS = ("identity", "zero_pad", "projection", "projection_all", "avgpool_projection", "none")


def make_shortcut(
    kind: str,
    in_channels: int,
    out_channels: int,
    stride: int,
    norm: bool | Callable[[int], nn.Module] = True,
    tap_channels: int | None = None,
    tap_stride: int | None = None,
) -> nn.Module | None:
    """The module that maps a residual's shortcut onto the main branch; None: add it as it is
    (or, for "none", not at all).

    Whether it maps depends on the block input's channels and the main branch's stride; a
    projection that reads a project_from tap takes the tap's channels and stride. ``norm``:
    batchnorm after a projection (True), none (False), or a function making it for a channel
    count (``lambda c: nn.GroupNorm(32, c)``).
    """
    if kind not in SHORTCUT_KINDS:
        raise ValueError(f"unknown shortcut kind {kind!r}; expected one of {SHORTCUT_KINDS}")
    changes = stride != 1 or in_channels != out_channels
    if kind == "none" or (kind != "projection_all" and not changes):
        return None
    if tap_channels is not None and tap_stride is not None:
        in_channels, stride = tap_channels, tap_stride
    if kind == "identity":
        raise ValueError(
            f"an identity shortcut cannot map {in_channels} channels at stride {stride} onto {out_channels}"
        )
    if kind == "zero_pad":
        if out_channels < in_channels:
            raise ValueError(f"a zero_pad shortcut cannot reduce {in_channels} channels to {out_channels}")
        return ZeroPadShortcut(stride, out_channels - in_channels)
    layers: list[nn.Module] = []
    if kind == "avgpool_projection":
        # ResNet-D: pool first, so that the 1x1 conv sees every input position
        layers.append(
            nn.AvgPool2d(stride, stride, ceil_mode=True, count_include_pad=False) if stride > 1 else nn.Identity()
        )
        stride = 1
    layers.append(nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False))
    if norm is True:
        layers.append(nn.BatchNorm2d(out_channels))
    elif norm:
        layers.append(norm(out_channels))
    return nn.Sequential(*layers)
