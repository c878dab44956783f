"""timm-style models written here (never timm itself): `act1`/`act2` modules, an SE module that
gates its own input (timm's SEModule: the mean of the map, fc1 conv, act, fc2 conv, sigmoid,
x * gate), a deep stem (conv1.0 ... conv1.6), ResNet-D's average-pool shortcut, and a
DenseNet-like model whose layers concatenate; the importer tests import them."""

import torch
from torch import nn


class SEModule(nn.Module):
    def __init__(self, channels, rd_channels):
        super().__init__()
        self.fc1 = nn.Conv2d(channels, rd_channels, 1, bias=True)
        self.bn = nn.Identity()
        self.act = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(rd_channels, channels, 1, bias=True)
        self.gate = nn.Sigmoid()

    def forward(self, x):
        x_se = x.mean((2, 3), keepdim=True)
        x_se = self.fc1(x_se)
        x_se = self.act(self.bn(x_se))
        x_se = self.fc2(x_se)
        return x * self.gate(x_se)


def downsample_avg(in_chs, out_chs, stride):
    """ResNet-D (timm's avg_down): average pool by the stride, then a stride-1 1x1 conv + bn."""
    pool = nn.AvgPool2d(2, stride, ceil_mode=True, count_include_pad=False) if stride > 1 else nn.Identity()
    return nn.Sequential(pool, nn.Conv2d(in_chs, out_chs, 1, bias=False), nn.BatchNorm2d(out_chs))


def downsample_conv(in_chs, out_chs, stride):
    return nn.Sequential(nn.Conv2d(in_chs, out_chs, 1, stride, bias=False), nn.BatchNorm2d(out_chs))


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes, planes, stride=1, downsample=None, se=False):
        super().__init__()
        outplanes = planes * self.expansion
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.act1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.act2 = nn.ReLU(inplace=True)
        self.conv3 = nn.Conv2d(planes, outplanes, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(outplanes)
        self.se = SEModule(outplanes, outplanes // 16) if se else None
        self.act3 = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        shortcut = x
        x = self.act1(self.bn1(self.conv1(x)))
        x = self.act2(self.bn2(self.conv2(x)))
        x = self.bn3(self.conv3(x))
        if self.se is not None:
            x = self.se(x)
        if self.downsample is not None:
            shortcut = self.downsample(shortcut)
        x += shortcut
        return self.act3(x)


class ResNet(nn.Module):
    """timm's layout: stem_type "deep" (three 3x3 convs as conv1.0 ... conv1.6), avg_down
    (ResNet-D shortcuts) and SE blocks are constructor choices."""

    def __init__(self, layers=(1, 1, 1, 1), num_classes=10, deep_stem=False, avg_down=False, se=False):
        super().__init__()
        if deep_stem:
            self.conv1 = nn.Sequential(
                nn.Conv2d(3, 32, 3, 2, 1, bias=False),
                nn.BatchNorm2d(32),
                nn.ReLU(inplace=True),
                nn.Conv2d(32, 32, 3, 1, 1, bias=False),
                nn.BatchNorm2d(32),
                nn.ReLU(inplace=True),
                nn.Conv2d(32, 64, 3, 1, 1, bias=False),
            )
        else:
            self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.act1 = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        inplanes, make_down = 64, downsample_avg if avg_down else downsample_conv
        for i, (planes, blocks) in enumerate(zip((64, 128, 256, 512), layers, strict=True)):
            stride = 1 if i == 0 else 2
            down = make_down(inplanes, planes * 4, stride) if stride != 1 or inplanes != planes * 4 else None
            stage = [Bottleneck(inplanes, planes, stride, down, se)]
            stage += [Bottleneck(planes * 4, planes, se=se) for _ in range(1, blocks)]
            inplanes = planes * 4
            self.add_module(f"layer{i + 1}", nn.Sequential(*stage))
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten(1)
        self.fc = nn.Linear(2048, num_classes)

    def forward(self, x):
        x = self.maxpool(self.act1(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(self.flatten(self.global_pool(x)))


class DenseLayer(nn.Module):
    def __init__(self, in_chs, growth, bn_size=4):
        super().__init__()
        self.norm1 = nn.BatchNorm2d(in_chs)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(in_chs, bn_size * growth, 1, bias=False)
        self.norm2 = nn.BatchNorm2d(bn_size * growth)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(bn_size * growth, growth, 3, 1, 1, bias=False)

    def forward(self, x):
        new = self.conv1(self.relu1(self.norm1(x)))
        new = self.conv2(self.relu2(self.norm2(new)))
        return torch.cat([x, new], 1)


def transition(in_chs, out_chs):
    return nn.Sequential(
        nn.BatchNorm2d(in_chs), nn.ReLU(inplace=True), nn.Conv2d(in_chs, out_chs, 1, bias=False), nn.AvgPool2d(2, 2)
    )


class DenseNet(nn.Module):
    """A small DenseNet-like net: its layers concatenate their input and 8 new channels."""

    def __init__(self, growth=8, blocks=(3, 2), num_classes=10):
        super().__init__()
        self.conv0 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        c = 16
        self.block1 = nn.Sequential(*[DenseLayer(c + i * growth, growth) for i in range(blocks[0])])
        c += blocks[0] * growth
        self.transition1 = transition(c, c // 2)
        c //= 2
        self.block2 = nn.Sequential(*[DenseLayer(c + i * growth, growth) for i in range(blocks[1])])
        c += blocks[1] * growth
        self.norm5 = nn.BatchNorm2d(c)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c, num_classes)

    def forward(self, x):
        x = self.block2(self.transition1(self.block1(self.conv0(x))))
        x = torch.relu(self.norm5(x))
        return self.classifier(torch.flatten(self.pool(x), 1))


class Widening(nn.Module):
    """A block whose width the constructor sets: a stage of them widens block by block."""

    def __init__(self, in_chs, out_chs):
        super().__init__()
        self.conv = nn.Conv2d(in_chs, out_chs, 3, 1, 1, bias=False)
        self.bn = nn.BatchNorm2d(out_chs)
        self.proj = nn.Sequential(nn.Conv2d(in_chs, out_chs, 1, bias=False), nn.BatchNorm2d(out_chs))

    def forward(self, x):
        return torch.relu(self.bn(self.conv(x)) + self.proj(x))


class Widen(nn.Module):
    """A stage whose widths grow by 8 at each block, and an addition in the network itself."""

    def __init__(self):
        super().__init__()
        self.mix = nn.Conv2d(3, 3, 3, 1, 1, bias=False)
        self.stem = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.stage = nn.Sequential(Widening(16, 24), Widening(24, 32), Widening(32, 40))
        self.head = nn.Linear(40, 3)

    def forward(self, x):
        x = self.mix(x) + x
        x = self.stem(x)
        return self.head(torch.flatten(self.stage(x).mean((2, 3), keepdim=True), 1))


class InvertedResidual(nn.Module):
    """timm's MobileNetV2 block: it adds its input only where the shape is kept (has_skip)."""

    def __init__(self, in_chs, out_chs, stride=1, expand=4):
        super().__init__()
        mid = in_chs * expand
        self.conv_pw = nn.Conv2d(in_chs, mid, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(mid)
        self.conv_dw = nn.Conv2d(mid, mid, 3, stride, 1, groups=mid, bias=False)
        self.bn2 = nn.BatchNorm2d(mid)
        self.act = nn.ReLU6(inplace=True)
        self.conv_pwl = nn.Conv2d(mid, out_chs, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_chs)
        self.has_skip = stride == 1 and in_chs == out_chs

    def forward(self, x):
        shortcut = x
        x = self.act(self.bn1(self.conv_pw(x)))
        x = self.act(self.bn2(self.conv_dw(x)))
        x = self.bn3(self.conv_pwl(x))
        if self.has_skip:
            x = x + shortcut
        return x


class MobileNet(nn.Module):
    """A group of stages (blocks.0.0, blocks.1.1), as timm's MobileNets and EfficientNets."""

    def __init__(self):
        super().__init__()
        self.conv_stem = nn.Conv2d(3, 16, 3, 2, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.blocks = nn.Sequential(
            nn.Sequential(InvertedResidual(16, 16)),
            nn.Sequential(InvertedResidual(16, 24, 2), InvertedResidual(24, 24), InvertedResidual(24, 24)),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(24, 10)

    def forward(self, x):
        x = self.blocks(torch.relu(self.bn1(self.conv_stem(x))))
        return self.classifier(torch.flatten(self.pool(x), 1))
