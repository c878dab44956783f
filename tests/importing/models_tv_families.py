"""Small models written the way torchvision writes MobileNetV2, RegNet and EfficientNet (our own
code, for the importer's tests): layers numbered in one ``features`` nn.Sequential that mixes a
conv-norm-activation group, blocks of two forms and a last group; a block whose ``conv`` is a
Sequential of such groups and layers; stages whose blocks are named ``block1-0``, ``block1-1``
and whose forward adds a projection module and a branch module; a squeeze-excitation module at
a position of a block's Sequential."""

from __future__ import annotations

import torch
from torch import nn


class ConvBNAct(nn.Sequential):
    """A conv, its batchnorm and an activation, numbered 0, 1, 2 (torchvision's Conv2dNormActivation)."""

    def __init__(self, cin: int, cout: int, k: int = 3, stride: int = 1, groups: int = 1, act: bool = True) -> None:
        layers: list[nn.Module] = [
            nn.Conv2d(cin, cout, k, stride, (k - 1) // 2, groups=groups, bias=False),
            nn.BatchNorm2d(cout),
        ]
        if act:
            layers.append(nn.ReLU6(inplace=True))
        super().__init__(*layers)


class InvertedResidual(nn.Module):
    """MobileNetV2's block: an expanding 1x1 group (not where expand is 1), a depthwise group, a
    linear 1x1 projection, all in ``self.conv``; the input added where the shapes agree."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = cin * expand
        self.use_res_connect = stride == 1 and cin == cout
        layers: list[nn.Module] = [ConvBNAct(cin, hidden, k=1)] if expand != 1 else []
        layers += [ConvBNAct(hidden, hidden, stride=stride, groups=hidden), nn.Conv2d(hidden, cout, 1, bias=False)]
        layers.append(nn.BatchNorm2d(cout))
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.use_res_connect:
            return x + self.conv(x)
        return self.conv(x)


class MobileNetV2(nn.Module):
    """A stem group, seven inverted residuals one by one, a last 1x1 group, all in ``features``."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        setting = [(1, 8, 1, 1), (4, 12, 2, 2), (4, 16, 2, 2), (4, 24, 2, 1)]  # t, c, n, s
        features: list[nn.Module] = [ConvBNAct(3, 8, stride=2)]
        cin = 8
        for t, c, n, s in setting:
            for i in range(n):
                features.append(InvertedResidual(cin, c, s if i == 0 else 1, t))
                cin = c
        features.append(ConvBNAct(cin, 64, k=1))
        self.features = nn.Sequential(*features)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(64, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        x = nn.functional.adaptive_avg_pool2d(x, (1, 1))
        return self.classifier(torch.flatten(x, 1))


class Transform(nn.Sequential):
    """RegNet's bottleneck transform: named children a, b, c."""

    def __init__(self, cin: int, cout: int, stride: int, groups: int) -> None:
        super().__init__()
        self.a = ConvBNAct(cin, cout, k=1)
        self.b = ConvBNAct(cout, cout, stride=stride, groups=groups)
        self.c = ConvBNAct(cout, cout, k=1, act=False)


class ResBottleneck(nn.Module):
    """``proj(x) + f(x)`` where the shape changes, ``x + f(x)`` elsewhere, then a ReLU. Unless
    ``proj_first`` (as torchvision does), ``f`` is registered before ``proj``: a spec makes the
    shortcut after its branch."""

    def __init__(self, cin: int, cout: int, stride: int, groups: int, proj_first: bool = False) -> None:
        super().__init__()
        if proj_first:
            self.proj: nn.Module | None = ConvBNAct(cin, cout, k=1, stride=stride, act=False)
        self.f = Transform(cin, cout, stride, groups)
        if not proj_first:
            self.proj = ConvBNAct(cin, cout, k=1, stride=stride, act=False) if cin != cout or stride != 1 else None
        self.activation = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.proj is not None:
            x = self.proj(x) + self.f(x)
        else:
            x = x + self.f(x)
        return self.activation(x)


class AnyStage(nn.Sequential):
    """A stage whose blocks are named ``block{i}-0``, ``block{i}-1`` ... (not identifiers)."""

    def __init__(self, cin: int, cout: int, stride: int, depth: int, groups: int, index: int, first: bool) -> None:
        super().__init__()
        for i in range(depth):
            block = ResBottleneck(cin if i == 0 else cout, cout, stride if i == 0 else 1, groups, first and i == 0)
            self.add_module(f"block{index}-{i}", block)


class RegNet(nn.Module):
    """A stem, ``trunk_output`` of stages block1, block2, an average pool and fc."""

    def __init__(self, num_classes: int = 10, proj_first: bool = False) -> None:
        super().__init__()
        self.stem = ConvBNAct(3, 8, stride=2)
        self.trunk_output = nn.Sequential()
        cin = 8
        for index, (cout, depth) in enumerate([(16, 2), (32, 3)], start=1):
            self.trunk_output.add_module(f"block{index}", AnyStage(cin, cout, 2, depth, 8, index, proj_first))
            cin = cout
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.trunk_output(self.stem(x))
        return self.fc(torch.flatten(self.avgpool(x), 1))


class SqueezeExcitation(nn.Module):
    """``scale * input`` of a pooled 1x1-conv branch (torchvision.ops.SqueezeExcitation)."""

    def __init__(self, c: int, squeeze: int) -> None:
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(c, squeeze, 1)
        self.fc2 = nn.Conv2d(squeeze, c, 1)
        self.activation = nn.SiLU()
        self.scale_activation = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.scale_activation(self.fc2(self.activation(self.fc1(self.avgpool(x)))))
        return scale * x


class MBConv(nn.Module):
    """EfficientNet's block: the squeeze-excitation module at ``layers.1`` (torchvision's
    ``block.1``: a layer named ``block`` is E912 first)."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(ConvBNAct(c, c, groups=c), SqueezeExcitation(c, 4), ConvBNAct(c, c, k=1, act=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x) + x


class EfficientNet(nn.Module):
    """A stem group and a stage of MBConv blocks in ``features``."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(ConvBNAct(3, 16, stride=2), nn.Sequential(MBConv(16), MBConv(16)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


class LayerNorm2d(nn.LayerNorm):
    """A LayerNorm over the channels of an N x C x H x W map (torchvision's convnext.LayerNorm2d)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 2, 3, 1)
        x = nn.functional.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


class Permute(nn.Module):
    """``torch.permute(x, dims)`` as a module (torchvision.ops.misc.Permute)."""

    def __init__(self, dims: list[int]) -> None:
        super().__init__()
        self.dims = dims

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.permute(x, self.dims)


class StochasticDepth(nn.Module):
    """Each sample's branch dropped with probability p in training, the kept ones scaled by
    1 / (1 - p) (torchvision.ops.StochasticDepth, "row" mode)."""

    def __init__(self, p: float, mode: str) -> None:
        super().__init__()
        self.p, self.mode = p, mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        survival = 1.0 - self.p
        noise = torch.empty([x.shape[0], 1, 1, 1], dtype=x.dtype, device=x.device).bernoulli_(survival)
        return x * noise.div_(survival)


class CNBlock(nn.Module):
    """ConvNeXt's block: a depthwise conv, then LayerNorm and two Linears on a channels-last map
    between Permute modules, all in one Sequential; a (C, 1, 1) layer scale; stochastic depth.
    torchvision names the Sequential ``block``; ``attr`` names it here."""

    def __init__(self, dim: int, p: float, attr: str = "branch") -> None:
        super().__init__()
        self.attr = attr
        branch = nn.Sequential(
            nn.Conv2d(dim, dim, kernel_size=7, padding=3, groups=dim, bias=True),
            Permute([0, 2, 3, 1]),
            nn.LayerNorm(dim, eps=1e-6),
            nn.Linear(dim, 4 * dim),
            nn.GELU(),
            nn.Linear(4 * dim, dim),
            Permute([0, 3, 1, 2]),
        )
        self.add_module(attr, branch)
        self.layer_scale = nn.Parameter(torch.ones(dim, 1, 1) * 1e-6)
        self.stochastic_depth = StochasticDepth(p, "row")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        result = self.layer_scale * getattr(self, self.attr)(x)
        result = self.stochastic_depth(result)
        result += x
        return result


class ConvNeXt(nn.Module):
    """``features``: a stem group (conv, LayerNorm2d), stages of CNBlock, a downsampling group
    (LayerNorm2d, conv) between them; a pool and a classifier group."""

    def __init__(self, dims: tuple[int, int] = (8, 16), depths: tuple[int, int] = (2, 2), attr: str = "branch") -> None:
        super().__init__()
        total, seen = sum(depths), 0
        layers: list[nn.Module] = [nn.Sequential(nn.Conv2d(3, dims[0], 4, 4), LayerNorm2d(dims[0], eps=1e-6))]
        for i, (dim, depth) in enumerate(zip(dims, depths, strict=True)):
            stage = []
            for _ in range(depth):
                stage.append(CNBlock(dim, 0.1 * seen / (total - 1.0), attr))
                seen += 1
            layers.append(nn.Sequential(*stage))
            if i + 1 < len(dims):
                layers.append(nn.Sequential(LayerNorm2d(dim, eps=1e-6), nn.Conv2d(dim, dims[i + 1], 2, 2)))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(LayerNorm2d(dims[-1], eps=1e-6), nn.Flatten(1), nn.Linear(dims[-1], 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.avgpool(self.features(x)))
