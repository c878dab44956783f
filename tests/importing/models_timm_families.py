"""ConvNeXt, RegNet and MobileNetV3 written as timm lays them out (our own code, never timm's):
a BatchNorm2d subclass that runs its ``drop`` and ``act`` children (timm's BatchNormAct2d, so
weights keep batchnorm's keys), ConvNormAct with ``conv``/``bn`` children, a LayerNorm2d that
permutes, layer scale as an ``nn.Parameter`` named ``gamma``, nn.Identity wherever a layer is
switched off, RegNet stages that add their blocks as b1, b2, ... and loop over their children,
and heads whose forward takes ``pre_logits=False``."""

import torch
import torch.nn.functional as F
from torch import nn

from tests.importing.models_timm import SEModule


class BatchNormAct2d(nn.BatchNorm2d):
    def __init__(self, num_features, apply_act=True, act_layer=nn.ReLU):
        super().__init__(num_features)
        self.drop = nn.Identity()
        self.act = act_layer() if apply_act else nn.Identity()

    def forward(self, x):
        if self.training:
            self.num_batches_tracked.add_(1)
        x = F.batch_norm(
            x, self.running_mean, self.running_var, self.weight, self.bias, self.training, self.momentum, self.eps
        )
        return self.act(self.drop(x))


class ConvNormAct(nn.Module):
    def __init__(self, cin, cout, k=1, stride=1, groups=1, apply_act=True, act_layer=nn.ReLU):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False)
        self.bn = BatchNormAct2d(cout, apply_act=apply_act, act_layer=act_layer)
        self.aa = None  # anti-aliasing, off

    def forward(self, x):
        x = self.bn(self.conv(x))
        aa = getattr(self, "aa", None)
        if aa is not None:
            x = aa(x)
        return x


class SelectAdaptivePool2d(nn.Module):
    def __init__(self, flatten=False):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten(1) if flatten else nn.Identity()

    def forward(self, x):
        return self.flatten(self.pool(x))


class GELU(nn.Module):
    def __init__(self, inplace=False):
        super().__init__()

    def forward(self, x):
        return F.gelu(x)


class Sigmoid(nn.Module):
    def __init__(self, inplace=False):
        super().__init__()
        self.inplace = inplace

    def forward(self, x):
        return x.sigmoid_() if self.inplace else x.sigmoid()


class ClassifierHead(nn.Module):
    def __init__(self, cin, num_classes):
        super().__init__()
        self.global_pool = SelectAdaptivePool2d(flatten=True)
        self.drop = nn.Dropout(0.0)
        self.fc = nn.Linear(cin, num_classes)
        self.flatten = nn.Identity()

    def forward(self, x, pre_logits: bool = False):
        x = self.drop(self.global_pool(x))
        if pre_logits:
            return self.flatten(x)
        return self.flatten(self.fc(x))


# --- RegNet ---------------------------------------------------------------------------------


class RegBottleneck(nn.Module):
    def __init__(self, cin, cout, stride=1, group_size=8, se_ratio=0.0):
        super().__init__()
        self.conv1 = ConvNormAct(cin, cout)
        self.conv2 = ConvNormAct(cout, cout, 3, stride, groups=cout // group_size)
        self.se = SEModule(cout, round(cin * se_ratio)) if se_ratio else nn.Identity()
        if se_ratio:
            self.se.gate = Sigmoid()  # timm's own activation class, as create_act_layer("sigmoid") gives
        self.conv3 = ConvNormAct(cout, cout, apply_act=False)
        self.act3 = nn.ReLU()
        if cin != cout or stride != 1:
            self.downsample = ConvNormAct(cin, cout, 1, stride, apply_act=False)
        else:
            self.downsample = nn.Identity()
        self.drop_path = nn.Identity()

    def forward(self, x):
        shortcut = x
        x = self.conv1(x)
        x = self.conv2(x)
        x = self.se(x)
        x = self.conv3(x)
        if self.downsample is not None:
            x = self.drop_path(x) + self.downsample(shortcut)
        return self.act3(x)


class RegStage(nn.Module):
    def __init__(self, depth, cin, cout, stride, **kwargs):
        super().__init__()
        self.grad_checkpointing = False
        for i in range(depth):
            self.add_module(
                f"b{i + 1}", RegBottleneck(cin if i == 0 else cout, cout, stride if i == 0 else 1, **kwargs)
            )

    def forward(self, x):
        if self.grad_checkpointing and not torch.jit.is_scripting():
            raise NotImplementedError("checkpointing is not part of this test model")
        for block in self.children():
            x = block(x)
        return x


class RegNet(nn.Module):
    def __init__(self, depths=(1, 2, 2, 1), widths=(16, 32, 48, 64), se_ratio=0.0, num_classes=10):
        super().__init__()
        self.stem = ConvNormAct(3, 16, 3, 2)
        cin = 16
        for i, (d, w) in enumerate(zip(depths, widths, strict=True)):
            self.add_module(f"s{i + 1}", RegStage(d, cin, w, 2, se_ratio=se_ratio))
            cin = w
        self.final_conv = nn.Identity()
        self.head = ClassifierHead(cin, num_classes)

    def forward_features(self, x):
        x = self.stem(x)
        x = self.s4(self.s3(self.s2(self.s1(x))))
        return self.final_conv(x)

    def forward(self, x):
        return self.head(self.forward_features(x))


# --- ConvNeXt (conv_mlp: 1x1 convs on the map, as timm's atto ... nano) --------------------


class LayerNorm2d(nn.LayerNorm):
    def forward(self, x):
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


class Mlp(nn.Module):
    def __init__(self, cin, hidden):
        super().__init__()
        self.fc1 = nn.Conv2d(cin, hidden, 1)
        self.act = GELU()  # timm's create_act_layer("gelu")
        self.drop1 = nn.Dropout(0.0)
        self.norm = nn.Identity()
        self.fc2 = nn.Conv2d(hidden, cin, 1)
        self.drop2 = nn.Dropout(0.0)

    def forward(self, x):
        x = self.drop1(self.act(self.fc1(x)))
        return self.drop2(self.fc2(self.norm(x)))


class ConvNeXtBlock(nn.Module):
    def __init__(self, dim, ls_init_value=1e-6):
        super().__init__()
        self.use_conv_mlp = True
        self.conv_dw = nn.Conv2d(dim, dim, 7, padding=3, groups=dim)
        self.norm = LayerNorm2d(dim, eps=1e-6)
        self.mlp = Mlp(dim, 4 * dim)
        self.gamma = nn.Parameter(ls_init_value * torch.ones(dim))
        self.shortcut = nn.Identity()
        self.drop_path = nn.Identity()

    def forward(self, x):
        shortcut = x
        x = self.conv_dw(x)
        if self.use_conv_mlp:
            x = self.mlp(self.norm(x))
        else:
            raise NotImplementedError("the channels-last MLP is not part of this test model")
        if self.gamma is not None:
            x = x.mul(self.gamma.reshape(1, -1, 1, 1))
        return self.drop_path(x) + self.shortcut(shortcut)


class ConvNeXtStage(nn.Module):
    def __init__(self, cin, cout, depth, stride):
        super().__init__()
        self.grad_checkpointing = False
        if cin != cout or stride > 1:
            self.downsample = nn.Sequential(LayerNorm2d(cin, eps=1e-6), nn.Conv2d(cin, cout, 2, stride))
        else:
            self.downsample = nn.Identity()
        self.blocks = nn.Sequential(*[ConvNeXtBlock(cout) for _ in range(depth)])

    def forward(self, x):
        x = self.downsample(x)
        return self.blocks(x)


class NormMlpClassifierHead(nn.Module):
    def __init__(self, cin, num_classes):
        super().__init__()
        self.global_pool = SelectAdaptivePool2d()
        self.norm = LayerNorm2d(cin, eps=1e-6)
        self.flatten = nn.Flatten(1)
        self.pre_logits = nn.Identity()
        self.drop = nn.Dropout(0.0)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x, pre_logits: bool = False):
        x = self.flatten(self.norm(self.global_pool(x)))
        x = self.drop(self.pre_logits(x))
        return x if pre_logits else self.fc(x)


class ConvNeXt(nn.Module):
    def __init__(self, depths=(2, 1, 2, 1), dims=(16, 24, 32, 40), num_classes=10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, dims[0], 4, 4), LayerNorm2d(dims[0], eps=1e-6))
        stages, cin = [], dims[0]
        for i, (d, w) in enumerate(zip(depths, dims, strict=True)):
            stages.append(ConvNeXtStage(cin, w, d, 1 if i == 0 else 2))
            cin = w
        self.stages = nn.Sequential(*stages)
        self.norm_pre = nn.Identity()
        self.head = NormMlpClassifierHead(cin, num_classes)
        for block in self.modules():  # layer scale and norms away from their initial values
            if isinstance(block, ConvNeXtBlock):
                nn.init.uniform_(block.gamma, 0.5, 1.5)

    def forward(self, x):
        x = self.norm_pre(self.stages(self.stem(x)))
        return self.head(x)


# --- MobileNetV3 ------------------------------------------------------------------------------


class SqueezeExcite(nn.Module):
    def __init__(self, chs, rd):
        super().__init__()
        self.conv_reduce = nn.Conv2d(chs, rd, 1, bias=True)
        self.act1 = nn.ReLU(inplace=True)
        self.conv_expand = nn.Conv2d(rd, chs, 1, bias=True)
        self.gate = nn.Hardsigmoid()

    def forward(self, x):
        x_se = x.mean((2, 3), keepdim=True)
        x_se = self.conv_expand(self.act1(self.conv_reduce(x_se)))
        return x * self.gate(x_se)


class DepthwiseSeparableConv(nn.Module):
    def __init__(self, cin, cout, k=3, stride=1, act=nn.ReLU, se=False):
        super().__init__()
        self.has_skip = stride == 1 and cin == cout
        self.conv_dw = nn.Conv2d(cin, cin, k, stride, k // 2, groups=cin, bias=False)
        self.bn1 = BatchNormAct2d(cin, act_layer=act)
        self.aa = nn.Identity()
        self.se = SqueezeExcite(cin, max(8, cin // 4)) if se else nn.Identity()
        self.conv_pw = nn.Conv2d(cin, cout, 1, bias=False)
        self.bn2 = BatchNormAct2d(cout, apply_act=False)
        self.drop_path = nn.Identity()

    def forward(self, x):
        shortcut = x
        x = self.aa(self.bn1(self.conv_dw(x)))
        x = self.bn2(self.conv_pw(self.se(x)))
        if self.has_skip:
            x = self.drop_path(x) + shortcut
        return x


class InvertedResidual(nn.Module):
    def __init__(self, cin, cout, k=3, stride=1, expand=3.0, act=nn.ReLU, se=False):
        super().__init__()
        mid = int(cin * expand)
        self.has_skip = stride == 1 and cin == cout
        self.conv_pw = nn.Conv2d(cin, mid, 1, bias=False)
        self.bn1 = BatchNormAct2d(mid, act_layer=act)
        self.conv_dw = nn.Conv2d(mid, mid, k, stride, k // 2, groups=mid, bias=False)
        self.bn2 = BatchNormAct2d(mid, act_layer=act)
        self.aa = nn.Identity()
        self.se = SqueezeExcite(mid, max(8, mid // 4)) if se else nn.Identity()
        self.conv_pwl = nn.Conv2d(mid, cout, 1, bias=False)
        self.bn3 = BatchNormAct2d(cout, apply_act=False)
        self.drop_path = nn.Identity()

    def forward(self, x):
        shortcut = x
        x = self.bn1(self.conv_pw(x))
        x = self.aa(self.bn2(self.conv_dw(x)))
        x = self.se(x)
        x = self.bn3(self.conv_pwl(x))
        if self.has_skip:
            x = self.drop_path(x) + shortcut
        return x


class ConvBnAct(nn.Module):
    def __init__(self, cin, cout, act=nn.Hardswish):
        super().__init__()
        self.has_skip = False
        self.conv = nn.Conv2d(cin, cout, 1, bias=False)
        self.bn1 = BatchNormAct2d(cout, act_layer=act)
        self.aa = nn.Identity()
        self.drop_path = nn.Identity()

    def forward(self, x):
        shortcut = x
        x = self.aa(self.bn1(self.conv(x)))
        if self.has_skip:
            x = self.drop_path(x) + shortcut
        return x


# (kernel, expansion, width, SE, hard-swish, stride) per block, stage by stage: MobileNetV3-Large's
# pattern at a small width (ReLU early, hard-swish later, SE in some stages only)
_STAGES = (
    ((3, 4.0, 16, False, False, 2), (3, 3.0, 16, False, False, 1)),
    ((5, 3.0, 24, True, False, 2), (5, 3.0, 24, True, False, 1)),
    ((3, 6.0, 32, False, True, 2), (3, 2.5, 32, False, True, 1), (3, 2.3, 32, False, True, 1)),
    ((5, 6.0, 40, True, True, 1), (5, 6.0, 40, True, True, 1)),
)


class MobileNetV3(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.conv_stem = nn.Conv2d(3, 16, 3, 2, 1, bias=False)
        self.bn1 = BatchNormAct2d(16, act_layer=nn.Hardswish)
        stages, cin = [nn.Sequential(DepthwiseSeparableConv(16, 16))], 16
        for stage in _STAGES:
            blocks = []
            for k, e, c, se, hs, s in stage:
                act = nn.Hardswish if hs else nn.ReLU
                blocks.append(InvertedResidual(cin, c, k, s, e, act, se))
                cin = c
            stages.append(nn.Sequential(*blocks))
        stages.append(nn.Sequential(ConvBnAct(cin, 96)))
        self.blocks = nn.Sequential(*stages)
        self.global_pool = SelectAdaptivePool2d()
        self.conv_head = nn.Conv2d(96, 128, 1, bias=True)
        self.norm_head = nn.Identity()
        self.act2 = nn.Hardswish()
        self.flatten = nn.Flatten(1)
        self.classifier = nn.Linear(128, num_classes)
        self.drop_rate = 0.0

    def forward_head(self, x, pre_logits: bool = False):
        x = self.global_pool(x)
        x = self.act2(self.norm_head(self.conv_head(x)))
        x = self.flatten(x)
        if self.drop_rate > 0.0:
            x = F.dropout(x, p=self.drop_rate, training=self.training)
        return x if pre_logits else self.classifier(x)

    def forward(self, x):
        x = self.blocks(self.bn1(self.conv_stem(x)))
        return self.forward_head(x)


# --- ConvNeXt without conv_mlp (timm's tiny and up): a channels-last stretch in each block -------


class LayerNorm(nn.LayerNorm):
    def forward(self, x):
        return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)


class LinearMlp(Mlp):
    def __init__(self, cin, hidden):
        super().__init__(cin, hidden)
        self.fc1 = nn.Linear(cin, hidden)
        self.fc2 = nn.Linear(hidden, cin)


class ChannelsLastBlock(ConvNeXtBlock):
    def __init__(self, dim, ls_init_value=1e-6):
        super().__init__(dim, ls_init_value)
        self.use_conv_mlp = False
        self.norm = LayerNorm(dim, eps=1e-6)
        self.mlp = LinearMlp(dim, 4 * dim)

    def forward(self, x):
        shortcut = x
        x = self.conv_dw(x)
        x = x.permute(0, 2, 3, 1)
        x = self.mlp(self.norm(x))
        x = x.permute(0, 3, 1, 2)
        x = x.mul(self.gamma.reshape(1, -1, 1, 1))
        return self.drop_path(x) + self.shortcut(shortcut)


class ConvNeXtTiny(ConvNeXt):
    def __init__(self, depths=(1, 1, 2, 1), dims=(16, 24, 32, 40), num_classes=10):
        super().__init__(depths, dims, num_classes)
        for stage in self.stages:
            stage.blocks = nn.Sequential(*[ChannelsLastBlock(b.gamma.numel()) for b in stage.blocks])
        for block in self.modules():
            if isinstance(block, ConvNeXtBlock):
                nn.init.uniform_(block.gamma, 0.5, 1.5)
