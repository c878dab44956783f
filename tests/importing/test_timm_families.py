"""ConvNeXt, RegNet and MobileNetV3 written as timm writes them (tests/importing/models_timm_families)
import and rebuild exactly: a BatchNorm2d that runs its activation, ConvNormAct's conv/bn,
LayerNorm2d, layer scale, nn.Identity for a switched-off layer, stages of b1, b2, ... that loop
over their children, a class whose instances hold an SE module or another activation in some
places only, and heads that take ``pre_logits``."""

from __future__ import annotations

import pytest

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
