"""The initialisation schemes of resdsl.ir.init, as build_model and generated code apply them:
timm's for ConvNeXt, RegNet, EfficientNet/MobileNet and DenseNet (named by ``meta { init = ... }``),
torchvision's without one. The statistics are checked on layers of 10^5 weights and more, where
a wrong std or bound shows by far more than the 4% allowed."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

import resdsl
from tests.backends.codegen.test_codegen_arguments import load_code


def _built(name: str) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return resdsl.build_model(name).state_dict()


def _near(value: float, want: float) -> bool:
    return abs(value / want - 1) < 0.04


def test_convnext_is_truncated_normal_with_zero_biases() -> None:
    state = _built("convnext_atto")
    for key in ("stages.3.blocks.0.mlp.fc1.weight", "head.fc.weight"):
        w = state[key]
        assert _near(w.std().item(), 0.02) and w.abs().max().item() <= 2.0, key
    assert not state["stages.3.blocks.0.mlp.fc1.bias"].any() and not state["head.fc.bias"].any()
    assert not state["stem.0.bias"].any()


def test_regnet_is_normal_over_the_group_fan_out() -> None:
    state = _built("regnetx_002")
    w = state["s4.b1.conv3.conv.weight"]  # 368 x 368 x 1 x 1, groups 1
    assert _near(w.std().item(), math.sqrt(2 / 368))
    assert _near(state["head.fc.weight"].std().item(), 0.01) and not state["head.fc.bias"].any()


def test_mobilenet_is_tensorflows_with_a_uniform_classifier() -> None:
    state = _built("mobilenetv3_small_100")
    assert _near(state["conv_head.weight"].std().item(), math.sqrt(2 / 1024)) and not state["conv_head.bias"].any()
    w, bound = state["classifier.weight"], 1 / math.sqrt(1000)
    assert w.abs().max().item() <= bound and _near(w.std().item(), bound / math.sqrt(3))
    assert not state["classifier.bias"].any()


def test_densenet_is_kaiming_over_the_fan_in() -> None:
    state = _built("densenet121")
    assert _near(state["features.transition3.conv.weight"].std().item(), math.sqrt(2 / 1024))
    assert not state["classifier.bias"].any() and (state["features.norm0.weight"] == 1).all()


def test_a_network_without_a_scheme_keeps_torchvisions() -> None:
    w = _built("resnet18")["layer4.0.conv2.weight"]  # 512 x 512 x 3 x 3: Kaiming normal over fan_out
    assert _near(w.std().item(), math.sqrt(2 / (512 * 9)))


@pytest.mark.parametrize("name", ["convnext_atto", "regnetx_002", "mobilenetv3_small_100", "densenet121"])
def test_generated_code_draws_the_same_weights(name: str, tmp_path: Path) -> None:
    module = load_code(resdsl.generate(name), tmp_path)
    want = _built(name)
    torch.manual_seed(0)
    got = getattr(module, name)().state_dict()
    assert list(got) == list(want) and all(torch.equal(got[k], want[k]) for k in want)


def test_an_unknown_scheme_is_reported_at_its_name() -> None:
    result = resdsl.check('network n() {\n  input 3 x 8 x 8\n  meta { init = "timm_vit" }\n  c = conv(8)\n}\n')
    (d,) = result.diagnostics
    assert (d.code, d.span.line, d.span.column) == ("E213", 3, 17) and "'timm_convnext'" in d.message
    (d,) = resdsl.check("network n() {\n  input 3 x 8 x 8\n  meta { init = [1] }\n  c = conv(8)\n}\n").diagnostics
    assert d.code == "E213"
