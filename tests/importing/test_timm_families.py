"""ConvNeXt, RegNet and MobileNetV3 written as timm writes them (tests/importing/models_timm_families)
import and rebuild exactly: a BatchNorm2d that runs its activation, ConvNormAct's conv/bn,
LayerNorm2d, layer scale, nn.Identity for a switched-off layer, stages of b1, b2, ... that loop
over their children, a class whose instances hold an SE module or another activation in some
places only, and heads that take ``pre_logits``."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from resdsl import import_model
from resdsl.diagnostics import ResdslError
from tests.importing import models_timm_families as timm_like
from tests.importing.roundtrip import import_and_check

SMALL = (3, 32, 32)


def test_regnet_stages_of_b1_b2_with_convnormact_shortcuts() -> None:
    source = import_and_check(timm_like.RegNet(), SMALL)
    assert 'prefix="b", start=1' in source and 'step_names=["conv", "bn"]' in source
    # conv3's ConvNormAct has no activation: a block of its own beside conv1's and conv2's
    assert "block conv_norm_act(" in source and "block conv_norm_act_2(" in source


@pytest.mark.slow
def test_regnety_squeeze_excitation_in_every_block() -> None:
    source = import_and_check(timm_like.RegNet(se_ratio=0.25), SMALL)
    assert "se = gate(se_module(" in source


@pytest.mark.slow
def test_convnext_layer_scale_layernorm2d_and_a_first_stage_without_downsample() -> None:
    source = import_and_check(timm_like.ConvNeXt(), SMALL)
    assert "gamma = layer_scale()" in source and "layernorm(eps=1e-06)" in source
    assert "if has_downsample else identity" in source and "blocks = stage(" in source


@pytest.mark.slow
def test_mobilenetv3_blocks_with_se_or_hard_swish_in_some_stages_only() -> None:
    source = import_and_check(timm_like.MobileNetV3(), SMALL)
    assert "if has_se else identity" in source and "hardswish" in source


@pytest.mark.slow
def test_convnext_channels_last_blocks_become_layernorm_and_pointwise_linear() -> None:
    source = import_and_check(timm_like.ConvNeXtTiny(), SMALL)
    assert "fc1 = pointwise_linear(planes)" in source and "norm = layernorm(eps=1e-06)" in source


class _PoolsChannelsLast(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x.permute(0, 2, 3, 1)
        y = self.fc(y).mean((2, 3), keepdim=True)  # over W and C here, not over the map
        return y.permute(0, 3, 1, 2)


class _Holds(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1)
        self.body = _PoolsChannelsLast()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(self.conv(x))


def test_a_pool_on_a_channels_last_map_is_refused_naming_the_module() -> None:
    with pytest.raises(ResdslError) as info:
        import_model(_Holds(), "holds", (3, 8, 8))
    (d,) = info.value.diagnostics
    assert d.code == "E904" and "`body`" in d.message and "channels-last" in d.message


class GroupNorm(nn.GroupNorm):
    """timm's GroupNorm (layers/norm.py): calls F.group_norm itself, with timm's num_channels first."""

    def __init__(self, num_channels: int, num_groups: int = 32, eps: float = 1e-5) -> None:
        super().__init__(num_groups, num_channels, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.group_norm(x, self.num_groups, self.weight, self.bias, self.eps)


class GroupNormBlock(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn1 = GroupNorm(c, 4)
        self.act1 = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act1(self.bn1(self.conv1(x)) + x)


class GroupNormNet(nn.Module):
    """resnet50_gn's way: timm's GroupNorm where a ResNet has its batch norms."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, padding=1, bias=False)
        self.bn1 = GroupNorm(16, 4, eps=1e-6)
        self.act1 = nn.ReLU(inplace=True)
        self.layer1 = nn.Sequential(GroupNormBlock(16), GroupNormBlock(16))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer1(self.act1(self.bn1(self.conv1(x))))
        return self.fc(torch.flatten(self.pool(x), 1))


def test_a_groupnorm_subclass_that_calls_f_group_norm_is_groupnorm() -> None:
    source = import_and_check(GroupNormNet(), SMALL)
    assert "bn1 = groupnorm(groups=4, eps=1e-06)" in source and "bn1 = groupnorm(groups=4)" in source
