"""Class names of blocks and networks (issue #17 item 7): torchvision's and timm's where the
block or layout is theirs, the spec's names otherwise, the same in build_model and in
generated code."""

from __future__ import annotations

from pathlib import Path

import pytest

import resdsl
from resdsl.ir.classnames import block_class_name, camel, network_class_name


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("basic", "BasicBlock"),
        ("bottleneck", "Bottleneck"),
        ("preact_basic", "PreActBasic"),
        ("preact_bottleneck", "PreActBottleneck"),
        ("squeeze_excite", "SqueezeExcite"),
        ("se_bottleneck", "SeBottleneck"),
        ("my_block", "MyBlock"),
        ("convnext_block", "ConvNeXtBlock"),
        ("regnet_bottleneck", "Bottleneck"),
        ("inverted_residual_se", "InvertedResidual"),
        ("ds_v3", "DepthwiseSeparableConv"),
        ("dense_layer", "DenseLayer"),
        ("transition", "DenseTransition"),
        ("bottle2neck", "Bottle2neck"),
        ("resnest_bottleneck", "ResNestBottleneck"),
    ],
)
def test_block_classes(name: str, expected: str) -> None:
    assert block_class_name(name) == expected


def test_camel_spells_the_families_as_their_libraries_do() -> None:
    assert camel("cifar_resnet") == "CifarResNet"
    assert camel("resnext50_32x4d") == "ResNeXt50_32x4d"
    assert camel("preact_cifar_resnet") == "PreActCifarResNet"
    assert camel("___") == "Network"
    assert camel("convnext_femto") == "ConvNeXtFemto"
    assert camel("mobilenet_v2") == "MobileNetV2"


@pytest.mark.parametrize(
    ("spec", "module", "expected"),
    [
        ("convnext_atto", "stages.0.blocks.0", "ConvNeXtBlock"),
        ("regnetx_002", "s1.b1", "Bottleneck"),
        ("mobilenetv3_small_100", "blocks.1.0", "InvertedResidual"),
        ("densenet121", "features.transition1", "DenseTransition"),
    ],
)
def test_timm_families_print_with_timm_class_names(spec: str, module: str, expected: str) -> None:
    """``print(model)`` of a modern family reads like timm's: its blocks carry timm's classes."""
    model = resdsl.build_model(spec)
    assert type(model.get_submodule(module)).__name__ == expected
    assert f"class {expected}(nn.Module):" in resdsl.generate(spec)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("resnet50", "ResNet"),
        ("resnet18", "ResNet"),
        ("resnext50_32x4d", "ResNet"),
        ("resnet50d", "ResNet"),
        ("seresnet50", "ResNet"),
        ("resnet110", "CifarResNet"),
        ("preact_resnet164", "PreActCifarResNet"),
        ("convnext_atto", "ConvNeXt"),
        ("regnetx_002", "RegNet"),
        ("mobilenetv2_100", "EfficientNet"),
        ("mobilenetv3_small_100", "MobileNetV3"),
        ("efficientnet_b0", "EfficientNet"),
        ("densenet121", "DenseNet"),
        ("res2net50_26w_4s", "ResNet"),
        ("resnest14d", "ResNet"),
        ("resnetrs50", "ResNet"),
    ],
)
def test_a_network_is_named_after_its_family(spec: str, expected: str) -> None:
    """The definition's name decides: resnet50 = resnet_bottleneck(...) is a ResNet."""
    assert network_class_name(resdsl.compile(spec)) == expected


def test_both_back_ends_use_the_rule(tmp_path: Path) -> None:
    spec = tmp_path / "my_net.arch"
    spec.write_text('import "std/blocks.arch"\nnetwork my_net() {\n  input 3 x 8 x 8\n  b = basic(3)\n}\n')
    model = resdsl.build_model(spec)
    assert type(model).__name__ == "MyNet" and type(model.b).__name__ == "BasicBlock"
    code = resdsl.generate(spec)
    assert "class MyNet(nn.Module):" in code and "class BasicBlock(nn.Module):" in code
