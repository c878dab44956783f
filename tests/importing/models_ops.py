"""Models written here the way timm and torchvision write Res2Net, ResNeSt and DenseNet (never
their code): timm's Bottle2neck (torch.split into ``scale`` chunks, a running sum, ModuleLists
``convs``/``bns``, the last chunk pooled in a first block), timm's SplitAttn (a reshape into the
radix splits, their sum, a RadixSoftmax module, the weighted sum) and torchvision's DenseNet
(layers that take the list of all earlier features, an nn.ModuleDict block that appends, an
nn.Sequential transition, features as an OrderedDict nn.Sequential); the importer tests import
them."""

import math
from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from tests.importing import models_timm


class Bottle2neck(nn.Module):
    expansion = 4

    def __init__(self, inplanes, planes, stride=1, downsample=None, cardinality=1, base_width=26, scale=4):
        super().__init__()
        self.scale = scale
        self.is_first = stride > 1 or downsample is not None
        self.num_scales = max(1, scale - 1)
        width = math.floor(planes * (base_width / 64.0)) * cardinality
        self.width = width
        self.conv1 = nn.Conv2d(inplanes, width * scale, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width * scale)
        self.convs = nn.ModuleList(
            nn.Conv2d(width, width, 3, stride, padding=1, groups=cardinality, bias=False)
            for _ in range(self.num_scales)
        )
        self.bns = nn.ModuleList(nn.BatchNorm2d(width) for _ in range(self.num_scales))
        self.pool = nn.AvgPool2d(kernel_size=3, stride=stride, padding=1) if self.is_first else None
        self.conv3 = nn.Conv2d(width * scale, planes * 4, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        shortcut = x
        out = self.relu(self.bn1(self.conv1(x)))
        spx = torch.split(out, self.width, 1)
        spo = []
        sp = spx[0]
        for i, (conv, bn) in enumerate(zip(self.convs, self.bns, strict=True)):
            sp = spx[i] if i == 0 or self.is_first else sp + spx[i]
            sp = self.relu(bn(conv(sp)))
            spo.append(sp)
        if self.pool is not None:
            spo.append(self.pool(spx[-1]))
        else:
            spo.append(spx[-1])
        out = self.bn3(self.conv3(torch.cat(spo, 1)))
        if self.downsample is not None:
            shortcut = self.downsample(x)
        out += shortcut
        return self.relu(out)


class Bottle2neckOriginal(nn.Module):
    """The Res2Net authors' layout: ``stype`` "stage" in a stage's first block, the outputs
    concatenated one at a time (``out = torch.cat((out, sp), 1)``); ``chunk`` splits with
    ``x.chunk`` into ``scale`` parts instead of torch.split by the width."""

    expansion = 4

    def __init__(self, inplanes, planes, stride=1, downsample=None, base_width=26, scale=4, chunk=False):
        super().__init__()
        width = math.floor(planes * (base_width / 64.0))
        self.conv1 = nn.Conv2d(inplanes, width * scale, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width * scale)
        self.nums = scale - 1
        self.stype = "stage" if stride > 1 or downsample is not None else "normal"
        if self.stype == "stage":
            self.pool = nn.AvgPool2d(kernel_size=3, stride=stride, padding=1)
        self.convs = nn.ModuleList(
            [nn.Conv2d(width, width, kernel_size=3, stride=stride, padding=1, bias=False) for _ in range(self.nums)]
        )
        self.bns = nn.ModuleList([nn.BatchNorm2d(width) for _ in range(self.nums)])
        self.conv3 = nn.Conv2d(width * scale, planes * self.expansion, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.scale, self.width, self.chunk = scale, width, chunk

    def forward(self, x):
        residual = x
        out = self.relu(self.bn1(self.conv1(x)))
        spx = out.chunk(self.scale, 1) if self.chunk else torch.split(out, self.width, 1)
        sp = spx[0]
        for i in range(self.nums):
            sp = spx[i] if i == 0 or self.stype == "stage" else sp + spx[i]
            sp = self.relu(self.bns[i](self.convs[i](sp)))
            out = sp if i == 0 else torch.cat((out, sp), 1)
        if self.stype == "normal":
            out = torch.cat((out, spx[self.nums]), 1)
        else:
            out = torch.cat((out, self.pool(spx[self.nums])), 1)
        out = self.bn3(self.conv3(out))
        if self.downsample is not None:
            residual = self.downsample(x)
        out += residual
        return self.relu(out)


class SelectAdaptivePool2d(nn.Module):
    """timm's head pool: an adaptive average pool and a flatten, as two children."""

    def __init__(self):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten(1)

    def forward(self, x):
        return self.flatten(self.pool(x))


def _downsample(inplanes, outplanes, stride, avg):
    if not avg:
        return nn.Sequential(nn.Conv2d(inplanes, outplanes, 1, stride, bias=False), nn.BatchNorm2d(outplanes))
    pool = nn.AvgPool2d(2, stride, ceil_mode=True, count_include_pad=False) if stride > 1 else nn.Identity()
    return nn.Sequential(pool, nn.Conv2d(inplanes, outplanes, 1, bias=False), nn.BatchNorm2d(outplanes))


class TimmResNet(nn.Module):
    """timm's ResNet around a block class: make_blocks gives each stage's first block the stride
    and the downsample; the stem is a 7x7 conv, or (``deep``) three 3x3 convs."""

    def __init__(self, block, layers=(1, 2, 1, 1), num_classes=10, deep=False, avg_down=False, **block_args):
        super().__init__()
        if deep:
            self.conv1 = nn.Sequential(
                *(nn.Conv2d(3, 16, 3, 2, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU(inplace=True)),
                *(nn.Conv2d(16, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU(inplace=True)),
                nn.Conv2d(16, 32, 3, 1, 1, bias=False),
            )
            inplanes = 32
        else:
            self.conv1, inplanes = nn.Conv2d(3, 64, 7, 2, 3, bias=False), 64
        self.bn1 = nn.BatchNorm2d(inplanes)
        self.act1 = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        for i, (planes, count) in enumerate(zip((16, 32, 64, 128), layers, strict=True)):
            stride = 1 if i == 0 else 2
            down = None
            if stride != 1 or inplanes != planes * 4:
                down = _downsample(inplanes, planes * 4, stride, avg_down)
            stage = [block(inplanes, planes, stride, down, **block_args)]
            stage += [block(planes * 4, planes, **block_args) for _ in range(1, count)]
            inplanes = planes * 4
            self.add_module(f"layer{i + 1}", nn.Sequential(*stage))
        self.global_pool = SelectAdaptivePool2d()
        self.fc = nn.Linear(inplanes, num_classes)
        self.drop_rate = 0.0

    def forward_features(self, x):
        x = self.maxpool(self.act1(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def forward(self, x):
        x = self.global_pool(self.forward_features(x))
        if self.drop_rate:
            x = F.dropout(x, p=float(self.drop_rate), training=self.training)
        return self.fc(x)


def make_divisible(v, divisor=8, min_value=None, round_limit=0.9):
    min_value = min_value or divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < round_limit * v else new_v


class RadixSoftmax(nn.Module):
    def __init__(self, radix, cardinality):
        super().__init__()
        self.radix = radix
        self.cardinality = cardinality

    def forward(self, x):
        batch = x.size(0)
        if self.radix > 1:
            x = x.view(batch, self.cardinality, self.radix, -1).transpose(1, 2)
            x = F.softmax(x, dim=1)
            x = x.reshape(batch, -1)
        else:
            x = torch.sigmoid(x)
        return x


class SplitAttn(nn.Module):
    """timm's split attention: a grouped conv to radix splits, their sum pooled through fc1 and
    fc2 to one weight per split and channel, and the splits' sum weighted by them."""

    def __init__(self, in_channels, out_channels, stride=1, groups=1, radix=2, rd_ratio=0.25):
        super().__init__()
        self.radix = radix
        mid_chs = out_channels * radix
        attn_chs = make_divisible(in_channels * radix * rd_ratio, min_value=32, divisor=8)
        self.conv = nn.Conv2d(in_channels, mid_chs, 3, stride, 1, groups=groups * radix, bias=False)
        self.bn0 = nn.BatchNorm2d(mid_chs)
        self.drop = nn.Identity()
        self.act0 = nn.ReLU(inplace=True)
        self.fc1 = nn.Conv2d(out_channels, attn_chs, 1, groups=groups)
        self.bn1 = nn.BatchNorm2d(attn_chs)
        self.act1 = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(attn_chs, mid_chs, 1, groups=groups)
        self.rsoftmax = RadixSoftmax(radix, groups)

    def forward(self, x):
        x = self.act0(self.drop(self.bn0(self.conv(x))))
        B, RC, H, W = x.shape
        if self.radix > 1:
            x = x.reshape((B, self.radix, RC // self.radix, H, W))
            x_gap = x.sum(dim=1)
        else:
            x_gap = x
        x_gap = x_gap.mean((2, 3), keepdim=True)
        x_gap = self.act1(self.bn1(self.fc1(x_gap)))
        x_attn = self.fc2(x_gap)
        x_attn = self.rsoftmax(x_attn).view(B, -1, 1, 1)
        if self.radix > 1:
            out = (x * x_attn.reshape((B, self.radix, RC // self.radix, 1, 1))).sum(dim=1)
        else:
            out = x * x_attn
        return out.contiguous()


class ResNestBottleneck(nn.Module):
    """timm's ResNeSt bottleneck (avd, avd_last): the block that strides averages after its
    split attention instead of striding in it; ``avd_every`` pools in every block (stride 1
    where the block keeps the map), so that every instance has the same layers."""

    def __init__(self, inplanes, planes, stride=1, downsample=None, radix=2, avd_every=False):
        super().__init__()
        width = planes
        avd_stride = stride if stride > 1 or avd_every else 0
        self.radix = radix
        self.conv1 = nn.Conv2d(inplanes, width, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.act1 = nn.ReLU(inplace=True)
        self.avd_first = None
        self.conv2 = SplitAttn(width, width, radix=radix)
        self.bn2 = nn.Identity()
        self.drop_block = nn.Identity()
        self.act2 = nn.Identity()
        self.avd_last = nn.AvgPool2d(3, avd_stride, padding=1) if avd_stride > 0 else None
        self.conv3 = nn.Conv2d(width, planes * 4, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.act3 = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.drop_path = None

    def forward(self, x):
        shortcut = x
        out = self.act1(self.bn1(self.conv1(x)))
        if self.avd_first is not None:
            out = self.avd_first(out)
        out = self.act2(self.drop_block(self.bn2(self.conv2(out))))
        if self.avd_last is not None:
            out = self.avd_last(out)
        out = self.bn3(self.conv3(out))
        if self.downsample is not None:
            shortcut = self.downsample(x)
        out += shortcut
        return self.act3(out)


class _DenseLayer(nn.Module):
    def __init__(self, num_input_features, growth_rate, bn_size, drop_rate=0.0, memory_efficient=False):
        super().__init__()
        self.norm1 = nn.BatchNorm2d(num_input_features)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(num_input_features, bn_size * growth_rate, kernel_size=1, stride=1, bias=False)
        self.norm2 = nn.BatchNorm2d(bn_size * growth_rate)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(bn_size * growth_rate, growth_rate, kernel_size=3, stride=1, padding=1, bias=False)
        self.drop_rate = float(drop_rate)
        self.memory_efficient = memory_efficient

    def bn_function(self, inputs):
        concated_features = torch.cat(inputs, 1)
        return self.conv1(self.relu1(self.norm1(concated_features)))

    def forward(self, input):
        prev_features = [input] if isinstance(input, torch.Tensor) else input
        bottleneck_output = self.bn_function(prev_features)
        new_features = self.conv2(self.relu2(self.norm2(bottleneck_output)))
        if self.drop_rate > 0:
            new_features = F.dropout(new_features, p=self.drop_rate, training=self.training)
        return new_features


class _DenseBlock(nn.ModuleDict):
    def __init__(self, num_layers, num_input_features, bn_size, growth_rate):
        super().__init__()
        for i in range(num_layers):
            layer = _DenseLayer(num_input_features + i * growth_rate, growth_rate, bn_size)
            self.add_module(f"denselayer{i + 1}", layer)

    def forward(self, init_features):
        features = [init_features]
        for _name, layer in self.items():
            features.append(layer(features))
        return torch.cat(features, 1)


class _Transition(nn.Sequential):
    def __init__(self, num_input_features, num_output_features):
        super().__init__()
        self.norm = nn.BatchNorm2d(num_input_features)
        self.relu = nn.ReLU(inplace=True)
        self.conv = nn.Conv2d(num_input_features, num_output_features, kernel_size=1, stride=1, bias=False)
        self.pool = nn.AvgPool2d(kernel_size=2, stride=2)


class DenseNet(nn.Module):
    """torchvision's layout: features.conv0 ... features.norm5, then relu, pool, classifier."""

    def __init__(self, growth_rate=8, block_config=(2, 3, 2), num_init_features=16, bn_size=4, num_classes=10):
        super().__init__()
        self.features = nn.Sequential(
            OrderedDict(
                [
                    ("conv0", nn.Conv2d(3, num_init_features, kernel_size=7, stride=2, padding=3, bias=False)),
                    ("norm0", nn.BatchNorm2d(num_init_features)),
                    ("relu0", nn.ReLU(inplace=True)),
                    ("pool0", nn.MaxPool2d(kernel_size=3, stride=2, padding=1)),
                ]
            )
        )
        num_features = num_init_features
        for i, num_layers in enumerate(block_config):
            block = _DenseBlock(num_layers, num_features, bn_size, growth_rate)
            self.features.add_module(f"denseblock{i + 1}", block)
            num_features = num_features + num_layers * growth_rate
            if i != len(block_config) - 1:
                self.features.add_module(f"transition{i + 1}", _Transition(num_features, num_features // 2))
                num_features = num_features // 2
        self.features.add_module("norm5", nn.BatchNorm2d(num_features))
        self.classifier = nn.Linear(num_features, num_classes)

    def forward(self, x):
        out = F.relu(self.features(x), inplace=True)
        out = F.adaptive_avg_pool2d(out, (1, 1))
        return self.classifier(torch.flatten(out, 1))


class DenseBlocks(nn.Module):
    """Dense blocks in the network itself, one an nn.ModuleDict that appends, one an
    nn.Sequential of layers named denselayer1 ... that concatenate their own input."""

    def __init__(self):
        super().__init__()
        self.conv0 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.denseblock1 = _DenseBlock(2, 16, 2, 8)
        self.transition1 = _Transition(32, 16)
        self.denseblock2 = nn.Sequential(
            OrderedDict((f"denselayer{i + 1}", models_timm.DenseLayer(16 + i * 8, 8, 2)) for i in range(3))
        )
        self.classifier = nn.Linear(40, 10)

    def forward(self, x):
        x = self.denseblock2(self.transition1(self.denseblock1(self.conv0(x))))
        return self.classifier(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))
