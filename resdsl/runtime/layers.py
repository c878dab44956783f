"""Layers that ``torch.nn`` lacks, which ops of the table build (``Ctor(..., runtime=True)``).

``build_model`` instantiates these classes; the code generator copies the source of each class
a network uses into its generated module, so both run the same code. Each class is
self-contained (it needs only the imports below), and nothing here imports the rest of resdsl.

``ZeroPadShortcut`` (the module of the ``pad_channels`` op, option A's shortcut) is defined in
:mod:`resdsl.runtime.shortcuts`, in the part generated files copy with ``make_shortcut``, and
only named here, where ``Ctor(runtime=True)`` classes are looked up: one definition.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from resdsl.runtime.shortcuts import ZeroPadShortcut

__all__ = [
    "Attention",
    "DropPath",
    "FlattenLinear",
    "LayerNorm2d",
    "PatchEmbed",
    "PointwiseLinear",
    "RadixSoftmax",
    "RadixSum",
    "TokenPool",
    "ZeroPadShortcut",
]


class FlattenLinear(nn.Linear):
    """A linear layer that flattens a C x H x W input first (in a sequential group, where no
    forward step can); its state_dict is nn.Linear's."""

    def forward(self, input: Tensor) -> Tensor:
        return F.linear(input.flatten(1), self.weight, self.bias)  # not super(): TorchScript has none


class PointwiseLinear(nn.Linear):
    """A linear layer at every position of an N x C x H x W map, over the channels (timm's
    channels-last MLPs): the map is permuted channels-last, mapped and permuted back; weights
    are nn.Linear's ([out, in])."""

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x.permute(0, 2, 3, 1), self.weight, self.bias).permute(0, 3, 1, 2)


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of an N x C x H x W map at every position (timm's LayerNorm2d):
    the map is normalised channels-last and permuted back; weights are nn.LayerNorm's."""

    def forward(self, x: Tensor) -> Tensor:
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


class DropPath(nn.Module):
    """Stochastic depth (timm's DropPath): in training each sample's branch is zeroed with
    probability ``drop_prob`` and the kept ones scaled by ``1 / (1 - drop_prob)``
    (``scale_by_keep``); in eval mode, and with ``drop_prob == 0``, the input passes unchanged."""

    def __init__(self, drop_prob: float = 0.0, scale_by_keep: bool = True) -> None:
        super().__init__()
        self.drop_prob = drop_prob  # timm's attribute name, so code that reads or schedules it works
        self.scale_by_keep = scale_by_keep

    def forward(self, x: Tensor) -> Tensor:
        if self.drop_prob == 0.0 or not self.training:
            return x
        keep = 1.0 - self.drop_prob
        shape = (x.shape[0],) + (1,) * (x.ndim - 1)  # one draw per sample, broadcast over the rest
        mask = x.new_empty(shape).bernoulli_(keep)
        if keep > 0.0 and self.scale_by_keep:
            mask.div_(keep)
        return x * mask

    def extra_repr(self) -> str:
        return f"drop_prob={self.drop_prob}"


class RadixSum(nn.Module):
    """The sum of a map's ``radix`` splits (ResNeSt's split attention): an N x (R*C) x H x W map
    read as R maps of C channels, one after another, added up to N x C x H x W."""

    def __init__(self, radix: int) -> None:
        super().__init__()
        self.radix = radix

    def forward(self, x: Tensor) -> Tensor:
        return x.unflatten(1, (self.radix, -1)).sum(1)

    def extra_repr(self) -> str:
        return f"radix={self.radix}"


class RadixSoftmax(nn.Module):
    """A softmax over the radix splits of each cardinal group (timm's RadixSoftmax): channels
    read group-major (groups, radix, rest), the softmax taken over the radix and the result
    written radix-major (radix, groups, rest), as the split attention's weights are laid out; a
    sigmoid where the radix is 1."""

    def __init__(self, radix: int, groups: int = 1) -> None:
        super().__init__()
        self.radix = radix
        self.groups = groups

    def forward(self, x: Tensor) -> Tensor:
        if self.radix == 1:
            return torch.sigmoid(x)
        y = x.reshape(x.shape[0], self.groups, self.radix, -1).transpose(1, 2)
        return y.softmax(1).reshape(x.shape)

    def extra_repr(self) -> str:
        return f"radix={self.radix}, groups={self.groups}"


class PatchEmbed(nn.Module):
    """An N x C x H x W map cut into patches, one token each (timm's PatchEmbed): a conv with
    kernel = stride = patch (``proj``), flattened to N x (H/patch * W/patch) x dim tokens."""

    def __init__(self, in_chans: int, embed_dim: int, patch_size: int, bias: bool = True) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_chans, embed_dim, patch_size, stride=patch_size, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class Attention(nn.Module):
    """Multi-head self-attention on N x T x C tokens (timm's Attention): one ``qkv`` linear,
    ``num_heads`` heads of C / num_heads channels, ``F.scaled_dot_product_attention`` (its scale
    1 / sqrt(head_dim)), the heads joined and projected by ``proj``."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True, proj_bias: bool = True) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim, bias=proj_bias)

    def forward(self, x: Tensor) -> Tensor:
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        x = F.scaled_dot_product_attention(q, k, v)
        return self.proj(x.transpose(1, 2).reshape(b, n, c))


class TokenPool(nn.Module):
    """N x T x C tokens to N x C features (timm's global_pool): the first, class token
    (``pool="token"``), or the mean of the tokens after the ``num_prefix_tokens`` class tokens."""

    def __init__(self, pool: str = "token", num_prefix_tokens: int = 1) -> None:
        super().__init__()
        self.pool = pool
        self.num_prefix_tokens = num_prefix_tokens

    def forward(self, x: Tensor) -> Tensor:
        if self.pool == "token":
            return x[:, 0]
        return x[:, self.num_prefix_tokens :].mean(dim=1)

    def extra_repr(self) -> str:
        return f"pool={self.pool!r}, num_prefix_tokens={self.num_prefix_tokens}"


_ = torch  # the copied classes may use torch.*; keep the import for them
