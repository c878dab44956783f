"""MobileNetV2, RegNet and EfficientNet written as torchvision writes them
(tests/importing/models_tv_families): a ``features`` nn.Sequential that mixes groups and blocks
becomes one numbered ``sequential(...)``, groups nest in a block's group, stages keep blocks
named ``block1-0``, and a gate inside a Sequential is refused with E910."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from resdsl import import_model
from resdsl.diagnostics import ResdslError
from tests.importing import models_tv_families as tv_like
from tests.importing.roundtrip import import_and_check

SMALL = (3, 32, 32)


def test_mobilenetv2_features_mix_groups_and_two_forms_of_inverted_residual() -> None:
    source = import_and_check(tv_like.MobileNetV2(), SMALL)
    assert "features = sequential(\n        sequential(conv(8, k=3, s=2, p=1), batchnorm, relu6),\n" in source
    # the first block (expand 1) lacks the expanding group: a block of its own
    assert "block inverted_residual()" in source and "block inverted_residual_2(" in source
    assert "conv = sequential(sequential(conv(planes, k=1), batchnorm, relu6), sequential(" in source
    assert "residual(identity_if_same)" in source


@pytest.mark.slow
def test_regnet_stages_keep_hyphenated_block_names_and_the_smaller_module_is_the_shortcut() -> None:
    source = import_and_check(tv_like.RegNet(), SMALL)
    assert 'prefix="block1-", start=0' in source and 'prefix="block2-", start=0' in source
    assert 'residual(projection, name="proj")' in source


def test_a_gate_inside_a_blocks_sequential_is_e910() -> None:
    with pytest.raises(ResdslError) as info:
        import_model(tv_like.EfficientNet(), "e", SMALL)
    d = info.value.diagnostics[0]
    assert d.code == "E910" and "`features.1.0.layers.1`" in d.message and "SqueezeExcitation" in str(info.value)


def test_a_shortcut_registered_before_its_branch_is_e911() -> None:
    """torchvision's RegNet registers ``proj`` before ``f``: a spec's state_dict would list them
    the other way round."""
    with pytest.raises(ResdslError) as info:
        import_model(tv_like.RegNet(proj_first=True), "r", SMALL)
    d = info.value.diagnostics[0]
    assert d.code == "E911" and "`trunk_output.block1.block1-0.proj`" in d.message and "`f`" in d.message


class _Scaled(nn.Module):
    """A block scaling its branch by an own parameter of ``shape`` (torchvision's CNBlock: (C, 1, 1))."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        super().__init__()
        self.layer_scale = nn.Parameter(torch.full(shape, 0.5))
        self.conv = nn.Conv2d(8, 8, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer_scale * self.conv(x) + x


class _ScaledNet(nn.Module):
    def __init__(self, shape: tuple[int, ...]) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.layer1 = nn.Sequential(_Scaled(shape), _Scaled(shape))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer1(self.stem(x))


def test_a_layer_scale_of_shape_c_1_1_is_layer_scale_of_dims_3() -> None:
    source = import_and_check(_ScaledNet((8, 1, 1)), SMALL)
    assert "layer_scale = layer_scale(init=0.5, dims=3)" in source


def test_a_product_by_a_parameter_of_another_shape_is_e903_naming_the_shape() -> None:
    with pytest.raises(ResdslError) as info:
        import_model(_ScaledNet((1, 8, 1, 1)), "s", SMALL)
    d = info.value.diagnostics[0]
    assert d.code == "E903" and "`layer_scale`, a parameter of shape (1, 8, 1, 1)" in d.message


def test_convnext_permute_modules_in_a_group_c_1_1_layer_scale_and_stochastic_depth() -> None:
    source = import_and_check(tv_like.ConvNeXt(), SMALL)
    assert "branch = sequential(conv(planes, k=7, p=3, groups=planes, bias=true), identity(), layernorm(" in source
    assert "pointwise_linear(planes * 4), gelu, pointwise_linear(planes), identity())" in source
    assert "layer_scale = layer_scale(dims=3)" in source and "stochastic_depth = drop_path(" in source
    assert "sequential(layernorm(eps=1e-06), conv(16, k=2, s=2, bias=true))" in source


def test_a_layer_named_block_keeps_its_name() -> None:
    """torchvision's CNBlock holds ``self.block``: ``block`` is a keyword only where a definition
    starts, so inside a body it names the layer and the keys stay ``features.1.0.block.0.weight``."""
    source = import_and_check(tv_like.ConvNeXt(attr="block"), SMALL)
    assert "    block = sequential(conv(planes, k=7, p=3, groups=planes, bias=true), identity()," in source


class _InputLayer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.input = nn.Conv2d(3, 8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.input(x)


def test_a_network_layer_named_with_a_reserved_word_is_e912() -> None:
    with pytest.raises(ResdslError) as info:
        import_model(_InputLayer(), "n", SMALL)
    assert info.value.diagnostics[0].code == "E912" and "`input`" in info.value.diagnostics[0].message
